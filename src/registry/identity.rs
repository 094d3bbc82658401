//! Who is asking, and for what.

use std::fmt;

use crate::config::Role;

/// The authenticated party behind a connection or HTTP request.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Identity {
    /// No credentials (allowed by `auth.allow_anonymous`); gets the role of the member
    /// `anonymous`, if the application names one.
    Anonymous,
    /// A user authenticated by API key or token.
    User {
        /// The user name (`[[user]].name`, or the token's `auth.oauth.username_claim`).
        name: String,
        /// The token carried `auth.oauth.admin_role`: may do everything on every application.
        admin: bool,
    },
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Anonymous => f.write_str("anonymous"),
            Self::User { name, admin: false } => write!(f, "user `{name}`"),
            Self::User { name, admin: true } => write!(f, "admin `{name}`"),
        }
    }
}

/// What an identity wants to do with an application (spec §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// Subscribe to events.
    Read,
    /// Send commands, ingest events.
    Write,
}

impl Role {
    /// Whether a member with this role may `access` the application:
    /// every role reads, `admin` and `manager` also write.
    pub fn permits(self, access: Access) -> bool {
        match access {
            Access::Read => true,
            Access::Write => matches!(self, Role::Admin | Role::Manager),
        }
    }
}
