//! Configuration errors: which source, which key, what is wrong.

use std::fmt;
use std::io;

use super::key_path::KeyPath;

/// The source name of the configuration compiled into the binary.
pub const BUILTIN_SOURCE: &str = "built-in defaults";

/// What kind of mistake a [`ConfigError`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigErrorKind {
    /// The file could not be read; carries the OS error kind.
    Unreadable(io::ErrorKind),
    /// The file is not valid TOML.
    Syntax,
    /// An environment variable's name does not address a key.
    Environment,
    /// A key is unknown, missing, or has a value of the wrong type.
    Schema,
    /// The values parse but do not make sense together (semantic checks).
    Invalid,
}

/// A configuration that cannot be used. Displays as
/// `config error in <source>: <key>: <problem>` (the key part only when there is a key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file path, `built-in defaults`, or `environment variable MQTT_INTEGRATION__…`.
    pub source_name: String,
    /// Dotted key path, e.g. `server.threads` or `listener[0].bind`.
    pub key: Option<String>,
    /// What is wrong, in words.
    pub problem: String,
    /// What kind of mistake it is.
    pub kind: ConfigErrorKind,
}

impl ConfigError {
    pub(crate) fn new(
        kind: ConfigErrorKind,
        source_name: impl Into<String>,
        key: Option<&KeyPath>,
        problem: impl Into<String>,
    ) -> Self {
        Self {
            source_name: source_name.into(),
            key: key.filter(|key| !key.is_root()).map(KeyPath::to_string),
            problem: problem.into(),
            kind,
        }
    }

    /// The file at `path` could not be read.
    pub(crate) fn unreadable(path: &std::path::Path, error: &io::Error) -> Self {
        Self::new(
            ConfigErrorKind::Unreadable(error.kind()),
            path.display().to_string(),
            None,
            format!("cannot read file: {error}"),
        )
    }

    /// Whether the file could not be read at all (as opposed to read and found wrong).
    pub fn is_unreadable(&self) -> bool {
        matches!(self.kind, ConfigErrorKind::Unreadable(_))
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "config error in {}: ", self.source_name)?;
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        f.write_str(&self.problem)
    }
}

impl std::error::Error for ConfigError {}

/// A semantic check that failed: the key and the problem, before the source is known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Invalid {
    pub(crate) key: KeyPath,
    pub(crate) problem: String,
}

impl Invalid {
    pub(crate) fn new(key: KeyPath, problem: impl Into<String>) -> Self {
        Self {
            key,
            problem: problem.into(),
        }
    }
}
