//! Schema errors: unknown keys and sections, wrong types, missing keys, syntax errors and
//! unreadable files, each named where it is.

use super::*;

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
