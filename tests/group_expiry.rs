//! Issue #17, item 5: idle groups expire. With `backend.group_retention = "2s"`, 200 groups
//! whose members left are forgotten (offsets and owner): `mqtt_integration_groups` goes to 0,
//! `/metrics` lists none of them, and a group that expired starts again like a new group (at
//! the end of the log, any identity may create it). A steady subscriber misses nothing meanwhile.

mod common;
#[path = "common/owners.rs"]
mod owners;

use std::io::Write;
use std::time::Duration;

use common::*;
use owners::*;

const T: Duration = Duration::from_secs(10);

#[test]
fn two_hundred_idle_groups_expire() {
    let u = users("demo");
    let svc = Service::start_with("[backend]\ngroup_retention = \"2s\"\n", &u.toml, &[]);
    let steady = steady(&svc, "demo");

    // 199 shared groups from one connection, and one client group ("again") left with a
    // backlog it never reads.
    let (mut s, code) = connect_as(&svc, 4, "many", None);
    assert_eq!(code, 0);
    for i in 0..199 {
        assert_eq!(suback_code(&mut s, 4, &format!("$share/g{i}/app/demo")), 1);
    }
    let (mut again, _) = connect_as(&svc, 4, "again", None);
    assert_eq!(suback_code(&mut again, 4, "app/demo"), 1);
    assert_eq!(gauge(&svc, "mqtt_integration_groups"), Some(200));
    let text = svc.metrics();
    assert!(
        text.contains("mqtt_integration_group_lag{group=\"demo.g7\"}"),
        "{text}"
    );

    again.write_all(&[0xE0, 0x00]).unwrap();
    assert!(closed_within(&mut again, T));
    for seq in 1..=5 {
        svc.ingest_seq("device1", seq);
    }
    let got = read_seqs(&mut s, 5, T);
    assert_eq!(got.len(), 5, "the shared groups' member got {got:?}");
    s.write_all(&[0xE0, 0x00]).unwrap();
    assert!(closed_within(&mut s, T));

    // Still known within the retention (the backlog of "again" is lag).
    assert_eq!(gauge(&svc, "mqtt_integration_groups"), Some(200));
    assert!(eventually(Duration::from_secs(10), || gauge(
        &svc,
        "mqtt_integration_groups"
    ) == Some(0)));
    let text = svc.metrics();
    assert!(
        !text.contains("mqtt_integration_group_lag{"),
        "expired groups still listed:\n{text}"
    );
    assert!(
        svc.log().contains("forgot consumer groups"),
        "{}",
        svc.log()
    );

    // "again" expired with its backlog and owner: it starts at the end, like a new group,
    // and another identity may create it now.
    let alice = ("alice", u.alice.as_str());
    let (mut again, code) = connect_as(&svc, 4, "again", Some(alice));
    assert_eq!(code, 0);
    assert_eq!(suback_code(&mut again, 4, "app/demo"), 1);
    svc.ingest_seq("device1", 6);
    assert_eq!(
        read_seqs(&mut again, 1, T),
        [6],
        "the expired backlog came back"
    );
    assert!(read_seqs(&mut again, 1, Duration::from_millis(300)).is_empty());
    assert_eq!(gauge(&svc, "mqtt_integration_groups"), Some(1));

    assert_eq!(collect_seqs(&steady, 6, T), [1, 2, 3, 4, 5, 6]);
}
