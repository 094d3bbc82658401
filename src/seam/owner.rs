//! Who a durable consumer group belongs to (issue #17): its kind and the identity that created
//! it. Both backends keep an [`Owner`] with each durable group and check every join against it
//! with [`Claim::check`], so the rule is written once.
//!
//! Why: Drogue's group names put `$share/<g>/app/<a>` and the plain subscription of client id
//! `<g>` in the same group `<a>.<g>`. Without an owner, anyone could subscribe
//! `$share/<victim>/app/<a>` while the victim is offline and consume (and acknowledge) its
//! backlog.

use std::fmt;

use crate::registry::Identity;

use super::{BackendError, GroupKey};

/// How a durable group is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupKind {
    /// The group of a client id's plain subscriptions (`<app>.<client-id>`).
    Client,
    /// A `$share/<group>/…` group.
    Shared,
}

impl GroupKind {
    fn as_str(self) -> &'static str {
        match self {
            GroupKind::Client => "client",
            GroupKind::Shared => "shared",
        }
    }
}

/// The owner of a durable group: small and serialisable ([`Owner::encode`]), so that a backend
/// can keep it beside the group's offsets (the Kafka backend in the offset commit's metadata).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Owner {
    pub kind: GroupKind,
    /// The user name; None = anonymous. A token user and an API-key user of the same name are
    /// the same identity (the registry has one user namespace).
    pub user: Option<String>,
}

/// Prefix of an encoded owner; anything else in the metadata (Drogue Cloud's, an older
/// version's empty string) is no owner record.
const TAG: &str = "mqtt-integration/owner/1;";

impl Owner {
    /// `mqtt-integration/owner/1;<kind>;<anonymous | user:<name>>`: the name last, so that it
    /// may hold any character.
    pub fn encode(&self) -> String {
        let who = match &self.user {
            None => "anonymous".to_owned(),
            Some(name) => format!("user:{name}"),
        };
        format!("{TAG}{};{who}", self.kind.as_str())
    }

    /// The owner an [`Owner::encode`]d string names; None for anything else.
    pub fn decode(text: &str) -> Option<Owner> {
        let rest = text.strip_prefix(TAG)?;
        let (kind, who) = rest.split_once(';')?;
        let kind = match kind {
            "client" => GroupKind::Client,
            "shared" => GroupKind::Shared,
            _ => return None,
        };
        let user = match who {
            "anonymous" => None,
            _ => Some(who.strip_prefix("user:")?.to_owned()),
        };
        Some(Owner { kind, user })
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.user {
            None => write!(f, "{} group of anonymous clients", self.kind.as_str()),
            Some(name) => write!(f, "{} group of user `{name}`", self.kind.as_str()),
        }
    }
}

/// What a join asks for: to be (or become) the owner, or — for an admin — any group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub owner: Owner,
    /// `auth.oauth.admin_role`: may join anyone's group.
    pub admin: bool,
}

impl Claim {
    /// The claim of a connection with `identity` and `client_id` joining `group` of `app`.
    /// The group is the client's own group when its name is `<app>.<client-id>`, which is also
    /// where `$share/<client-id>/app/<app>` leads: that one name cannot be told apart, and it
    /// is the client's.
    pub fn new(identity: &Identity, app: &str, client_id: &str, group: &GroupKey) -> Claim {
        let own = group.name() == Some(&*format!("{app}.{client_id}"));
        let (user, admin) = match identity {
            Identity::Anonymous => (None, false),
            Identity::User { name, admin } => (Some(name.clone()), *admin),
        };
        Claim {
            owner: Owner {
                kind: if own {
                    GroupKind::Client
                } else {
                    GroupKind::Shared
                },
                user,
            },
            admin,
        }
    }

    /// Whether this claim may join a group owned by `owner`; the refusal says why.
    pub fn check(&self, group: &GroupKey, owner: &Owner) -> Result<(), BackendError> {
        if self.admin || self.owner == *owner {
            return Ok(());
        }
        let who = match &self.owner.user {
            None => "an anonymous client".to_owned(),
            Some(name) => format!("user `{name}`"),
        };
        Err(BackendError::NotOwner(format!(
            "consumer group `{group}` is the {owner}, not a {} group of {who}",
            self.owner.kind.as_str()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> Identity {
        Identity::User {
            name: name.into(),
            admin: false,
        }
    }

    #[test]
    fn encodes_and_decodes() {
        for owner in [
            Owner {
                kind: GroupKind::Client,
                user: None,
            },
            Owner {
                kind: GroupKind::Shared,
                user: Some("bob; user:x".into()),
            },
        ] {
            assert_eq!(Owner::decode(&owner.encode()), Some(owner));
        }
        assert_eq!(
            Owner::decode(""),
            None,
            "Drogue's or an older version's commit"
        );
        assert_eq!(Owner::decode("something else"), None);
    }

    #[test]
    fn kind_follows_the_client_id() {
        let g = GroupKey::client("demo", "victim");
        // `demo.x.victim` is not `demo.victim`'s group.
        let other = GroupKey::shared("demo.x", "victim");
        for (client_id, group, kind) in [
            ("victim", &g, GroupKind::Client),
            ("thief", &g, GroupKind::Shared),
            ("victim", &other, GroupKind::Shared),
        ] {
            let claim = Claim::new(&Identity::Anonymous, "demo", client_id, group);
            assert_eq!(claim.owner.kind, kind, "{client_id} in {group:?}");
        }
    }

    #[test]
    fn only_the_owner_or_an_admin_joins() {
        let g = GroupKey::client("demo", "victim");
        let owner = Claim::new(&user("bob"), "demo", "victim", &g).owner;
        assert!(Claim::new(&user("bob"), "demo", "victim", &g)
            .check(&g, &owner)
            .is_ok());
        let e = Claim::new(&Identity::Anonymous, "demo", "thief", &g)
            .check(&g, &owner)
            .unwrap_err();
        assert!(matches!(e, BackendError::NotOwner(_)), "{e}");
        assert!(Claim::new(&user("alice"), "demo", "victim", &g)
            .check(&g, &owner)
            .is_err());
        assert!(Claim::new(&user("bob"), "demo", "thief", &g)
            .check(&g, &owner)
            .is_err());
        let admin = Identity::User {
            name: "root".into(),
            admin: true,
        };
        assert!(Claim::new(&admin, "demo", "thief", &g)
            .check(&g, &owner)
            .is_ok());
    }
}
