//! `[[listener]]`: where MQTT clients connect.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use serde::Deserialize;

config_names! {
    /// The transport of a listener.
    pub enum ListenerKind {
        /// MQTT over plain TCP.
        Mqtt = "mqtt",
        /// MQTT over TLS.
        Mqtts = "mqtts",
        /// MQTT over WebSocket (subprotocol `mqtt`, binary frames).
        Ws = "ws",
        /// MQTT over WebSocket over TLS.
        Wss = "wss",
    }
}

impl ListenerKind {
    /// Whether the listener speaks TLS (and so needs `cert` and `key`).
    pub fn is_tls(self) -> bool {
        matches!(self, Self::Mqtts | Self::Wss)
    }

    /// Whether the listener speaks WebSocket (and so uses `path`).
    pub fn is_websocket(self) -> bool {
        matches!(self, Self::Ws | Self::Wss)
    }
}

/// One `[[listener]]` entry.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// Transport: `mqtt`, `mqtts`, `ws` or `wss`. Use the TLS kinds whenever clients connect
    /// over networks you do not control.
    pub kind: ListenerKind,
    /// Address and port to listen on. `0.0.0.0` / `[::]` to accept clients from other machines.
    pub bind: SocketAddr,
    /// PEM certificate chain (`mqtts`, `wss` only).
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// PEM private key of `cert` (`mqtts`, `wss` only).
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// PEM CA bundle; when set, clients must present a certificate it signed (mutual TLS).
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    /// HTTP path of the WebSocket upgrade (`ws`, `wss`). Change it to sit behind a reverse proxy
    /// that routes by path.
    #[serde(default = "default_ws_path")]
    pub path: String,
}

/// The WebSocket path used when a listener does not name one.
pub const DEFAULT_WS_PATH: &str = "/mqtt";

fn default_ws_path() -> String {
    DEFAULT_WS_PATH.to_owned()
}

/// The listeners used when the file has no `[[listener]]`: plain MQTT on 127.0.0.1:1883.
pub(crate) fn default_listeners() -> Vec<ListenerConfig> {
    let listener = |kind, port| ListenerConfig {
        kind,
        bind: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        cert: None,
        key: None,
        client_ca: None,
        path: default_ws_path(),
    };
    // Spec 6: MQTT on 127.0.0.1:1883, WebSocket on 127.0.0.1:8080/mqtt.
    vec![
        listener(ListenerKind::Mqtt, 1883),
        listener(ListenerKind::Ws, 8080),
    ]
}

impl ListenerConfig {
    /// This listener as a TOML table, for environment overrides that address a listener the
    /// file did not list (`MQTT_INTEGRATION__LISTENER__0__BIND` without `[[listener]]`).
    pub(crate) fn to_toml(&self) -> toml::Value {
        let mut table = toml::Table::new();
        table.insert("kind".into(), self.kind.as_str().into());
        table.insert("bind".into(), self.bind.to_string().into());
        let paths = [
            ("cert", &self.cert),
            ("key", &self.key),
            ("client_ca", &self.client_ca),
        ];
        for (name, path) in paths {
            if let Some(path) = path {
                table.insert(name.into(), path.to_string_lossy().into_owned().into());
            }
        }
        table.insert("path".into(), self.path.clone().into());
        toml::Value::Table(table)
    }
}
