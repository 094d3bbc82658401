//! Semantic checks: values that parse but do not make sense, found once at load.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::app::{AppConfig, ANONYMOUS_MEMBER};
use super::auth::{AuthConfig, UserConfig};
use super::backend::{BackendConfig, BackendKind};
use super::error::Invalid;
use super::http::HttpConfig;
use super::key_path::KeyPath;
use super::listener::ListenerConfig;
use super::mqtt::MqttConfig;
use super::server::{ServerConfig, MAX_PACKET_SIZE, MIN_PACKET_SIZE};
use super::Config;
use crate::protocol::topic::valid_topic_part;

type Checked = Result<(), Invalid>;

/// Checks a deserialized configuration; the first problem found is returned.
pub(crate) fn config(config: &Config) -> Checked {
    server(&config.server)?;
    mqtt(&config.mqtt)?;
    listeners(&config.listeners)?;
    http(&config.http, &config.listeners)?;
    backend(&config.backend)?;
    auth(&config.auth)?;
    users(&config.users)?;
    apps(&config.apps)
}

fn key(section: &str, name: &str) -> KeyPath {
    KeyPath::root().key(section).key(name)
}

fn at_least_one(path: KeyPath, value: u64) -> Checked {
    if value == 0 {
        return Err(Invalid::new(path, "must be at least 1"));
    }
    Ok(())
}

fn positive_duration(path: KeyPath, value: Duration) -> Checked {
    if value.is_zero() {
        return Err(Invalid::new(path, "must be longer than 0s"));
    }
    Ok(())
}

fn server(server: &ServerConfig) -> Checked {
    at_least_one(
        key("server", "max_connections"),
        server.max_connections as u64,
    )?;
    if !(MIN_PACKET_SIZE..=MAX_PACKET_SIZE).contains(&server.max_packet_size) {
        return Err(Invalid::new(
            key("server", "max_packet_size"),
            format!(
                "{} is out of range; MQTT packets are between {MIN_PACKET_SIZE} and \
                 {MAX_PACKET_SIZE} bytes",
                server.max_packet_size
            ),
        ));
    }
    positive_duration(key("server", "connect_timeout"), server.connect_timeout)?;
    positive_duration(key("server", "shutdown_timeout"), server.shutdown_timeout)
}

fn mqtt(mqtt: &MqttConfig) -> Checked {
    at_least_one(
        key("mqtt", "default_receive_maximum"),
        u64::from(mqtt.default_receive_maximum),
    )?;
    at_least_one(
        key("mqtt", "max_queued_bytes"),
        mqtt.max_queued_bytes as u64,
    )?;
    at_least_one(
        key("mqtt", "max_subscriptions_per_connection"),
        mqtt.max_subscriptions_per_connection as u64,
    )
}

fn listeners(listeners: &[ListenerConfig]) -> Checked {
    let section = KeyPath::root().key("listener");
    if listeners.is_empty() {
        return Err(Invalid::new(section, "at least one [[listener]] is needed"));
    }
    for (i, listener) in listeners.iter().enumerate() {
        let at = section.index(i);
        let kind = listener.kind;
        if kind.is_tls() {
            if listener.cert.is_none() {
                return Err(Invalid::new(
                    at.key("cert"),
                    format!("a {kind} listener needs a certificate chain (PEM)"),
                ));
            }
            if listener.key.is_none() {
                return Err(Invalid::new(
                    at.key("key"),
                    format!("a {kind} listener needs the certificate's private key (PEM)"),
                ));
            }
        } else {
            let tls_keys = [
                ("cert", listener.cert.is_some()),
                ("key", listener.key.is_some()),
                ("client_ca", listener.client_ca.is_some()),
            ];
            if let Some((name, _)) = tls_keys.iter().find(|(_, set)| *set) {
                return Err(Invalid::new(
                    at.key(name),
                    format!("a {kind} listener does not use TLS; use kind \"mqtts\" or \"wss\""),
                ));
            }
        }
        if kind.is_websocket() && !listener.path.starts_with('/') {
            return Err(Invalid::new(
                at.key("path"),
                format!("`{}` must start with `/`", listener.path),
            ));
        }
        if let Some(j) = listeners[..i]
            .iter()
            .position(|other| overlap(other.bind, listener.bind))
        {
            return Err(Invalid::new(
                at.key("bind"),
                format!(
                    "{} is already used by listener[{j}] ({})",
                    listener.bind, listeners[j].bind
                ),
            ));
        }
    }
    Ok(())
}

/// Whether two sockets could not both be bound. Port 0 (any free port) never conflicts;
/// `[::]` also takes IPv4 (dual stack), `0.0.0.0` only IPv4.
fn overlap(a: SocketAddr, b: SocketAddr) -> bool {
    fn covers(wildcard: IpAddr, other: IpAddr) -> bool {
        wildcard.is_unspecified() && (wildcard.is_ipv6() || other.is_ipv4())
    }
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip() || covers(a.ip(), b.ip()) || covers(b.ip(), a.ip()))
}

fn http(http: &HttpConfig, listeners: &[ListenerConfig]) -> Checked {
    if let Some(j) = listeners.iter().position(|l| overlap(l.bind, http.bind)) {
        return Err(Invalid::new(
            key("http", "bind"),
            format!(
                "{} is already used by listener[{j}] ({})",
                http.bind, listeners[j].bind
            ),
        ));
    }
    positive_duration(key("http", "head_timeout"), http.head_timeout)?;
    positive_duration(key("http", "max_command_wait"), http.max_command_wait)?;
    at_least_one(key("http", "max_connections"), http.max_connections as u64)?;
    at_least_one(key("http", "max_body_size"), http.max_body_size as u64)
}

fn backend(backend: &BackendConfig) -> Checked {
    positive_duration(
        KeyPath::root().key("backend").key("group_retention"),
        backend.group_retention,
    )?;
    let embedded = KeyPath::root().key("backend").key("embedded");
    at_least_one(
        embedded.key("partitions"),
        u64::from(backend.embedded.partitions),
    )?;
    at_least_one(
        embedded.key("retention_events"),
        backend.embedded.retention_events,
    )?;
    at_least_one(
        embedded.key("retention_bytes"),
        backend.embedded.retention_bytes,
    )?;
    positive_duration(
        embedded.key("fsync_interval"),
        backend.embedded.fsync_interval,
    )?;
    positive_duration(
        embedded.key("retention_age"),
        backend.embedded.retention_age,
    )?;
    if backend.embedded.dir.as_os_str().is_empty() {
        return Err(Invalid::new(embedded.key("dir"), "must not be empty"));
    }
    positive_duration(
        embedded.key("offsets_flush_interval"),
        backend.embedded.offsets_flush_interval,
    )?;
    positive_duration(embedded.key("command_ttl"), backend.embedded.command_ttl)?;
    if backend.kind == BackendKind::Kafka {
        let kafka = KeyPath::root().key("backend").key("kafka");
        if backend.kafka.bootstrap_servers.trim().is_empty() {
            return Err(Invalid::new(
                kafka.key("bootstrap_servers"),
                "must name at least one broker",
            ));
        }
        if let Some(problem) = kafka_topic_problem(&backend.kafka.command_topic) {
            return Err(Invalid::new(kafka.key("command_topic"), problem));
        }
    }
    Ok(())
}

/// Kafka accepts topic names of 1 to 249 characters from `[a-zA-Z0-9._-]`.
fn kafka_topic_problem(topic: &str) -> Option<String> {
    let valid_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if topic.is_empty() || topic.len() > 249 || !topic.chars().all(valid_char) {
        return Some(format!(
            "`{topic}` is not a Kafka topic name (1 to 249 characters of a-z, A-Z, 0-9, `.`, `_`, `-`)"
        ));
    }
    None
}

fn auth(auth: &AuthConfig) -> Checked {
    let Some(oauth) = &auth.oauth else {
        return Ok(());
    };
    let at = KeyPath::root().key("auth").key("oauth");
    // No text that is set may be empty: the required ones always are set.
    let required = [
        ("issuer", &oauth.issuer),
        ("username_claim", &oauth.username_claim),
        ("admin_role", &oauth.admin_role),
    ];
    let optional = [
        ("audience", &oauth.audience),
        ("jwks_url", &oauth.jwks_url),
        ("hs256_secret", &oauth.hs256_secret),
    ];
    let set = optional
        .into_iter()
        .filter_map(|(name, value)| Some((name, value.as_ref()?)));
    for (name, value) in required.into_iter().chain(set) {
        if value.is_empty() {
            return Err(Invalid::new(at.key(name), "must not be empty"));
        }
    }
    let sources: Vec<&str> = [
        ("jwks_url", oauth.jwks_url.is_some()),
        ("jwks_file", oauth.jwks_file.is_some()),
        ("hs256_secret", oauth.hs256_secret.is_some()),
    ]
    .iter()
    .filter(|(_, set)| *set)
    .map(|(name, _)| *name)
    .collect();
    if sources.len() != 1 {
        let found = if sources.is_empty() {
            "none".to_owned()
        } else {
            sources.join(" and ")
        };
        return Err(Invalid::new(
            at,
            format!("needs exactly one of jwks_url, jwks_file or hs256_secret; found {found}"),
        ));
    }
    Ok(())
}

fn users(users: &[UserConfig]) -> Checked {
    let mut seen = HashMap::new();
    for (i, user) in users.iter().enumerate() {
        let at = KeyPath::root().key("user").index(i);
        if user.name.is_empty() {
            return Err(Invalid::new(at.key("name"), "must not be empty"));
        }
        if user.name == ANONYMOUS_MEMBER {
            return Err(Invalid::new(
                at.key("name"),
                "`anonymous` is reserved for connections without credentials",
            ));
        }
        if let Some(j) = seen.insert(user.name.as_str(), i) {
            return Err(Invalid::new(
                at.key("name"),
                format!("`{}` is already user[{j}]", user.name),
            ));
        }
        if let Some(k) = user.api_keys.iter().position(String::is_empty) {
            return Err(Invalid::new(
                at.key("api_keys").index(k),
                "must not be empty",
            ));
        }
    }
    Ok(())
}

fn apps(apps: &[AppConfig]) -> Checked {
    let mut seen = HashMap::new();
    for (i, app) in apps.iter().enumerate() {
        let at = KeyPath::root().key("app").index(i);
        if let Some(problem) = topic_name_problem(&app.name) {
            return Err(Invalid::new(at.key("name"), problem));
        }
        if let Some(j) = seen.insert(app.name.as_str(), i) {
            return Err(Invalid::new(
                at.key("name"),
                format!("`{}` is already app[{j}]", app.name),
            ));
        }
        match app.owner.as_deref() {
            Some("") => return Err(Invalid::new(at.key("owner"), "must not be empty")),
            Some(ANONYMOUS_MEMBER) => {
                return Err(Invalid::new(
                    at.key("owner"),
                    "anonymous connections cannot own an application; give `anonymous` a role in members",
                ))
            }
            _ => {}
        }
        if app.members.contains_key("") {
            return Err(Invalid::new(
                at.key("members"),
                "member names must not be empty",
            ));
        }
        let mut devices = HashMap::new();
        for (d, device) in app.devices.iter().enumerate() {
            let device_at = at.key("devices").index(d);
            if let Some(problem) = topic_name_problem(&device.name) {
                return Err(Invalid::new(device_at.key("name"), problem));
            }
            if let Some(e) = devices.insert(device.name.as_str(), d) {
                return Err(Invalid::new(
                    device_at.key("name"),
                    format!(
                        "`{}` is already devices[{e}] of app `{}`",
                        device.name, app.name
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Application and device names are topic levels (`app/<a>`, `command/<a>/<d>/<c>`), so they
/// may not be empty nor contain the level separator, the wildcards (MQTT 3.1.1 §4.7.1), U+0000
/// (§1.5.3), nor the control characters and non-characters a client may refuse (MQTT 5 §1.5.4):
/// [`valid_topic_part`] without `/`. Anything this service sends on a topic formed from them must
/// be taken by every conforming client (issue #17).
fn topic_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".to_owned());
    }
    if let Some(c) = name.chars().find(|c| matches!(c, '/' | '+' | '#' | '\0')) {
        return Some(format!(
            "`{}` contains `{}`; names are MQTT topic levels, where `/`, `+` and `#` are special",
            name.escape_debug(),
            c.escape_debug()
        ));
    }
    if let Some(c) = name.chars().find(|&c| !valid_topic_part(&c.to_string())) {
        return Some(format!(
            "`{}` contains U+{:04X}, a control character or Unicode non-character that MQTT clients may refuse in a topic",
            name.escape_debug(),
            c as u32
        ));
    }
    if !valid_topic_part(name) {
        return Some(format!(
            "`{}` is not a valid MQTT topic level (longer than 65,535 bytes?)",
            name.escape_debug()
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn overlapping_binds() {
        assert!(overlap(addr("127.0.0.1:1883"), addr("127.0.0.1:1883")));
        assert!(overlap(addr("0.0.0.0:1883"), addr("127.0.0.1:1883")));
        assert!(overlap(addr("[::]:1883"), addr("127.0.0.1:1883")));
        assert!(!overlap(addr("0.0.0.0:1883"), addr("[::1]:1883")));
        assert!(!overlap(addr("127.0.0.1:1883"), addr("127.0.0.2:1883")));
        assert!(!overlap(addr("127.0.0.1:1883"), addr("127.0.0.1:8883")));
        assert!(!overlap(addr("127.0.0.1:0"), addr("127.0.0.1:0")));
    }

    #[test]
    fn topic_names() {
        assert_eq!(topic_name_problem("demo"), None);
        assert_eq!(topic_name_problem("my-app.v2"), None);
        assert_eq!(topic_name_problem("café"), None);
        for bad in [
            "",
            "a/b",
            "a+",
            "#",
            "a\0b",
            "a\u{1}",
            "a\u{7f}",
            "a\u{9f}",
            "a\u{fdd0}",
            "a\u{1fffe}",
        ] {
            assert!(topic_name_problem(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn kafka_topics() {
        assert_eq!(kafka_topic_problem("iot-commands"), None);
        assert!(kafka_topic_problem("").is_some());
        assert!(kafka_topic_problem("a b").is_some());
        assert!(kafka_topic_problem(&"a".repeat(250)).is_some());
    }
}
