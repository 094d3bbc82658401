//! CONNECT and authentication: checking a CONNECT and handing it to the shell, the shell's
//! answer (accept or refuse with CONNACK), the access token's deadline and its renewal with AUTH
//! ([MQTT-4.12.1]). Nothing here touches subscriptions, deliveries or commands.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::{
    encode_into, CloseReason, ConnectRefusal, ConnectRequest, Flags, Session, SessionEvent, State,
    OAUTH2_METHOD,
};
use crate::protocol::{Auth, ConnAck, Connect, Packet, Properties, ReasonCode, Version};
use crate::registry::Identity;

impl ConnectRefusal {
    fn code(self, version: Version) -> ReasonCode {
        match (version, self) {
            (Version::V5, ConnectRefusal::BadCredentials) => ReasonCode::BAD_USER_NAME_OR_PASSWORD,
            (Version::V5, ConnectRefusal::NotAuthorized) => ReasonCode::NOT_AUTHORIZED,
            (Version::V5, ConnectRefusal::ServerBusy) => ReasonCode::SERVER_BUSY,
            (Version::V5, ConnectRefusal::ServerUnavailable) => ReasonCode::SERVER_UNAVAILABLE,
            (Version::V5, ConnectRefusal::ClientIdInUse) => ReasonCode::CLIENT_IDENTIFIER_NOT_VALID,
            (Version::V311, ConnectRefusal::ClientIdInUse) => ReasonCode::V3_IDENTIFIER_REJECTED,
            // MQTT 3.1.1 table 3.1: CONNACK return codes.
            (Version::V311, ConnectRefusal::BadCredentials) => {
                ReasonCode::V3_BAD_USER_NAME_OR_PASSWORD
            }
            (Version::V311, ConnectRefusal::NotAuthorized) => ReasonCode::V3_NOT_AUTHORIZED,
            (Version::V311, _) => ReasonCode::V3_SERVER_UNAVAILABLE,
        }
    }
}

impl Session {
    /// The connection is accepted: send CONNACK and start serving.
    pub fn accept_connect(&mut self, now: Instant, identity: Identity) {
        if self.state != State::Authenticating {
            return;
        }
        self.identity = identity;
        self.state = State::Connected;
        self.last_rx = now;
        let mut properties = Properties::default();
        if self.version == Version::V5 {
            // Spec 2.6: what CONNACK advertises.
            properties.receive_maximum = Some(self.config.server_receive_maximum);
            properties.maximum_packet_size = Some(self.config.max_packet_size);
            properties.topic_alias_maximum = Some(0);
            properties.retain_available = Some(0);
            properties.wildcard_subscription_available = Some(1);
            properties.subscription_identifier_available = Some(1);
            properties.shared_subscription_available = Some(1);
            if let Some(ka) = self.config.server_keep_alive {
                properties.server_keep_alive = Some(ka);
            }
            if self.flags.has(Flags::CLIENT_ID_ASSIGNED) {
                properties.assigned_client_identifier = Some(&self.client_id);
            }
            if self.flags.has(Flags::OAUTH2) {
                properties.authentication_method = Some(OAUTH2_METHOD);
            }
        }
        let connack = Packet::ConnAck(ConnAck {
            session_present: false,
            code: ReasonCode::SUCCESS,
            properties,
        });
        encode_into(&mut self.out, self.version, &connack);
    }

    /// The access token expires at `deadline` (None: credentials that do not expire). At the
    /// deadline the connection is closed (v5 DISCONNECT 0xA0) unless AUTH renewed it.
    pub fn set_auth_deadline(&mut self, deadline: Option<Instant>) {
        self.auth_deadline = deadline;
    }

    /// The shell checked the token of a [`SessionEvent::Reauthenticate`]: `Ok` with the new
    /// token's expiry answers AUTH Success; `Err` disconnects (0x87).
    pub fn reauthenticated(&mut self, result: Result<Option<Instant>, ()>) {
        if self.state != State::Connected {
            return;
        }
        match result {
            Ok(deadline) => {
                self.auth_deadline = deadline;
                let properties = Properties {
                    authentication_method: Some(OAUTH2_METHOD),
                    ..Properties::default()
                };
                let auth = Packet::Auth(Auth {
                    code: ReasonCode::SUCCESS,
                    properties,
                });
                encode_into(&mut self.out, self.version, &auth);
            }
            Err(()) => self.disconnect(
                ReasonCode::NOT_AUTHORIZED,
                "re-authentication refused",
                CloseReason::ReauthenticationFailed,
            ),
        }
    }

    /// The connection is refused: send CONNACK with the reason and close.
    pub fn reject_connect(&mut self, refusal: ConnectRefusal) {
        if self.state != State::Authenticating {
            return;
        }
        self.refuse_connect_with(
            self.version,
            refusal.code(self.version),
            CloseReason::ConnectRefused(refusal),
        );
    }

    /// Answers CONNECT with a refusal `code` in CONNACK (in `version`'s form) and closes.
    pub(super) fn refuse_connect_with(
        &mut self,
        version: Version,
        code: ReasonCode,
        why: CloseReason,
    ) {
        let connack = Packet::ConnAck(ConnAck {
            session_present: false,
            code,
            properties: Properties::default(),
        });
        encode_into(&mut self.out, version, &connack);
        self.finish(why);
    }

    pub(super) fn handle_connect(&mut self, c: Connect<'_>) {
        self.version = c.version;
        // `last_rx` is now: the connect timeout restarts for authentication.
        if c.client_id.is_empty() && !c.clean_start && c.version == Version::V311 {
            // [MQTT-3.1.3-8] empty client id needs Clean Session 1: return code 2.
            self.refuse_connect_with(
                self.version,
                ReasonCode::V3_IDENTIFIER_REJECTED,
                CloseReason::ProtocolViolation {
                    code: ReasonCode::CLIENT_IDENTIFIER_NOT_VALID,
                    detail: "empty client id with clean session 0".into(),
                },
            );
            return;
        }
        let mut oauth2_token = None;
        if c.properties.authentication_method == Some(OAUTH2_METHOD) {
            // Spec 2.6 extension: the token as Authentication Data, renewable with AUTH.
            self.flags.set(Flags::OAUTH2, true);
            oauth2_token = c
                .properties
                .authentication_data
                .and_then(|d| std::str::from_utf8(d).ok())
                .map(str::to_owned);
            if oauth2_token.is_none() {
                self.refuse_connect_with(
                    self.version,
                    ReasonCode::BAD_USER_NAME_OR_PASSWORD,
                    CloseReason::ConnectRefused(ConnectRefusal::BadCredentials),
                );
                return;
            }
        } else if c.properties.authentication_method.is_some() {
            self.refuse_connect_with(
                self.version,
                ReasonCode::BAD_AUTHENTICATION_METHOD,
                CloseReason::ProtocolViolation {
                    code: ReasonCode::BAD_AUTHENTICATION_METHOD,
                    detail: "enhanced authentication is not supported".into(),
                },
            );
            return;
        }
        // Will messages are accepted and discarded (spec 2.5).
        let (receive_max, max_packet) = match c.version {
            // [MQTT-3.1.2-?] v5: absent Receive Maximum means 65,535.
            Version::V5 => (
                c.properties.receive_maximum.unwrap_or(u16::MAX),
                c.properties.maximum_packet_size.unwrap_or(u32::MAX),
            ),
            Version::V311 => (self.config.default_receive_maximum, u32::MAX),
        };
        self.client_receive_max = receive_max.min(self.config.max_inflight).max(1);
        self.client_max_packet = max_packet;
        // [MQTT-3.1.2-28/29] 0: no Reason String on anything but PUBLISH, CONNACK, DISCONNECT.
        self.flags.set(
            Flags::NO_PROBLEM_INFO,
            c.properties.request_problem_information == Some(0),
        );
        let keep_alive = match (c.version, self.config.server_keep_alive) {
            (Version::V5, Some(server)) => server,
            _ => c.keep_alive,
        };
        self.keep_alive = keep_alive;
        if c.client_id.is_empty() {
            // [MQTT-3.1.3-6] the server assigns an id; its groups stay ephemeral (spec 2.1).
            self.client_id = Arc::from(format!(
                "auto-{}-{}-{}",
                self.conn.shard, self.conn.slot, self.conn.generation
            ));
            self.flags.set(Flags::CLIENT_ID_ASSIGNED, true);
        } else {
            self.client_id = Arc::from(c.client_id);
        }
        self.state = State::Authenticating;
        self.events.push_back(SessionEvent::Connect(ConnectRequest {
            version: c.version,
            client_id: self.client_id.to_string(),
            clean_start: c.clean_start,
            username: c.username.map(str::to_owned),
            password: c.password.map(Bytes::copy_from_slice),
            oauth2_token,
        }));
    }

    /// [MQTT-4.12.1] re-authentication. Spec 2.6 (extension): method `oauth2`, data = a fresh
    /// access token. Accepted whether or not CONNECT named the method, so that a client that
    /// connected with the token as password can renew it too.
    pub(super) fn handle_auth(&mut self, a: Auth<'_>) {
        if a.properties.authentication_method != Some(OAUTH2_METHOD) {
            // 0x8C is not a DISCONNECT code (3.14.2.1); a method other than the one in use is
            // a Protocol Error [MQTT-4.12.1-1].
            return self.violation(
                ReasonCode::PROTOCOL_ERROR,
                "only Authentication Method oauth2 is supported",
            );
        }
        if a.code != ReasonCode::RE_AUTHENTICATE {
            return self.violation(
                ReasonCode::PROTOCOL_ERROR,
                "a client AUTH must have reason Re-authenticate (0x19)",
            );
        }
        match a.properties.authentication_data.map(std::str::from_utf8) {
            Some(Ok(token)) => self.events.push_back(SessionEvent::Reauthenticate {
                token: token.to_owned(),
            }),
            _ => self.reauthenticated(Err(())),
        }
    }
}
