//! Environment overrides: scalars, nested keys, array elements, map entries, whole lists, and
//! the errors that name the variable.

use super::*;

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
