//! Loading tests: defaults, the example, overrides and every error path.

use std::path::Path;
use std::time::Duration;

use super::*;

const NO_ENV: [(String, String); 0] = [];

fn load_str(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml_str(text, "test.toml", NO_ENV)
}

fn load_env(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    Config::from_toml_str(text, "test.toml", env)
}

/// Asserts that `text` fails with `kind` at `key`, and returns the error.
fn fails_at(text: &str, kind: ConfigErrorKind, key: &str) -> ConfigError {
    let err = load_str(text).expect_err("config should be refused");
    assert_eq!(err.key.as_deref(), Some(key), "{err}");
    assert_eq!(err.kind, kind, "{err}");
    assert_eq!(err.source_name, "test.toml");
    err
}

fn invalid_at(text: &str, key: &str) -> ConfigError {
    fails_at(text, ConfigErrorKind::Invalid, key)
}

const APP: &str = "[[app]]\nname = \"a\"\n";

// ---- defaults and shipped files -------------------------------------------------------------

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

// ---- schema errors ---------------------------------------------------------------------------

#[test]
fn unknown_key_is_named() {
    let err = fails_at(
        "[server]\nthread = 4\n",
        ConfigErrorKind::Schema,
        "server.thread",
    );
    assert!(err.problem.contains("unknown field `thread`"), "{err}");
    assert!(err
        .to_string()
        .starts_with("config error in test.toml: server.thread: unknown field"));
}

#[test]
fn unknown_section_is_named() {
    fails_at("[servr]\nthreads = 4\n", ConfigErrorKind::Schema, "servr");
    fails_at(
        "[[listener]]\nkind = \"mqtt\"\nbind = \"127.0.0.1:1\"\nport = 1\n",
        ConfigErrorKind::Schema,
        "listener[0].port",
    );
    fails_at(
        "[[app]]\nname = \"a\"\ndevices = [{ name = \"d\", enable = true }]\n",
        ConfigErrorKind::Schema,
        "app[0].devices[0].enable",
    );
}

#[test]
fn wrong_type_is_named() {
    let err = fails_at(
        "[server]\nthreads = \"four\"\n",
        ConfigErrorKind::Schema,
        "server.threads",
    );
    assert!(err.problem.contains("invalid type"), "{err}");
    fails_at(
        "[server]\nconnect_timeout = 10\n",
        ConfigErrorKind::Schema,
        "server.connect_timeout",
    );
    fails_at(
        "[server]\nconnect_timeout = \"10 parsecs\"\n",
        ConfigErrorKind::Schema,
        "server.connect_timeout",
    );
    fails_at(
        "[[listener]]\nkind = \"mqtt\"\nbind = \"localhost\"\n",
        ConfigErrorKind::Schema,
        "listener[0].bind",
    );
    fails_at(
        "[[listener]]\nkind = \"quic\"\nbind = \"127.0.0.1:1\"\n",
        ConfigErrorKind::Schema,
        "listener[0].kind",
    );
    fails_at(
        "[mqtt]\ndefault_receive_maximum = 70000\n",
        ConfigErrorKind::Schema,
        "mqtt.default_receive_maximum",
    );
    fails_at(
        "[server]\nthreads = -1\n",
        ConfigErrorKind::Schema,
        "server.threads",
    );
    fails_at(
        "[backend]\nkind = \"redis\"\n",
        ConfigErrorKind::Schema,
        "backend.kind",
    );
    fails_at(
        "[[app]]\nname = \"a\"\nmembers = { bob = \"owner\" }\n",
        ConfigErrorKind::Schema,
        "app[0].members.bob",
    );
}

#[test]
fn missing_required_key_is_named_at_its_table() {
    let err = fails_at(
        "[[listener]]\nbind = \"127.0.0.1:1\"\n",
        ConfigErrorKind::Schema,
        "listener[0]",
    );
    assert!(err.problem.contains("missing field `kind`"), "{err}");
    fails_at(
        "[auth.oauth]\njwks_file = \"j\"\n",
        ConfigErrorKind::Schema,
        "auth.oauth",
    );
}

#[test]
fn syntax_error_names_line_and_column() {
    let err = load_str("[server]\nthreads = = 4\n").unwrap_err();
    assert_eq!(err.kind, ConfigErrorKind::Syntax);
    assert_eq!(err.key, None);
    assert!(err.problem.contains("line 2, column"), "{err}");
    assert!(err
        .to_string()
        .starts_with("config error in test.toml: invalid TOML at line 2"));
}

#[test]
fn unreadable_file_names_path_and_os_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.toml");
    let err = Config::load(Some(&path), NO_ENV).unwrap_err();
    assert!(err.is_unreadable());
    assert_eq!(
        err.kind,
        ConfigErrorKind::Unreadable(std::io::ErrorKind::NotFound)
    );
    assert_eq!(err.source_name, path.display().to_string());
    let shown = err.to_string();
    assert!(shown.contains(&path.display().to_string()), "{shown}");
    assert!(shown.contains("cannot read file"), "{shown}");
    assert!(shown.contains("os error 2"), "{shown}");
    // A directory is not a file either.
    let err = Config::load(Some(dir.path()), NO_ENV).unwrap_err();
    assert!(err.is_unreadable(), "{err}");
}

#[test]
fn file_on_disk_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[mqtt]\ndefault_receive_maximum = 0\n").unwrap();
    let err = Config::load(Some(&path), NO_ENV).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "config error in {}: mqtt.default_receive_maximum: must be at least 1",
            path.display()
        )
    );
}

// ---- semantic checks -------------------------------------------------------------------------

#[test]
fn needs_a_listener() {
    // An explicitly empty list is refused; a missing one takes the default.
    invalid_at("listener = []\n", "listener");
}

#[test]
fn listeners_must_not_share_a_bind() {
    let text = "[[listener]]\nkind = \"mqtt\"\nbind = \"127.0.0.1:1883\"\n\
                [[listener]]\nkind = \"ws\"\nbind = \"127.0.0.1:1883\"\n";
    let err = invalid_at(text, "listener[1].bind");
    assert!(err.problem.contains("listener[0]"), "{err}");
    let wildcard = "[[listener]]\nkind = \"mqtt\"\nbind = \"0.0.0.0:1883\"\n\
                    [[listener]]\nkind = \"ws\"\nbind = \"127.0.0.1:1883\"\n";
    invalid_at(wildcard, "listener[1].bind");
    let ephemeral = "[[listener]]\nkind = \"mqtt\"\nbind = \"127.0.0.1:0\"\n\
                     [[listener]]\nkind = \"ws\"\nbind = \"127.0.0.1:0\"\n[http]\nbind = \"127.0.0.1:0\"\n";
    load_str(ephemeral).unwrap();
}

#[test]
fn http_must_not_share_a_listener_bind() {
    invalid_at("[http]\nbind = \"127.0.0.1:1883\"\n", "http.bind");
}

#[test]
fn tls_listeners_need_cert_and_key() {
    invalid_at(
        "[[listener]]\nkind = \"mqtts\"\nbind = \"127.0.0.1:8883\"\nkey = \"k\"\n",
        "listener[0].cert",
    );
    invalid_at(
        "[[listener]]\nkind = \"wss\"\nbind = \"127.0.0.1:8883\"\ncert = \"c\"\n",
        "listener[0].key",
    );
    load_str(
        "[[listener]]\nkind = \"mqtts\"\nbind = \"127.0.0.1:8883\"\ncert = \"c\"\nkey = \"k\"\n",
    )
    .unwrap();
}

#[test]
fn plain_listeners_refuse_tls_files() {
    invalid_at(
        "[[listener]]\nkind = \"mqtt\"\nbind = \"127.0.0.1:1883\"\ncert = \"c\"\n",
        "listener[0].cert",
    );
    invalid_at(
        "[[listener]]\nkind = \"ws\"\nbind = \"127.0.0.1:1883\"\nclient_ca = \"c\"\n",
        "listener[0].client_ca",
    );
}

#[test]
fn websocket_path_starts_with_slash() {
    invalid_at(
        "[[listener]]\nkind = \"ws\"\nbind = \"127.0.0.1:8080\"\npath = \"mqtt\"\n",
        "listener[0].path",
    );
    let config = load_str("[[listener]]\nkind = \"ws\"\nbind = \"127.0.0.1:8080\"\n").unwrap();
    assert_eq!(config.listeners[0].path, DEFAULT_WS_PATH);
}

#[test]
fn numeric_limits() {
    invalid_at(
        "[mqtt]\ndefault_receive_maximum = 0\n",
        "mqtt.default_receive_maximum",
    );
    invalid_at("[mqtt]\nmax_queued_bytes = 0\n", "mqtt.max_queued_bytes");
    invalid_at("[server]\nmax_packet_size = 63\n", "server.max_packet_size");
    invalid_at(
        "[server]\nmax_packet_size = 268435456\n",
        "server.max_packet_size",
    );
    load_str("[server]\nmax_packet_size = 64\n").unwrap();
    load_str("[server]\nmax_packet_size = 268435455\n").unwrap();
    invalid_at("[server]\nmax_connections = 0\n", "server.max_connections");
    invalid_at("[http]\nmax_body_size = 0\n", "http.max_body_size");
    invalid_at("[http]\nhead_timeout = \"0s\"\n", "http.head_timeout");
    assert_eq!(
        load_str("[http]\nhead_timeout = \"3s\"\n")
            .unwrap()
            .http
            .head_timeout,
        Duration::from_secs(3)
    );
    invalid_at(
        "[backend.embedded]\npartitions = 0\n",
        "backend.embedded.partitions",
    );
    invalid_at(
        "[backend.embedded]\nretention_events = 0\n",
        "backend.embedded.retention_events",
    );
    invalid_at(
        "[backend.embedded]\nretention_bytes = 0\n",
        "backend.embedded.retention_bytes",
    );
    invalid_at(
        "[backend.embedded]\nfsync_interval = \"0s\"\n",
        "backend.embedded.fsync_interval",
    );
    invalid_at(
        "[backend.embedded]\nretention_age = \"0s\"\n",
        "backend.embedded.retention_age",
    );
    invalid_at("[backend.embedded]\ndir = \"\"\n", "backend.embedded.dir");
    invalid_at(
        "[backend.embedded]\noffsets_flush_interval = \"0s\"\n",
        "backend.embedded.offsets_flush_interval",
    );
}

#[test]
fn embedded_storage_keys() {
    let e = EmbeddedConfig::default();
    assert_eq!(
        (
            e.storage,
            e.dir.as_path(),
            e.fsync,
            e.fsync_interval,
            e.retention_age
        ),
        (
            crate::config::Storage::Disk,
            std::path::Path::new("data"),
            crate::config::Fsync::Always,
            Duration::from_millis(200),
            Duration::from_secs(7 * 24 * 3600)
        )
    );
    let config = load_str(
        "[backend.embedded]\nstorage = \"memory\"\ndir = \"/var/lib/x\"\nfsync = \"interval\"\nfsync_interval = \"50ms\"\nretention_age = \"1h\"\n",
    )
    .unwrap();
    let e = &config.backend.embedded;
    assert_eq!(e.fsync, crate::config::Fsync::Interval);
    assert_eq!(e.fsync_interval, Duration::from_millis(50));
    assert_eq!(e.retention_age, Duration::from_secs(3600));
    assert_eq!(e.dir, std::path::PathBuf::from("/var/lib/x"));
    assert!(load_str("[backend.embedded]\nfsync = \"sometimes\"\n").is_err());
    assert!(load_str("[backend.embedded]\nstorage = \"tape\"\n").is_err());
}

#[test]
fn durations_must_be_positive() {
    invalid_at(
        "[server]\nconnect_timeout = \"0s\"\n",
        "server.connect_timeout",
    );
    invalid_at(
        "[server]\nshutdown_timeout = \"0s\"\n",
        "server.shutdown_timeout",
    );
    let config = load_str("[server]\nshutdown_timeout = \"1m 30s\"\n").unwrap();
    assert_eq!(config.server.shutdown_timeout, Duration::from_secs(90));
}

#[test]
fn kafka_settings_checked_only_when_used() {
    load_str("[backend.kafka]\ncommand_topic = \"\"\n").unwrap();
    invalid_at(
        "[backend]\nkind = \"kafka\"\n[backend.kafka]\ncommand_topic = \"a b\"\n",
        "backend.kafka.command_topic",
    );
    invalid_at(
        "[backend]\nkind = \"kafka\"\n[backend.kafka]\nbootstrap_servers = \" \"\n",
        "backend.kafka.bootstrap_servers",
    );
}

#[test]
fn oauth_needs_exactly_one_key_source() {
    let none = invalid_at("[auth.oauth]\nissuer = \"i\"\n", "auth.oauth");
    assert!(none.problem.contains("found none"), "{none}");
    let two = invalid_at(
        "[auth.oauth]\nissuer = \"i\"\njwks_url = \"u\"\nhs256_secret = \"s\"\n",
        "auth.oauth",
    );
    assert!(two.problem.contains("jwks_url and hs256_secret"), "{two}");
    invalid_at(
        "[auth.oauth]\nissuer = \"\"\njwks_file = \"f\"\n",
        "auth.oauth.issuer",
    );
    load_str("[auth.oauth]\nissuer = \"i\"\njwks_file = \"f\"\n").unwrap();
}

#[test]
fn users_unique_and_not_anonymous() {
    invalid_at(
        "[[user]]\nname = \"a\"\n[[user]]\nname = \"a\"\n",
        "user[1].name",
    );
    invalid_at("[[user]]\nname = \"\"\n", "user[0].name");
    invalid_at("[[user]]\nname = \"anonymous\"\n", "user[0].name");
    invalid_at(
        "[[user]]\nname = \"a\"\napi_keys = [\"h\", \"\"]\n",
        "user[0].api_keys[1]",
    );
}

#[test]
fn app_names_are_topic_levels() {
    invalid_at("[[app]]\nname = \"\"\n", "app[0].name");
    for bad in ["a/b", "a+", "#"] {
        let err = invalid_at(&format!("[[app]]\nname = \"{bad}\"\n"), "app[0].name");
        assert!(err.problem.contains("topic"), "{err}");
    }
    invalid_at(
        "[[app]]\nname = \"a\"\n[[app]]\nname = \"a\"\n",
        "app[1].name",
    );
}

#[test]
fn app_owner_and_members() {
    invalid_at(
        "[[app]]\nname = \"a\"\nowner = \"anonymous\"\n",
        "app[0].owner",
    );
    invalid_at("[[app]]\nname = \"a\"\nowner = \"\"\n", "app[0].owner");
    invalid_at(
        "[[app]]\nname = \"a\"\nmembers = { \"\" = \"reader\" }\n",
        "app[0].members",
    );
}

#[test]
fn device_names_unique_per_app() {
    let dup = "[[app]]\nname = \"a\"\ndevices = [{ name = \"d\" }, { name = \"d\" }]\n";
    invalid_at(dup, "app[0].devices[1].name");
    invalid_at(
        "[[app]]\nname = \"a\"\ndevices = [{ name = \"d/1\" }]\n",
        "app[0].devices[0].name",
    );
    invalid_at(
        "[[app]]\nname = \"a\"\ndevices = [{ name = \"\" }]\n",
        "app[0].devices[0].name",
    );
    // Control characters and non-characters: a client may refuse a topic with them (#17).
    invalid_at(
        "[[app]]\nname = \"a\"\ndevices = [{ name = \"d\\u0007\" }]\n",
        "app[0].devices[0].name",
    );
    invalid_at("[[app]]\nname = \"a\\uFFFF\"\n", "app[0].name");
    invalid_at("[[app]]\nname = \"a\\u0085\"\n", "app[0].name");
    let two_apps = "[[app]]\nname = \"a\"\ndevices = [{ name = \"d\" }]\n\
                    [[app]]\nname = \"b\"\ndevices = [{ name = \"d\" }]\n";
    load_str(two_apps).unwrap();
}

// ---- environment overrides -------------------------------------------------------------------

#[test]
fn env_overrides_a_scalar() {
    let config = load_env(APP, &[("MQTT_INTEGRATION__SERVER__THREADS", "4")]).unwrap();
    assert_eq!(config.server.threads, 4);
    let config = load_env(APP, &[("MQTT_INTEGRATION__SERVER__CONNECT_TIMEOUT", "2s")]).unwrap();
    assert_eq!(config.server.connect_timeout, Duration::from_secs(2));
    let config = load_env(APP, &[("MQTT_INTEGRATION__AUTH__ALLOW_ANONYMOUS", "false")]).unwrap();
    assert!(!config.auth.allow_anonymous);
}

#[test]
fn env_overrides_the_builtin_defaults() {
    let env = [(
        "MQTT_INTEGRATION__HTTP__BIND".to_owned(),
        "0.0.0.0:9000".to_owned(),
    )];
    let config = Config::load(None, env).unwrap();
    assert_eq!(config.http.bind.to_string(), "0.0.0.0:9000");
    assert_eq!(config.apps[0].name, "demo");
}

#[test]
fn env_overrides_nested_keys() {
    let config = load_env(
        APP,
        &[
            (
                "MQTT_INTEGRATION__BACKEND__KAFKA__BOOTSTRAP_SERVERS",
                "kafka:9092",
            ),
            ("MQTT_INTEGRATION__BACKEND__KIND", "kafka"),
            ("MQTT_INTEGRATION__AUTH__OAUTH__ISSUER", "https://sso"),
            (
                "MQTT_INTEGRATION__AUTH__OAUTH__JWKS_URL",
                "https://sso/certs",
            ),
        ],
    )
    .unwrap();
    assert_eq!(config.backend.kafka.bootstrap_servers, "kafka:9092");
    assert_eq!(config.backend.kind, BackendKind::Kafka);
    assert_eq!(
        config.auth.oauth.unwrap().jwks_url.as_deref(),
        Some("https://sso/certs")
    );
}

#[test]
fn env_overrides_array_elements() {
    let text = "[[listener]]\nkind = \"mqtt\"\nbind = \"127.0.0.1:1883\"\n";
    let config = load_env(
        text,
        &[("MQTT_INTEGRATION__LISTENER__0__BIND", "0.0.0.0:1884")],
    )
    .unwrap();
    assert_eq!(config.listeners[0].bind.to_string(), "0.0.0.0:1884");

    // Without [[listener]] in the file, index 0 is the default listener.
    let config = load_env(
        APP,
        &[("MQTT_INTEGRATION__LISTENER__0__BIND", "0.0.0.0:1884")],
    )
    .unwrap();
    assert_eq!(
        config.listeners.len(),
        2,
        "the default MQTT and WebSocket listeners"
    );
    assert_eq!(config.listeners[0].kind, ListenerKind::Mqtt);

    // One past the end appends.
    let config = load_env(
        text,
        &[
            ("MQTT_INTEGRATION__LISTENER__1__KIND", "ws"),
            ("MQTT_INTEGRATION__LISTENER__1__BIND", "127.0.0.1:8080"),
        ],
    )
    .unwrap();
    assert_eq!(config.listeners[1].kind, ListenerKind::Ws);

    let config = load_env(
        APP,
        &[(
            "MQTT_INTEGRATION__APP__0__DEVICES",
            "[{ name = \"d1\" }, { name = \"d2\", enabled = false }]",
        )],
    )
    .unwrap();
    assert_eq!(config.apps[0].devices.len(), 2);
    let config = load_env(APP, &[("MQTT_INTEGRATION__APP__0__DEVICES__0__NAME", "d9")]).unwrap();
    assert_eq!(config.apps[0].devices[0].name, "d9");
    assert!(config.apps[0].devices[0].enabled);
}

#[test]
fn env_overrides_map_entries() {
    let config = load_env(
        APP,
        &[
            (
                "MQTT_INTEGRATION__BACKEND__KAFKA__PROPERTIES__FETCH__WAIT__MAX__MS",
                "100",
            ),
            (
                "MQTT_INTEGRATION__BACKEND__KAFKA__PROPERTIES__SECURITY__PROTOCOL",
                "SASL_SSL",
            ),
            ("MQTT_INTEGRATION__APP__0__MEMBERS__BOB", "reader"),
        ],
    )
    .unwrap();
    let properties = &config.backend.kafka.properties;
    assert_eq!(properties["fetch.wait.max.ms"], "100");
    assert_eq!(properties["security.protocol"], "SASL_SSL");
    assert_eq!(config.apps[0].members["bob"], Role::Reader);
}

#[test]
fn env_unknown_key_names_the_variable() {
    let err = load_env(APP, &[("MQTT_INTEGRATION__SERVER__THREAD", "4")]).unwrap_err();
    assert_eq!(
        err.source_name,
        "environment variable MQTT_INTEGRATION__SERVER__THREAD"
    );
    assert_eq!(err.key.as_deref(), Some("server.thread"));
    let err = load_env(APP, &[("MQTT_INTEGRATION__SERVR__THREADS", "4")]).unwrap_err();
    assert_eq!(
        err.source_name,
        "environment variable MQTT_INTEGRATION__SERVR__THREADS"
    );
    assert_eq!(err.key.as_deref(), Some("servr"));
}

#[test]
fn env_wrong_type_and_invalid_values_name_the_variable() {
    let err = load_env(APP, &[("MQTT_INTEGRATION__SERVER__THREADS", "many")]).unwrap_err();
    assert_eq!(
        err.source_name,
        "environment variable MQTT_INTEGRATION__SERVER__THREADS"
    );
    assert_eq!(err.kind, ConfigErrorKind::Schema);
    let err = load_env(
        APP,
        &[("MQTT_INTEGRATION__MQTT__DEFAULT_RECEIVE_MAXIMUM", "0")],
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "config error in environment variable MQTT_INTEGRATION__MQTT__DEFAULT_RECEIVE_MAXIMUM: \
         mqtt.default_receive_maximum: must be at least 1"
    );
    // A listener created by the environment but left incomplete.
    let err = load_env(
        APP,
        &[("MQTT_INTEGRATION__LISTENER__2__BIND", "127.0.0.1:2")],
    )
    .unwrap_err();
    assert_eq!(
        err.source_name,
        "environment variable MQTT_INTEGRATION__LISTENER__2__BIND"
    );
    assert_eq!(err.key.as_deref(), Some("listener[2]"));
    // An error in the file is still the file's, with an unrelated override present.
    let err = load_env(
        "[server]\nthreads = \"x\"\n",
        &[("MQTT_INTEGRATION__MQTT__MAX_QUEUED_BYTES", "5")],
    )
    .unwrap_err();
    assert_eq!(err.source_name, "test.toml");
}

#[test]
fn env_quoted_values_stay_strings() {
    let config = load_env(APP, &[("MQTT_INTEGRATION__APP__0__OWNER", "\"1234\"")]).unwrap();
    assert_eq!(config.apps[0].owner.as_deref(), Some("1234"));
}

// ---- redaction -------------------------------------------------------------------------------

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

#[test]
fn env_replaces_a_whole_list() {
    let value = "[{ kind = \"mqtt\", bind = \"0.0.0.0:1883\" }, { kind = \"ws\", bind = \"0.0.0.0:8080\" }]";
    let config = load_env(APP, &[("MQTT_INTEGRATION__LISTENER", value)]).unwrap();
    assert_eq!(config.listeners.len(), 2);
    let bad = "[{ kind = \"mqtt\" }]";
    let err = load_env(APP, &[("MQTT_INTEGRATION__LISTENER", bad)]).unwrap_err();
    assert_eq!(
        err.source_name,
        "environment variable MQTT_INTEGRATION__LISTENER"
    );
    assert_eq!(err.key.as_deref(), Some("listener[0]"));
}
