//! Every role/permission combination, anonymous, admin, unknown app or device, disabled device.

use super::*;
use crate::config::Config;

/// Users and applications covering every role, anonymous access and a disabled device.
const CONFIG: &str = include_str!("../../tests/fixtures/registry.toml");

fn registry() -> Registry {
    let config = Config::from_toml_str(CONFIG, "test", std::iter::empty()).unwrap();
    Registry::from_config(&config)
}

fn user(name: &str) -> Identity {
    Identity::User {
        name: name.to_owned(),
        admin: false,
    }
}

fn admin(name: &str) -> Identity {
    Identity::User {
        name: name.to_owned(),
        admin: true,
    }
}

fn allowed(registry: &Registry, who: &Identity, app: &str, access: Access) -> bool {
    match registry.authorize(who, app, access) {
        Ok(found) => {
            assert_eq!(found.name, app);
            true
        }
        Err(AccessError::NotAuthorized { app: refused }) => {
            assert_eq!(refused, app);
            false
        }
        Err(other) => panic!("unexpected {other}"),
    }
}

#[test]
fn every_role_and_access() {
    let r = registry();
    let cases = [
        // (identity, read, write) on "shop"
        (user("olivia"), true, true),       // owner
        (user("ada"), true, true),          // admin
        (user("max"), true, true),          // manager
        (user("rita"), true, false),        // reader
        (user("eve"), false, false),        // not a member
        (Identity::Anonymous, true, false), // anonymous = reader
        (admin("root"), true, true),        // admin identity, not a member
    ];
    for (who, read, write) in cases {
        assert_eq!(allowed(&r, &who, "shop", Access::Read), read, "{who} read");
        assert_eq!(
            allowed(&r, &who, "shop", Access::Write),
            write,
            "{who} write"
        );
    }
}

#[test]
fn role_permissions() {
    use crate::config::Role;
    assert!(Role::Admin.permits(Access::Read) && Role::Admin.permits(Access::Write));
    assert!(Role::Manager.permits(Access::Read) && Role::Manager.permits(Access::Write));
    assert!(Role::Reader.permits(Access::Read) && !Role::Reader.permits(Access::Write));
}

#[test]
fn anonymous_roles() {
    let r = registry();
    assert!(allowed(&r, &Identity::Anonymous, "open", Access::Read));
    assert!(allowed(&r, &Identity::Anonymous, "open", Access::Write));
    assert!(allowed(&r, &Identity::Anonymous, "admins", Access::Write));
    assert!(!allowed(&r, &Identity::Anonymous, "closed", Access::Read));
    assert!(!allowed(&r, &Identity::Anonymous, "closed", Access::Write));
}

#[test]
fn a_user_named_anonymous_is_not_the_anonymous_member() {
    let r = registry();
    assert!(!allowed(&r, &user("anonymous"), "open", Access::Read));
    assert_eq!(r.app("open").unwrap().role_of(&user("anonymous")), None);
    assert_eq!(
        r.app("open").unwrap().role_of(&Identity::Anonymous),
        Some(crate::config::Role::Manager)
    );
}

#[test]
fn owner_of_one_app_is_nobody_elsewhere() {
    let r = registry();
    assert!(allowed(&r, &user("olivia"), "closed", Access::Write));
    assert!(!allowed(&r, &user("olivia"), "open", Access::Read));
    assert!(!allowed(&r, &user("max"), "closed", Access::Read));
}

#[test]
fn unknown_application() {
    let r = registry();
    for who in [Identity::Anonymous, user("olivia"), admin("root")] {
        for access in [Access::Read, Access::Write] {
            let err = r.authorize(&who, "nope", access).unwrap_err();
            assert_eq!(err, AccessError::UnknownApplication { app: "nope".into() });
        }
    }
    assert_eq!(
        r.authorize(&Identity::Anonymous, "nope", Access::Read)
            .unwrap_err()
            .to_string(),
        "unknown application `nope`"
    );
    assert_eq!(
        r.authorize(&user("eve"), "shop", Access::Read)
            .unwrap_err()
            .to_string(),
        "not authorized for application `shop`"
    );
}

#[test]
fn device_write_allowed() {
    let r = registry();
    for who in [user("olivia"), user("ada"), user("max"), admin("root")] {
        let (app, device) = r.authorize_device_write(&who, "shop", "door").unwrap();
        assert_eq!((app.name.as_str(), device.name.as_str()), ("shop", "door"));
        assert!(device.enabled);
    }
    assert!(r
        .authorize_device_write(&Identity::Anonymous, "open", "d")
        .is_ok());
}

#[test]
fn device_write_refusals_are_distinct() {
    let r = registry();
    assert_eq!(
        r.authorize_device_write(&user("max"), "nope", "door")
            .unwrap_err(),
        DeviceAccessError::UnknownApplication { app: "nope".into() }
    );
    for who in [user("rita"), user("eve"), Identity::Anonymous] {
        assert_eq!(
            r.authorize_device_write(&who, "shop", "door").unwrap_err(),
            DeviceAccessError::NotAuthorized { app: "shop".into() },
            "{who}"
        );
        // Without permission an unknown device is not revealed.
        assert_eq!(
            r.authorize_device_write(&who, "shop", "ghost").unwrap_err(),
            DeviceAccessError::NotAuthorized { app: "shop".into() }
        );
    }
    for (who, device, error, text) in [
        (
            user("max"),
            "ghost",
            DeviceAccessError::UnknownDevice {
                app: "shop".into(),
                device: "ghost".into(),
            },
            "unknown device `ghost` in application `shop`",
        ),
        (
            admin("root"),
            "old",
            DeviceAccessError::DisabledDevice {
                app: "shop".into(),
                device: "old".into(),
            },
            "device `old` in application `shop` is disabled",
        ),
    ] {
        let e = r.authorize_device_write(&who, "shop", device).unwrap_err();
        assert_eq!(e, error);
        assert_eq!(e.to_string(), text);
    }
}

#[test]
fn lookups() {
    let r = registry();
    let shop = r.app("shop").unwrap();
    assert!(shop.device("door").unwrap().enabled);
    assert!(!shop.device("old").unwrap().enabled);
    assert!(shop.device("ghost").is_none());
    assert_eq!(shop.devices().count(), 2);
    assert_eq!(r.apps().count(), 4);
    assert!(r.app("nope").is_none());
}

#[test]
fn users_and_their_key_hashes() {
    let r = registry();
    let alice = r.user("alice").unwrap();
    assert_eq!(alice.api_keys(), ["hash-a".to_owned()]);
    assert!(r.user("olivia").is_none());
    assert_eq!(r.users().count(), 1);
    let shown = format!("{alice:?}");
    assert!(
        !shown.contains("hash-a") && shown.contains("alice"),
        "{shown}"
    );
}

#[test]
fn builtin_lets_anonymous_use_demo() {
    let r = Registry::from_config(&Config::builtin().unwrap());
    assert!(r
        .authorize(&Identity::Anonymous, "demo", Access::Read)
        .is_ok());
    assert!(r
        .authorize_device_write(&Identity::Anonymous, "demo", "device1")
        .is_ok());
}
