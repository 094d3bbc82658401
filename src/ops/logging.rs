//! The process log on standard error: text for people, JSON lines for machines (`log.format`).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber. `RUST_LOG` filters (default `info`) in both formats.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours for a terminal only: journald and log files would store the escape codes.
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        // One object per line: `timestamp`, `level`, `target`, `fields` (with `message`);
        // `flatten_event` puts the fields at the top level, where log shippers look first.
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
