//! The typed configuration file.
//!
//! A TOML file (or the built-in `config/default.toml`) is parsed into a tree, environment
//! overrides (`MQTT_INTEGRATION__SECTION__KEY`, see [`env`]) are applied to the tree, the tree is
//! deserialized into [`Config`] (unknown keys and wrong types are errors naming the key), and the
//! result is checked once for values that parse but make no sense. Every failure is a
//! [`ConfigError`] naming the source, the key and the problem. See `docs/configuration.md`.
//!
//! Owns: the configuration's types, its defaults, environment overrides and every check of it,
//! done at start-up and again by each reload ([`needs_restart`]: what a reload cannot change).
//! Must not touch: sockets, threads, backends or sessions; nothing reads a file or the
//! environment for configuration but this module.

/// An enum whose values are a closed set of names in the configuration file, each written once:
/// the variants (deserialized from those names), `as_str` and `Display`.
macro_rules! config_names {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $($(#[$variant_meta:meta])* $variant:ident = $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Deserialize)]
        pub enum $name {
            $($(#[$variant_meta])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            /// The name used in the configuration file.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

mod app;
mod auth;
mod backend;
mod check;
pub mod env;
mod error;
mod http;
mod key_path;
mod listener;
mod live;
mod load;
mod log;
mod mqtt;
mod server;
#[cfg(test)]
mod tests;

use serde::Deserialize;

pub use app::{AppConfig, DeviceConfig, Role, ANONYMOUS_MEMBER};
pub use auth::{AuthConfig, KeySource, OAuthConfig, UserConfig};
pub use backend::{
    BackendConfig, BackendKind, EmbeddedConfig, Fsync, KafkaConfig, Storage,
    DEFAULT_FSYNC_INTERVAL, DEFAULT_GROUP_RETENTION, DEFAULT_RETENTION_AGE,
};
pub use env::{process_environment, ENV_PREFIX};
pub use error::{ConfigError, ConfigErrorKind, BUILTIN_SOURCE};
pub use http::{HttpConfig, StatusPage};
pub use listener::{ListenerConfig, ListenerKind, DEFAULT_WS_PATH};
pub use live::{in_force_after, needs_restart};
pub use load::DEFAULT_TOML;
pub use log::{LogConfig, LogFormat};
pub use mqtt::MqttConfig;
pub use server::{ServerConfig, MAX_PACKET_SIZE, MIN_PACKET_SIZE};

/// The whole configuration. Every section may be left out and takes its defaults; a file with
/// only `[[app]]` entries is valid.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[server]`.
    #[serde(default)]
    pub server: ServerConfig,
    /// `[mqtt]`.
    #[serde(default)]
    pub mqtt: MqttConfig,
    /// `[[listener]]`; without any, plain MQTT on 127.0.0.1:1883.
    #[serde(default = "listener::default_listeners", rename = "listener")]
    pub listeners: Vec<ListenerConfig>,
    /// `[http]`.
    #[serde(default)]
    pub http: HttpConfig,
    /// `[backend]`.
    #[serde(default)]
    pub backend: BackendConfig,
    /// `[auth]`.
    #[serde(default)]
    pub auth: AuthConfig,
    /// `[[user]]`.
    #[serde(default, rename = "user")]
    pub users: Vec<UserConfig>,
    /// `[[app]]`.
    #[serde(default, rename = "app")]
    pub apps: Vec<AppConfig>,
    /// `[log]`.
    #[serde(default)]
    pub log: LogConfig,
}
