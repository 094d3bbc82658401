//! Semantic checks after parsing: listeners, TLS files, limits, storage, durations, Kafka,
//! OAuth, users, applications and devices.

use super::*;

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
