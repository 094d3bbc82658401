//! Issue #17, items 1 and 2 (embedded backend): consumer groups and client ids have owners.
//! `$share/<g>/app/<a>` and the plain subscriptions of client id `<g>` share the group `<a>.<g>`
//! (Drogue's names); only the identity that created it, and only in the same kind, joins it.
//! A second connection with a client id takes over only when it is the same identity.
//! Each test has a steady subscriber on the side that must miss nothing.

mod common;
#[path = "common/owners.rs"]
mod owners;

use std::io::Write;
use std::time::Duration;

use common::*;
use owners::*;

const T: Duration = Duration::from_secs(10);
/// SUBACK v5 Not authorized; v3.1.1 Failure.
const NOT_AUTHORIZED: u8 = 0x87;
const V3_FAILURE: u8 = 0x80;

/// A client group with a backlog: `client_id` (as `creds`) subscribes, leaves, and `n` events
/// are ingested while it is away. Returns the events' seqs.
fn victim_with_backlog(
    svc: &Service,
    client_id: &str,
    creds: Option<(&str, &str)>,
    filter: &str,
    first: u64,
    n: u64,
) -> Vec<u64> {
    let (mut s, code) = connect_as(svc, 4, client_id, creds);
    assert_eq!(code, 0);
    assert_eq!(suback_code(&mut s, 4, filter), 1);
    s.write_all(&[0xE0, 0x00]).unwrap();
    drop(s);
    std::thread::sleep(Duration::from_millis(300));
    let seqs: Vec<u64> = (first..first + n).collect();
    for &seq in &seqs {
        svc.ingest_seq("device1", seq);
    }
    seqs
}

/// Comes back as `client_id` and checks that the whole backlog is still there.
fn victim_gets_everything(
    svc: &Service,
    client_id: &str,
    creds: Option<(&str, &str)>,
    filter: &str,
    seqs: &[u64],
) {
    let (mut s, code) = connect_as(svc, 4, client_id, creds);
    assert_eq!(code, 0);
    assert_eq!(suback_code(&mut s, 4, filter), 1);
    let got = read_seqs(&mut s, seqs.len(), T);
    assert_eq!(got, seqs, "the victim's backlog\n{}", svc.log());
}

#[test]
fn anonymous_cannot_join_an_offline_clients_group() {
    let u = users("demo");
    let svc = Service::start_with("", &u.toml, &[]);
    let steady = steady(&svc, "demo");
    let backlog = victim_with_backlog(&svc, "victim", None, "app/demo", 1, 30);

    // Same identity (anonymous), other kind: a shared join of a client group.
    let (mut thief, _) = connect_as(&svc, 5, "thief", None);
    let (code, why) = suback(&mut thief, 5, "$share/victim/app/demo");
    assert_eq!(code, NOT_AUTHORIZED);
    // The Reason String says why.
    assert!(
        why.contains("consumer group `demo.victim` is the client group of anonymous clients"),
        "{why}"
    );
    let (mut thief3, _) = connect_as(&svc, 4, "thief3", None);
    assert_eq!(
        suback_code(&mut thief3, 4, "$share/victim/app/demo"),
        V3_FAILURE
    );
    assert!(
        read_seqs(&mut thief, 1, Duration::from_millis(500)).is_empty(),
        "the thief got an event"
    );
    let log = svc.log();
    assert!(log.contains("not the group's owner"), "{log}");

    victim_gets_everything(&svc, "victim", None, "app/demo", &backlog);
    assert_eq!(collect_seqs(&steady, backlog.len(), T), backlog);
}

#[test]
fn users_cannot_join_each_others_groups() {
    let u = users("demo");
    let svc = Service::start_with("", &u.toml, &[]);
    let steady = steady(&svc, "demo");
    let bob = ("bob", u.bob.as_str());
    let alice = ("alice", u.alice.as_str());

    // bob's client group (API key), thieves anonymous and alice.
    let backlog = victim_with_backlog(&svc, "bob-dev", Some(bob), "app/demo", 1, 20);
    for (who, creds) in [("anonymous", None), ("alice", Some(alice))] {
        let (mut s, code) = connect_as(&svc, 5, &format!("thief-{who}"), creds);
        assert_eq!(code, 0);
        assert_eq!(
            suback_code(&mut s, 5, "$share/bob-dev/app/demo"),
            NOT_AUTHORIZED,
            "{who}"
        );
        // Under the victim's own client id (free while it is offline), the plain
        // subscription is refused all the same: the group is bob's.
        let (mut s, code) = connect_as(&svc, 5, "bob-dev", creds);
        assert_eq!(code, 0);
        assert_eq!(suback_code(&mut s, 5, "app/demo"), NOT_AUTHORIZED, "{who}");
        s.write_all(&[0xE0, 0x00]).unwrap();
        assert!(closed_within(&mut s, T));
    }
    victim_gets_everything(&svc, "bob-dev", Some(bob), "app/demo", &backlog);

    // alice's shared group: bob is refused, anonymous too; another client of alice joins.
    let backlog2 =
        victim_with_backlog(&svc, "alice-1", Some(alice), "$share/team/app/demo", 21, 20);
    let (mut s, _) = connect_as(&svc, 5, "bob-2", Some(bob));
    assert_eq!(
        suback_code(&mut s, 5, "$share/team/app/demo"),
        NOT_AUTHORIZED
    );
    let (mut s, _) = connect_as(&svc, 4, "anon-2", None);
    assert_eq!(suback_code(&mut s, 4, "$share/team/app/demo"), V3_FAILURE);
    victim_gets_everything(
        &svc,
        "alice-2",
        Some(alice),
        "$share/team/app/demo",
        &backlog2,
    );

    let all: Vec<u64> = backlog.iter().chain(&backlog2).copied().collect();
    assert_eq!(collect_seqs(&steady, all.len(), T), all);
}

#[test]
fn takeover_only_by_the_same_identity() {
    let u = users("demo");
    let svc = Service::start_with("", &u.toml, &[]);
    let steady = steady(&svc, "demo");
    let alice = ("alice", u.alice.as_str());
    let bob = ("bob", u.bob.as_str());

    let (mut first, code) = connect_as(&svc, 4, "alice-phone", Some(alice));
    assert_eq!(code, 0);
    assert_eq!(suback_code(&mut first, 4, "app/demo"), 1);
    // Anonymous (v5 and v3.1.1) and bob are refused; alice's connection stays.
    for _ in 0..3 {
        assert_eq!(connect_as(&svc, 5, "alice-phone", None).1, 0x85);
        assert_eq!(connect_as(&svc, 4, "alice-phone", None).1, 2);
        assert_eq!(connect_as(&svc, 5, "alice-phone", Some(bob)).1, 0x85);
    }
    svc.ingest_seq("device2", 1);
    assert_eq!(
        read_seqs(&mut first, 1, T),
        [1],
        "the first connection stays"
    );

    // alice herself takes over (spec 2.6).
    let (_second, code) = connect_as(&svc, 5, "alice-phone", Some(alice));
    assert_eq!(code, 0);
    assert!(
        closed_within(&mut first, Duration::from_secs(3)),
        "alice's first connection was not taken over"
    );
    assert_eq!(collect_seqs(&steady, 1, T), [1]);
}

/// A token user and an API-key user of the same name are one identity; an admin (token with
/// `auth.oauth.admin_role`) may join anyone's group and take over anyone's client id.
#[test]
fn same_name_is_same_identity_and_admins_may_do_anything() {
    let u = users("demo");
    let svc = Service::start_with(OAUTH, &u.toml, &[]);
    let steady = steady(&svc, "demo");
    let bob_key = ("bob", u.bob.as_str());
    let bob_token = token("bob", false);
    let backlog = victim_with_backlog(&svc, "bob-dev", Some(bob_key), "app/demo", 1, 10);
    // bob with a token reads the group bob made with his API key.
    victim_gets_everything(
        &svc,
        "bob-dev",
        Some((bob_token.as_str(), "")),
        "app/demo",
        &backlog,
    );

    // alice with a token is not bob; an admin is allowed in.
    let alice_token = token("alice", false);
    let (mut s, _) = connect_as(&svc, 5, "alice-t", Some((alice_token.as_str(), "")));
    assert_eq!(
        suback_code(&mut s, 5, "$share/bob-dev/app/demo"),
        NOT_AUTHORIZED
    );
    let root = token("root", true);
    let (mut admin, code) = connect_as(&svc, 4, "root-1", Some((root.as_str(), "")));
    assert_eq!(code, 0);
    assert_eq!(suback_code(&mut admin, 4, "$share/bob-dev/app/demo"), 1);
    svc.ingest_seq("device1", 11);
    assert_eq!(read_seqs(&mut admin, 1, T), [11]);

    // The admin takes over alice's connection.
    let (mut first, _) = connect_as(&svc, 4, "alice-phone", Some(("alice", u.alice.as_str())));
    let (_root2, code) = connect_as(&svc, 5, "alice-phone", Some((root.as_str(), "")));
    assert_eq!(code, 0);
    assert!(closed_within(&mut first, Duration::from_secs(3)));

    let all: Vec<u64> = (1..=11).collect();
    assert_eq!(collect_seqs(&steady, all.len(), T), all);
}
