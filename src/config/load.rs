//! Loading: read, parse, override from the environment, deserialize, check.

use std::path::Path;

use super::env::{self, Overrides};
use super::error::{ConfigError, ConfigErrorKind, BUILTIN_SOURCE};
use super::key_path::{KeyPath, Segment};
use super::{check, Config};

/// `config/default.toml`, compiled in: what the service runs without `--config`.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

impl Config {
    /// The built-in defaults: `config/default.toml` compiled in, without environment overrides.
    pub fn builtin() -> Result<Config, ConfigError> {
        Self::load(None, std::iter::empty())
    }

    /// Loads the file at `path` (`None` = the built-in defaults), then applies the
    /// `MQTT_INTEGRATION__…` variables among `env` (pass [`super::process_environment`] in the
    /// service, a fixed list in tests), then checks the result.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        match path {
            None => Self::from_toml_str(DEFAULT_TOML, BUILTIN_SOURCE, env),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|error| ConfigError::unreadable(path, &error))?;
                Self::from_toml_str(&text, &path.display().to_string(), env)
            }
        }
    }

    /// Like [`Config::load`] for configuration text; `source_name` names it in errors.
    pub fn from_toml_str(
        text: &str,
        source_name: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut tree = text
            .parse::<toml::Table>()
            .map_err(|error| syntax_error(text, source_name, &error))?;
        let overrides = env::apply(&mut tree, env)?;
        let source_of = |key: &KeyPath| overrides_source(&overrides, key, source_name);

        let config: Config =
            serde_path_to_error::deserialize(toml::Value::Table(tree)).map_err(|error| {
                let mut key = KeyPath::from_serde(error.path());
                let problem = error.inner().message().trim().to_owned();
                // Make sure an unknown key is named itself, not only its table.
                if let Some(field) = unknown_field(&problem) {
                    let last = key.segments().last();
                    if !matches!(last, Some(Segment::Key(k)) if k == field) {
                        key.push(Segment::Key(field.to_owned()));
                    }
                }
                ConfigError::new(
                    ConfigErrorKind::Schema,
                    source_of(&key),
                    Some(&key),
                    problem,
                )
            })?;

        check::config(&config).map_err(|invalid| {
            ConfigError::new(
                ConfigErrorKind::Invalid,
                source_of(&invalid.key),
                Some(&invalid.key),
                invalid.problem,
            )
        })?;
        Ok(config)
    }
}

fn overrides_source(overrides: &Overrides, key: &KeyPath, file: &str) -> String {
    overrides.source_of(key).unwrap_or(file).to_owned()
}

/// The name in serde's "unknown field `x`, expected …" message.
fn unknown_field(problem: &str) -> Option<&str> {
    let rest = problem.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

fn syntax_error(text: &str, source_name: &str, error: &toml::de::Error) -> ConfigError {
    let message = error.message().trim();
    let problem = match error.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("invalid TOML at line {line}, column {column}: {message}")
        }
        None => format!("invalid TOML: {message}"),
    };
    ConfigError::new(ConfigErrorKind::Syntax, source_name, None, problem)
}
