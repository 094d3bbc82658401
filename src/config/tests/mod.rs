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

mod checks;
mod defaults;
mod env;
mod schema;
