//! `[mqtt]`: MQTT session behaviour shared by every listener.

use serde::Deserialize;

/// `[mqtt]`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttConfig {
    /// QoS 1 events in flight per MQTT 3.1.1 connection (MQTT 5 clients send their own Receive
    /// Maximum). Raise it for throughput over high-latency links, lower it to redeliver less
    /// after a disconnect. At least 1.
    pub default_receive_maximum: u16,
    /// Bytes of events queued per connection before the backend read for its group pauses.
    /// Raise it for bursty, fast subscribers; lower it to bound memory with many connections.
    pub max_queued_bytes: usize,
    /// Extension: when set, replaces every client's keep-alive and is sent to MQTT 5 clients as
    /// Server Keep Alive (MQTT 5 §3.2.2.3.14), in seconds; 0 turns keep-alive off. Set it when
    /// clients ask for intervals your load balancers' idle timeouts would cut.
    pub server_keep_alive: Option<u16>,
    /// Filters one connection may hold; each further filter of a SUBSCRIBE is refused with
    /// `0x97` Quota exceeded (v3.1.1 `0x80`). Bounds what one client costs the routing of every
    /// event and the memory of its session. At least 1.
    pub max_subscriptions_per_connection: usize,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            default_receive_maximum: 64,
            max_queued_bytes: 1024 * 1024,
            server_keep_alive: None,
            max_subscriptions_per_connection: 1_000,
        }
    }
}
