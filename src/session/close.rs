//! How a session ends: the connect, keep-alive and token timeouts, take-over, rights revoked by
//! a reload, shutdown, protocol violations and decode errors (DISCONNECT with a reason to v5
//! clients), and the teardown that hands the groups to leave back to the shell.

use std::time::Instant;

use super::deliver::take_unsent;
use super::filter::parse;
use super::{encode_into, CloseReason, Session, State};
use crate::protocol::{DecodeError, Disconnect, Packet, Properties, ReasonCode, Version};
use crate::registry::{Access, Registry};
use crate::seam::{AckToken, GroupKey};

impl Session {
    /// Checks the connect timeout and keep-alive.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(deadline) = self.poll_timeout() else {
            return;
        };
        if now < deadline {
            return;
        }
        match self.state {
            State::AwaitingConnect | State::Authenticating => {
                self.finish(CloseReason::ConnectTimeout)
            }
            State::Connected => {
                if self.auth_deadline.is_some_and(|t| now >= t) {
                    // Spec 2.6: the token expired and was not renewed with AUTH.
                    return self.disconnect(
                        ReasonCode::MAXIMUM_CONNECT_TIME,
                        "access token expired; send AUTH (method oauth2) with a fresh token before it expires",
                        CloseReason::TokenExpired,
                    );
                }
                if self.keep_alive_deadline().is_some_and(|t| now >= t) {
                    // [MQTT-3.1.2-24] close after 1.5 × Keep Alive without a packet.
                    self.disconnect(
                        ReasonCode::KEEP_ALIVE_TIMEOUT,
                        "keep alive timeout",
                        CloseReason::KeepAliveTimeout,
                    );
                }
            }
            State::Closed => {}
        }
    }

    /// Another connection took this client id (spec 2.6).
    pub fn taken_over(&mut self) {
        self.disconnect(
            ReasonCode::SESSION_TAKEN_OVER,
            "another connection with the same client id",
            CloseReason::TakenOver,
        );
    }

    /// The registry was replaced (a reload): a subscriber that may no longer read an application
    /// it subscribed to, or whose application is gone, is disconnected (v5: DISCONNECT `0x87`
    /// Not authorized; v3.1.1, which has no DISCONNECT from the server, is closed). Returns
    /// whether it was. Dropping only the subscription would leave the client waiting for
    /// events that never come, with no way to learn why.
    pub fn recheck_rights(&mut self, registry: &Registry) -> bool {
        if self.state != State::Connected {
            return false;
        }
        let Some(subs) = self.subscribed.as_deref() else {
            return false;
        };
        let revoked = subs.subscriptions.keys().find_map(|filter| {
            // Every held filter parsed when it was granted.
            let app = parse(filter).ok()?.app;
            let allowed = registry.authorize(&self.identity, app, Access::Read);
            allowed.is_err().then(|| app.to_owned())
        });
        let Some(app) = revoked else {
            return false;
        };
        tracing::info!(client = %self.client_id, app, "a reload revoked this client's read permission; disconnecting");
        self.disconnect(
            ReasonCode::NOT_AUTHORIZED,
            &format!("not authorized: no read permission on application {app} any more (configuration reloaded)"),
            CloseReason::RightsRevoked { app },
        );
        true
    }

    /// The server is stopping (spec 6).
    pub fn shutdown(&mut self) {
        self.disconnect(
            ReasonCode::SERVER_SHUTTING_DOWN,
            "server shutting down",
            CloseReason::ServerShutdown,
        );
    }

    /// The session is going away: the groups to leave, each with its deliveries that were never
    /// sent; every queued cost is released.
    pub fn teardown(&mut self) -> Vec<(GroupKey, Vec<AckToken>)> {
        if self.state != State::Closed {
            self.state = State::Closed;
        }
        self.released += u64::from(self.out.release_all());
        let Some(mut subs) = self.subscribed.take() else {
            return Vec::new();
        };
        let subs = &mut *subs;
        let out = subs
            .groups
            .drain()
            .map(|(group, member)| {
                let unsent = take_unsent(&mut subs.pending, member, &mut self.released);
                (group, unsent)
            })
            .collect();
        self.released += subs
            .pending
            .drain(..)
            .map(|d| u64::from(d.cost))
            .sum::<u64>();
        out
    }

    pub(super) fn decode_failed(&mut self, e: DecodeError) {
        match (self.state, &e) {
            (State::AwaitingConnect, DecodeError::UnsupportedProtocolVersion { .. }) => {
                // [MQTT-3.1.2-2] answer an unknown protocol level with return code 1 (the 3.1.1
                // form: a client of an unknown version cannot be assumed to read v5 properties).
                self.refuse_connect_with(
                    Version::V311,
                    ReasonCode::V3_UNACCEPTABLE_PROTOCOL_VERSION,
                    CloseReason::ProtocolViolation {
                        code: e.reason_code(),
                        detail: e.to_string(),
                    },
                );
            }
            (State::AwaitingConnect, _) => {
                self.finish(CloseReason::ProtocolViolation {
                    code: e.reason_code(),
                    detail: e.to_string(),
                });
            }
            _ => {
                let detail = e.to_string();
                self.disconnect(
                    e.reason_code(),
                    &detail,
                    CloseReason::ProtocolViolation {
                        code: e.reason_code(),
                        detail: detail.clone(),
                    },
                );
            }
        }
    }

    pub(super) fn violation(&mut self, code: ReasonCode, detail: &str) {
        self.disconnect(
            code,
            detail,
            CloseReason::ProtocolViolation {
                code,
                detail: detail.to_owned(),
            },
        );
    }

    /// Closes, telling a connected v5 client why with DISCONNECT and a Reason String.
    pub(super) fn disconnect(&mut self, code: ReasonCode, reason: &str, why: CloseReason) {
        if self.state == State::Connected && self.version == Version::V5 {
            let properties = Properties {
                reason_string: Some(reason),
                ..Properties::default()
            };
            encode_into(
                &mut self.out,
                Version::V5,
                &Packet::Disconnect(Disconnect { code, properties }),
            );
        }
        self.finish(why);
    }

    pub(super) fn finish(&mut self, why: CloseReason) {
        if self.state != State::Closed {
            self.state = State::Closed;
            self.close_reason = Some(Box::new(why));
        }
    }
}
