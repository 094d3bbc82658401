//! `[[app]]`: applications, their devices and who may use them.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

/// The member name that gives a role to anonymous connections.
pub const ANONYMOUS_MEMBER: &str = "anonymous";

/// A member's role in an application (spec §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read and write.
    Admin,
    /// Read and write.
    Manager,
    /// Read only.
    Reader,
}

impl Role {
    /// The name used in the configuration file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Manager => "manager",
            Self::Reader => "reader",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `[[app]]` entry.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    /// Application name, used in topics (`app/<name>`, `command/<name>/…`) and Kafka topic
    /// names; may not contain `/`, `+` or `#`.
    pub name: String,
    /// User who may read and write the application.
    #[serde(default)]
    pub owner: Option<String>,
    /// Other users and their roles; the member `anonymous` gives a role to anonymous connections.
    #[serde(default)]
    pub members: BTreeMap<String, Role>,
    /// Devices that may receive commands and ingest events.
    #[serde(default)]
    pub devices: Vec<DeviceConfig>,
}

/// One device of an application.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    /// Device name, unique in its application; may not contain `/`, `+` or `#`.
    pub name: String,
    /// Disabled devices refuse commands and ingest (their past events are still delivered).
    /// Disable a device instead of deleting it to keep its name reserved.
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
}

fn enabled_by_default() -> bool {
    true
}
