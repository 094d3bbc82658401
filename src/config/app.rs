//! `[[app]]`: applications, their devices and who may use them.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The member name that gives a role to anonymous connections.
pub const ANONYMOUS_MEMBER: &str = "anonymous";

config_names! {
    /// A member's role in an application (spec §3).
    pub enum Role {
        /// Read and write.
        Admin = "admin",
        /// Read and write.
        Manager = "manager",
        /// Read only.
        Reader = "reader",
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
