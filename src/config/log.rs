//! `[log]`: how the process writes its log (standard error).

use serde::Deserialize;

/// `[log]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `"text"` (default) for people reading a terminal or `journalctl`; `"json"` for log
    /// shippers: one JSON object per line with `timestamp`, `level`, `target` and `fields`
    /// (`message` among them).
    pub format: LogFormat,
}

/// `log.format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}
