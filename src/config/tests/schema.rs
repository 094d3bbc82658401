//! Schema errors: unknown keys and sections, wrong types, missing keys, syntax errors and
//! unreadable files, each named where it is.

use super::*;

/// Unknown keys and sections, wrong types and missing keys: each a schema error at the key (or,
/// for a missing key, the table) where it is, with what is wrong in the problem where given.
#[test]
fn schema_errors_are_named_where_they_are() {
    for (toml, key, problem) in [
        // Unknown keys and sections.
        (
            "[server]\nthread = 4\n",
            "server.thread",
            Some("unknown field `thread`"),
        ),
        ("[servr]\nthreads = 4\n", "servr", None),
        (
            "[[listener]]\nkind = \"mqtt\"\nbind = \"127.0.0.1:1\"\nport = 1\n",
            "listener[0].port",
            None,
        ),
        (
            "[[app]]\nname = \"a\"\ndevices = [{ name = \"d\", enable = true }]\n",
            "app[0].devices[0].enable",
            None,
        ),
        // Wrong types.
        (
            "[server]\nthreads = \"four\"\n",
            "server.threads",
            Some("invalid type"),
        ),
        (
            "[server]\nconnect_timeout = 10\n",
            "server.connect_timeout",
            None,
        ),
        (
            "[server]\nconnect_timeout = \"10 parsecs\"\n",
            "server.connect_timeout",
            None,
        ),
        (
            "[[listener]]\nkind = \"mqtt\"\nbind = \"localhost\"\n",
            "listener[0].bind",
            None,
        ),
        (
            "[[listener]]\nkind = \"quic\"\nbind = \"127.0.0.1:1\"\n",
            "listener[0].kind",
            None,
        ),
        (
            "[mqtt]\ndefault_receive_maximum = 70000\n",
            "mqtt.default_receive_maximum",
            None,
        ),
        ("[server]\nthreads = -1\n", "server.threads", None),
        ("[backend]\nkind = \"redis\"\n", "backend.kind", None),
        (
            "[[app]]\nname = \"a\"\nmembers = { bob = \"owner\" }\n",
            "app[0].members.bob",
            None,
        ),
        // Missing required keys, named at their table.
        (
            "[[listener]]\nbind = \"127.0.0.1:1\"\n",
            "listener[0]",
            Some("missing field `kind`"),
        ),
        ("[auth.oauth]\njwks_file = \"j\"\n", "auth.oauth", None),
    ] {
        let err = fails_at(toml, ConfigErrorKind::Schema, key);
        if let Some(problem) = problem {
            assert!(err.problem.contains(problem), "{err}");
        }
    }
    let err = fails_at(
        "[server]\nthread = 4\n",
        ConfigErrorKind::Schema,
        "server.thread",
    );
    let shown = err.to_string();
    assert!(
        shown.starts_with("config error in test.toml: server.thread: unknown field"),
        "{shown}"
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
