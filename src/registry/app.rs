//! Applications and devices as the registry holds them.

use std::collections::HashMap;

use crate::config::{AppConfig, Role, ANONYMOUS_MEMBER};

use super::identity::{Access, Identity};

/// An application: its devices and who may use it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct App {
    /// The application name.
    pub name: String,
    /// The owning user, who may read and write.
    pub owner: Option<String>,
    /// Named members and their roles (without `anonymous`).
    members: HashMap<String, Role>,
    /// The role of the member `anonymous`, for [`Identity::Anonymous`] only.
    anonymous: Option<Role>,
    devices: HashMap<String, Device>,
}

/// A device of an application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    /// The device name.
    pub name: String,
    /// Disabled devices refuse commands and ingest.
    pub enabled: bool,
}

impl App {
    pub(crate) fn from_config(config: &AppConfig) -> Self {
        let mut members = config.members.clone();
        // `anonymous` is kept apart so that a user who happens to be called "anonymous"
        // never inherits what was granted to connections without credentials.
        let anonymous = members.remove(ANONYMOUS_MEMBER);
        Self {
            name: config.name.clone(),
            owner: config.owner.clone(),
            members: members.into_iter().collect(),
            anonymous,
            devices: config
                .devices
                .iter()
                .map(|d| {
                    let device = Device {
                        name: d.name.clone(),
                        enabled: d.enabled,
                    };
                    (d.name.clone(), device)
                })
                .collect(),
        }
    }

    /// The device called `name`, enabled or not.
    pub fn device(&self, name: &str) -> Option<&Device> {
        self.devices.get(name)
    }

    /// All devices, in no particular order.
    pub fn devices(&self) -> impl Iterator<Item = &Device> {
        self.devices.values()
    }

    /// The role `identity` holds as a member (`None` for the owner unless also a member).
    pub fn role_of(&self, identity: &Identity) -> Option<Role> {
        match identity {
            Identity::Anonymous => self.anonymous,
            Identity::User { name, .. } => self.members.get(name).copied(),
        }
    }

    /// Whether `identity` may `access` this application (spec §3): admins everything, the
    /// owner everything, members as their role permits.
    pub fn permits(&self, identity: &Identity, access: Access) -> bool {
        match identity {
            Identity::User { admin: true, .. } => true,
            Identity::User { name, .. } if self.owner.as_deref() == Some(name) => true,
            _ => self
                .role_of(identity)
                .is_some_and(|role| role.permits(access)),
        }
    }
}
