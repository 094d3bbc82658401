//! Applications, devices, users and who may do what (spec §3).
//!
//! A [`Registry`] is built from a checked [`Config`] and never changes; a reload builds a new one
//! and puts it in force whole ([`Current`]). Lookups are hash-map reads, cheap enough for every
//! SUBSCRIBE, command and ingest request.
//!
//! Owns: applications, devices, users and the rights of each identity on them. Must not touch:
//! credentials (checking who someone is belongs to [`crate::auth`]), sockets, sessions or
//! backends; it reads only the checked configuration.

mod app;
mod current;
mod error;
mod identity;
#[cfg(test)]
mod tests;
mod user;

use std::collections::HashMap;

use crate::config::Config;

pub use app::{App, Device};
pub use current::Current;
pub use error::{AccessError, DeviceAccessError};
pub use identity::{Access, Identity};
pub use user::User;

/// The configured applications and users.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    apps: HashMap<String, App>,
    users: HashMap<String, User>,
}

impl Registry {
    /// Builds the registry. Names are unique in a checked configuration; were they not, the
    /// last entry of a name would win.
    pub fn from_config(config: &Config) -> Registry {
        Registry {
            apps: config
                .apps
                .iter()
                .map(|app| (app.name.clone(), App::from_config(app)))
                .collect(),
            users: config
                .users
                .iter()
                .map(|user| (user.name.clone(), User::from_config(user)))
                .collect(),
        }
    }

    /// The application called `name`, without any authorization.
    pub fn app(&self, name: &str) -> Option<&App> {
        self.apps.get(name)
    }

    /// All applications, in no particular order.
    pub fn apps(&self) -> impl Iterator<Item = &App> {
        self.apps.values()
    }

    /// The application `app`, if `identity` may `access` it.
    /// Read = owner or any role; Write = owner, `admin`, `manager`; the member `anonymous`
    /// grants a role to [`Identity::Anonymous`]; an admin identity may do everything.
    pub fn authorize(
        &self,
        identity: &Identity,
        app: &str,
        access: Access,
    ) -> Result<&App, AccessError> {
        let Some(found) = self.apps.get(app) else {
            return Err(AccessError::UnknownApplication {
                app: app.to_owned(),
            });
        };
        if !found.permits(identity, access) {
            return Err(AccessError::NotAuthorized {
                app: app.to_owned(),
            });
        }
        Ok(found)
    }

    /// For commands and ingest: `identity` may write to `app`, and `device` exists and is
    /// enabled. Permission is checked before the device, so the error for an identity without
    /// permission never tells whether the device exists.
    pub fn authorize_device_write(
        &self,
        identity: &Identity,
        app: &str,
        device: &str,
    ) -> Result<(&App, &Device), DeviceAccessError> {
        let found = self.authorize(identity, app, Access::Write)?;
        let Some(dev) = found.device(device) else {
            return Err(DeviceAccessError::UnknownDevice {
                app: app.to_owned(),
                device: device.to_owned(),
            });
        };
        if !dev.enabled {
            return Err(DeviceAccessError::DisabledDevice {
                app: app.to_owned(),
                device: device.to_owned(),
            });
        }
        Ok((found, dev))
    }

    /// The `[[user]]` called `name` (API-key users only; token users have no entry).
    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.get(name)
    }

    /// All `[[user]]` entries (name → API key hashes), in no particular order.
    pub fn users(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }
}
