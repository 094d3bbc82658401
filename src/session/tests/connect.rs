//! CONNECT, CONNACK and AUTH: what is advertised, what is refused, access tokens and their renewal.

use super::*;

#[test]
fn connack_advertises_the_capabilities_of_spec_2_6() {
    let mut c = Client::new(Version::V5);
    c.send(&connect(Version::V5, "", false, 30, Properties::default()));
    let Some(SessionEvent::Connect(req)) = c.s.poll_event() else {
        panic!("no Connect event")
    };
    assert!(
        req.client_id.starts_with("auto-"),
        "an empty client id gets one assigned"
    );
    c.s.accept_connect(c.now, Identity::Anonymous);
    let out = c.received();
    let [Owned::ConnAck { code: 0, props }] = &out[..] else {
        panic!("{out:?}")
    };
    for expected in [
        "receive_maximum: Some(8)",
        "maximum_packet_size: Some(4096)",
        "topic_alias_maximum: Some(0)",
        "retain_available: Some(0)",
        "wildcard_subscription_available: Some(1)",
        "subscription_identifier_available: Some(1)",
        "shared_subscription_available: Some(1)",
        "assigned_client_identifier: Some(\"auto-",
    ] {
        assert!(
            props.contains(expected),
            "CONNACK lacks {expected}: {props}"
        );
    }
}

#[test]
fn first_packet_must_be_connect() {
    let mut c = Client::new(Version::V5);
    c.send(&Packet::PingReq);
    assert!(c.s.is_closed());
    assert!(c.received().is_empty());
}

#[test]
fn v311_empty_client_id_needs_clean_session() {
    let mut c = Client::new(Version::V311);
    c.send(&connect(Version::V311, "", false, 0, Properties::default()));
    assert!(matches!(
        &c.received()[..],
        [Owned::ConnAck { code: 2, .. }]
    ));
    assert!(c.s.is_closed());
}

#[test]
fn token_expiry_disconnects_unless_auth_renews() {
    let mut c = Client::connected(Version::V5, "c1", None);
    c.s.set_auth_deadline(Some(c.now + Duration::from_secs(5)));
    assert_eq!(
        c.s.poll_timeout(),
        Some(c.now + Duration::from_secs(5)),
        "the token expires before keep-alive"
    );
    let auth = |method: &'static str, token: &'static [u8]| {
        Packet::Auth(Auth {
            code: ReasonCode::RE_AUTHENTICATE,
            properties: Properties {
                authentication_method: Some(method),
                authentication_data: Some(token),
                ..Properties::default()
            },
        })
    };
    c.send(&auth("oauth2", b"fresh"));
    let events = c.events();
    assert!(
        matches!(&events[..], [SessionEvent::Reauthenticate { token }] if token == "fresh"),
        "{events:?}"
    );
    c.s.reauthenticated(Ok(Some(c.now + Duration::from_secs(60))));
    let out = c.received();
    assert!(
        matches!(&out[..], [Owned::Other(p)] if p.contains("Auth")),
        "AUTH Success: {out:?}"
    );
    c.s.handle_timeout(c.now + Duration::from_secs(6));
    assert!(!c.s.is_closed(), "renewed");
    c.s.handle_timeout(c.now + Duration::from_secs(61));
    assert_eq!(c.s.close_reason(), Some(&CloseReason::TokenExpired));
    assert_eq!(c.received(), vec![Owned::Disconnect { code: 0xA0 }]);

    let mut c = Client::connected(Version::V5, "c2", None);
    c.send(&auth("kerberos", b"x"));
    assert_eq!(c.received(), vec![Owned::Disconnect { code: 0x82 }]);

    let mut c = Client::connected(Version::V5, "c3", None);
    c.send(&auth("oauth2", b"stale"));
    c.events();
    c.s.reauthenticated(Err(()));
    assert_eq!(c.received(), vec![Owned::Disconnect { code: 0x87 }]);
}

#[test]
fn connect_with_oauth2_method_hands_the_token_over() {
    let mut c = Client::new(Version::V5);
    c.send(&connect(
        Version::V5,
        "c1",
        true,
        0,
        Properties {
            authentication_method: Some("oauth2"),
            authentication_data: Some(b"the-token"),
            ..Properties::default()
        },
    ));
    let Some(SessionEvent::Connect(req)) = c.s.poll_event() else {
        panic!("no Connect event")
    };
    assert_eq!(req.oauth2_token.as_deref(), Some("the-token"));
    c.s.accept_connect(c.now, Identity::Anonymous);
    let out = c.received();
    let [Owned::ConnAck { code: 0, props }] = &out[..] else {
        panic!("{out:?}")
    };
    assert!(
        props.contains("authentication_method: Some(\"oauth2\")"),
        "{props}"
    );
}
