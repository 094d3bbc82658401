//! Users who authenticate with API keys.

use std::fmt;

use crate::config::UserConfig;

/// A `[[user]]` entry: a name and the salted hashes of its API keys.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// The user name.
    pub name: String,
    api_keys: Vec<String>,
}

impl User {
    pub(crate) fn from_config(config: &UserConfig) -> Self {
        Self {
            name: config.name.clone(),
            api_keys: config.api_keys.clone(),
        }
    }

    /// The stored API key hashes, any of which may match a presented key.
    pub fn api_keys(&self) -> &[String] {
        &self.api_keys
    }
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field(
                "api_keys",
                &format_args!("<{} redacted>", self.api_keys.len()),
            )
            .finish()
    }
}
