//! The built-in defaults and the shipped files (spec example, default.toml), and secrets
//! redacted in Debug.

use super::*;

#[test]
fn builtin_matches_the_spec() {
    let config = Config::builtin().unwrap();
    assert_eq!(config.server, ServerConfig::default());
    assert_eq!(config.mqtt, MqttConfig::default());
    assert_eq!(config.http, HttpConfig::default());
    assert_eq!(config.backend, BackendConfig::default());
    assert_eq!(config.auth, AuthConfig::default());
    assert_eq!(config.listeners, listener::default_listeners());
    assert_eq!(config.backend.kind, BackendKind::Embedded);
    assert_eq!(config.backend.embedded.partitions, 4);
    assert!(config.auth.allow_anonymous);
    assert_eq!(config.http.bind.to_string(), "127.0.0.1:8081");
    assert_eq!(config.listeners[0].bind.to_string(), "127.0.0.1:1883");
    assert_eq!(config.listeners[0].kind, ListenerKind::Mqtt);
    assert_eq!(config.apps.len(), 1);
    let demo = &config.apps[0];
    assert_eq!(demo.name, "demo");
    assert_eq!(demo.members.get(ANONYMOUS_MEMBER), Some(&Role::Manager));
    assert_eq!(
        demo.devices,
        vec![DeviceConfig {
            name: "device1".into(),
            enabled: true
        }]
    );
    assert!(config.users.is_empty());
}

#[test]
fn serde_defaults_match_the_spec_example() {
    let s = ServerConfig::default();
    assert_eq!(
        (s.threads, s.max_connections, s.max_packet_size),
        (0, 100_000, 1_048_576)
    );
    assert_eq!(s.connect_timeout, Duration::from_secs(10));
    assert_eq!(s.shutdown_timeout, Duration::from_secs(10));
    let m = MqttConfig::default();
    assert_eq!(
        (
            m.default_receive_maximum,
            m.max_queued_bytes,
            m.server_keep_alive
        ),
        (64, 1_048_576, None)
    );
    assert_eq!(m.max_subscriptions_per_connection, 1_000);
    let e = EmbeddedConfig::default();
    assert_eq!(
        (
            e.partitions,
            e.retention_events,
            e.retention_bytes,
            e.consumer_threads
        ),
        (4, 1_000_000, 1 << 30, 0)
    );
    let k = KafkaConfig::default();
    assert_eq!(k.bootstrap_servers, "127.0.0.1:9092");
    assert_eq!(k.command_topic, "iot-commands");
    assert!(k.properties.is_empty() && !k.create_topics);
    assert_eq!(HttpConfig::default().max_body_size, 1 << 20);
    assert_eq!(HttpConfig::default().head_timeout, Duration::from_secs(10));
}

#[test]
fn file_with_only_apps_is_valid() {
    let config = load_str(APP).unwrap();
    let builtin = Config::builtin().unwrap();
    assert_eq!(config.server, builtin.server);
    assert_eq!(config.listeners, builtin.listeners);
    assert_eq!(config.backend, builtin.backend);
    assert_eq!(config.apps[0].name, "a");
    assert!(config.apps[0].owner.is_none() && config.apps[0].members.is_empty());
}

#[test]
fn empty_file_is_valid() {
    let config = load_str("").unwrap();
    assert!(config.apps.is_empty());
}

#[test]
fn example_loads_and_uses_every_section() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml");
    let config = Config::load(Some(&path), NO_ENV).unwrap();
    assert_eq!(config.listeners.len(), 1);
    assert_eq!(config.apps.len(), 2);
    assert_eq!(config.users.len(), 2);
    let oauth = config.auth.oauth.as_ref().unwrap();
    assert!(matches!(oauth.key_source(), Some(KeySource::JwksUrl(_))));
    assert_eq!(oauth.leeway, Duration::from_secs(30));
    assert_eq!(oauth.username_claim, "preferred_username");
    assert_eq!(config.backend.kafka.properties["fetch.wait.max.ms"], "100");
    let demo = &config.apps[0];
    assert_eq!(demo.owner.as_deref(), Some("alice"));
    assert_eq!(demo.members["bob"], Role::Reader);
    assert!(!demo.devices[1].enabled);
}

#[test]
fn default_toml_on_disk_is_the_builtin() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default.toml");
    let from_disk = Config::load(Some(&path), NO_ENV).unwrap();
    assert_eq!(from_disk, Config::builtin().unwrap());
}

#[test]
fn shard_threads_resolves_zero() {
    let mut server = ServerConfig::default();
    assert!(server.shard_threads() >= 1);
    server.threads = 3;
    assert_eq!(server.shard_threads(), 3);
    assert!(EmbeddedConfig::default().consumer_thread_count() >= 1);
}

#[test]
fn full_listener_and_oauth_sections_parse() {
    let config = load_str(
        r#"
        [[listener]]
        kind = "wss"
        bind = "0.0.0.0:8443"
        cert = "tls.crt"
        key = "tls.key"
        client_ca = "ca.crt"
        path = "/ws"
        [auth.oauth]
        issuer = "https://sso"
        hs256_secret = "s3cret"
        leeway = "0s"
        [mqtt]
        server_keep_alive = 30
        "#,
    )
    .unwrap();
    let l = &config.listeners[0];
    assert_eq!(l.kind, ListenerKind::Wss);
    assert_eq!(l.client_ca.as_deref(), Some(Path::new("ca.crt")));
    assert_eq!(l.path, "/ws");
    let oauth = config.auth.oauth.unwrap();
    assert_eq!(oauth.key_source(), Some(KeySource::Hs256Secret("s3cret")));
    assert_eq!(oauth.admin_role, "drogue-admin");
    assert_eq!(oauth.leeway, Duration::ZERO);
    assert_eq!(config.mqtt.server_keep_alive, Some(30));
}

#[test]
fn debug_redacts_secrets() {
    let config = load_str(
        "[auth.oauth]\nissuer = \"i\"\nhs256_secret = \"topsecret\"\n\
         [[user]]\nname = \"alice\"\napi_keys = [\"hash-one\", \"hash-two\"]\n",
    )
    .unwrap();
    let shown = format!("{config:?}");
    assert!(!shown.contains("topsecret"), "{shown}");
    assert!(
        !shown.contains("hash-one") && !shown.contains("hash-two"),
        "{shown}"
    );
    assert!(shown.contains("alice"), "{shown}");
    assert!(
        shown.contains("<redacted>") && shown.contains("<2 redacted>"),
        "{shown}"
    );
    let pretty = format!("{config:#?}");
    assert!(!pretty.contains("topsecret") && !pretty.contains("hash-one"));
}
