//! One MQTT connection's state machine, sans-IO.
//!
//! A [`Session`] takes bytes in ([`Session::handle_input`]), backend answers and deliveries
//! ([`Session::joined`], [`Session::deliver`], [`Session::command_done`]) and the time
//! ([`Session::handle_timeout`]); it hands out what to write ([`Session::out`]) and what the
//! shell must do ([`Session::poll_event`]). It knows nothing of sockets, threads, clocks or the
//! backend's implementation: the shard is a thin shell around it, and tests drive it directly.
//!
//! Owns: the MQTT rules of one connection (CONNECT, SUBSCRIBE, the QoS 1 window, commands,
//! close). Must not touch: sockets, threads, the wall clock or a backend; it speaks to backends
//! only in the seam's types ([`crate::seam`]).

mod filter;
mod inbound;
mod inflight;
mod outbound;
mod subscribed;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

pub use filter::{parse as parse_filter, parse_command_topic, CommandTopic, FilterError, Target};
use inbound::{Inbound, InboundAck};
pub use outbound::OutQueue;
use subscribed::{PendingSubAck, Subscribed, Subscription};

use crate::cloudevents::STRUCTURED_CONTENT_TYPE;
use crate::protocol::{
    self, Ack, Auth, ConnAck, Connect, DecodeError, Disconnect, Packet, Properties, Publish,
    PublishHeader, PublishProperties, QoS, ReasonCode, SubAck, Subscribe, UnsubAck, Unsubscribe,
    Version,
};
use crate::registry::{Access, Identity, Registry};
use crate::seam::{
    AckToken, AppTopics, BackendError, ConnId, Delivery, GroupKey, MemberFilter, Mode, StartAt,
    START_FORMS,
};

/// Settings shared by every session of a server.
#[derive(Debug)]
pub struct SessionConfig {
    /// Largest packet accepted from clients, advertised as Maximum Packet Size (v5).
    pub max_packet_size: u32,
    /// QoS 1 window towards MQTT 3.1.1 clients, which cannot announce one.
    pub default_receive_maximum: u16,
    /// Unacknowledged QoS 1/2 commands a client may have outstanding (our Receive Maximum).
    pub server_receive_maximum: u16,
    /// Upper bound on any client's window: a v5 client that announces none means 65,535.
    pub max_inflight: u16,
    pub connect_timeout: Duration,
    /// If set, overrides clients' keep-alive (sent as Server Keep Alive to v5 clients).
    pub server_keep_alive: Option<u16>,
    /// Filters one connection may hold (`mqtt.max_subscriptions_per_connection`).
    pub max_subscriptions: usize,
    pub registry: Arc<Registry>,
}

/// What the shell must do on the session's behalf.
#[derive(Debug)]
pub enum SessionEvent {
    /// A CONNECT arrived: authenticate, take over the client id, then call
    /// [`Session::accept_connect`] or [`Session::reject_connect`].
    Connect(ConnectRequest),
    /// Join (or update the filters of) a consumer group; answer with [`Session::joined`].
    Join {
        member: u32,
        request: u64,
        app: Arc<str>,
        group: GroupKey,
        filters: Vec<MemberFilter>,
        /// Where a group that does not exist yet begins (spec 2.1 `start`).
        start: StartAt,
    },
    /// Leave a consumer group; `unsent` are QoS 1 deliveries of it that were held back behind
    /// the window and never sent (so they are not redeliveries next time).
    Leave {
        group: GroupKey,
        unsent: Vec<AckToken>,
    },
    /// Write a command to the backend; answer with [`Session::command_done`] unless QoS 0.
    Command(Command),
    /// A command was refused before reaching the backend (for metrics and logs).
    CommandRefused {
        reason: CommandRefusal,
        topic: String,
    },
    /// A QoS 1 delivery was acknowledged by the client.
    Ack(AckToken),
    /// MQTT 5 AUTH with method `oauth2`: check this fresh token, then call
    /// [`Session::reauthenticated`].
    Reauthenticate { token: String },
}

#[derive(Debug, Clone)]
pub struct ConnectRequest {
    pub version: Version,
    pub client_id: String,
    pub clean_start: bool,
    pub username: Option<String>,
    pub password: Option<Bytes>,
    /// MQTT 5 Authentication Method `oauth2`: the access token from the Authentication Data.
    pub oauth2_token: Option<String>,
}

/// The MQTT 5 Authentication Method of access tokens (spec 2.6, extension): in CONNECT with the
/// token as Authentication Data, and in AUTH to re-authenticate before the token expires.
pub const OAUTH2_METHOD: &str = "oauth2";

#[derive(Debug, Clone)]
pub struct Command {
    /// 0 for QoS 0 (no answer expected).
    pub packet_id: u16,
    pub app: String,
    pub device: String,
    pub command: String,
    /// v5 Content Type property, if the client sent one.
    pub content_type: Option<String>,
    pub payload: Bytes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandRefusal {
    /// Unknown application or device, disabled device, or no write permission (all 0x87).
    NotAuthorized,
    /// Not `command/<a>/<d>/<c>` (0x90).
    InvalidTopic,
}

/// Why a CONNECT is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectRefusal {
    BadCredentials,
    NotAuthorized,
    ServerBusy,
    ServerUnavailable,
    /// The client id is held by a connection of another identity (issue #17).
    ClientIdInUse,
}

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

/// Why a session ended (for logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The client sent DISCONNECT.
    ClientDisconnect(ReasonCode),
    /// The client broke the protocol; v5 clients were told with this code.
    ProtocolViolation {
        code: ReasonCode,
        detail: String,
    },
    ConnectTimeout,
    KeepAliveTimeout,
    /// The access token expired and was not renewed with AUTH.
    TokenExpired,
    /// An AUTH with a token that was refused.
    ReauthenticationFailed,
    ConnectRefused(ConnectRefusal),
    TakenOver,
    ServerShutdown,
    /// An MQTT 3.1.1 command failed; 3.1.1 has no way to say so but closing (spec 2.5).
    CommandFailed(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitingConnect,
    Authenticating,
    Connected,
    Closed,
}

/// Counters the shell moves into the process metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Events delivered, indexed by [mode][qos]: structured=0, binary=1.
    pub delivered: [[u64; 2]; 2],
    /// Payload bytes delivered, indexed by [mode][qos].
    pub delivered_bytes: [[u64; 2]; 2],
    pub acked: u64,
}

/// One connection's protocol state.
///
/// Laid out for the idle connection, the common case by far (issue #5: 19,000 of them per
/// process): what every connection needs is inline and small; what only a subscriber or a
/// sender of QoS 1/2 commands needs is behind a pointer that stays null until then
/// (`subscribed.rs`, `inbound.rs`), and so are the rare close reason and the deliveries' part of
/// the [`OutQueue`]. 728 bytes with everything inline, 216 now; the tests
/// `idle_sessions_keep_nothing_out_of_line` and `shard::connection::idle_connection_stays_small`
/// guard it.
pub struct Session {
    conn: ConnId,
    config: Arc<SessionConfig>,
    client_id: Arc<str>,
    identity: Identity,
    /// When the last whole packet arrived, or the session was created or accepted: the
    /// keep-alive reference once connected, the connect timeout's start before.
    last_rx: Instant,
    /// When the access token the connection authenticated with expires.
    auth_deadline: Option<Instant>,
    out: OutQueue,
    events: VecDeque<SessionEvent>,
    released: u64,
    /// Allocated by the first SUBSCRIBE and kept: member and request ids must not be reused.
    subscribed: Option<Box<Subscribed>>,
    /// Allocated by the first QoS 1/2 PUBLISH, freed by [`Session::trim`] once empty.
    inbound: Option<Box<Inbound>>,
    close_reason: Option<Box<CloseReason>>,
    client_max_packet: u32,
    /// Seconds; 0 = none.
    keep_alive: u16,
    client_receive_max: u16,
    state: State,
    version: Version,
    /// One byte for the connection's yes/no facts: a byte more would grow every idle
    /// connection by eight (`idle_sessions_keep_nothing_out_of_line`).
    flags: Flags,
}

/// The session's yes/no facts, packed.
#[derive(Debug, Clone, Copy, Default)]
struct Flags(u8);

impl Flags {
    /// The server assigned the client id ([MQTT-3.1.3-6]): its groups are ephemeral.
    const CLIENT_ID_ASSIGNED: u8 = 1;
    /// The CONNECT used Authentication Method `oauth2` (CONNACK and AUTH then name it).
    const OAUTH2: u8 = 2;
    /// v5 Request Problem Information 0: no Reason String on acknowledgements.
    const NO_PROBLEM_INFO: u8 = 4;

    fn has(self, flag: u8) -> bool {
        self.0 & flag != 0
    }

    fn set(&mut self, flag: u8, on: bool) {
        if on {
            self.0 |= flag;
        } else {
            self.0 &= !flag;
        }
    }
}

/// A Reason String for an acknowledgement, where MQTT 5 allows one: the client asked for problem
/// information ([MQTT-3.1.2-29]) and the packet stays within its Maximum Packet Size (the
/// property "MUST NOT" push it over, [MQTT-3.4.2-2], [MQTT-3.9.2-1]; 256 bytes leave room for
/// the rest of an acknowledgement, and a SUBACK passes its limit less its codes).
fn reason_string(
    version: Version,
    problem_info: bool,
    client_max_packet: u32,
    reason: Option<&str>,
) -> Option<&str> {
    let reason = reason?;
    let fits = reason.len() + 256 <= client_max_packet as usize;
    (version == Version::V5 && problem_info && fits).then_some(reason)
}

fn trim_deque<T>(q: &mut VecDeque<T>) {
    if q.is_empty() && q.capacity() > 0 {
        *q = VecDeque::new();
    }
}

impl Session {
    pub fn new(conn: ConnId, config: Arc<SessionConfig>, now: Instant) -> Session {
        Session {
            conn,
            config,
            client_id: Arc::from(""),
            identity: Identity::Anonymous,
            last_rx: now,
            auth_deadline: None,
            out: OutQueue::default(),
            events: VecDeque::new(),
            released: 0,
            subscribed: None,
            inbound: None,
            close_reason: None,
            client_max_packet: u32::MAX,
            keep_alive: 0,
            client_receive_max: 1,
            state: State::AwaitingConnect,
            version: Version::V311,
            flags: Flags::default(),
        }
    }

    // ----- inputs -------------------------------------------------------------------------

    /// Feeds bytes received from the peer; returns how many were consumed (whole packets only).
    /// The shell keeps the rest and calls again once more arrive. Stops early while a CONNECT
    /// awaits [`Session::accept_connect`] (call again afterwards) and once the session is closed.
    pub fn handle_input(&mut self, now: Instant, buf: &[u8]) -> usize {
        let mut consumed = 0;
        while matches!(self.state, State::AwaitingConnect | State::Connected) {
            let rest = &buf[consumed..];
            // [MQTT-3.1.2-24] / spec 2.6: refuse an oversized packet from its fixed header,
            // before buffering its body.
            let len = match protocol::frame_len(rest, self.config.max_packet_size) {
                Ok(Some(n)) => n,
                Ok(None) => break,
                Err(e) => {
                    self.decode_failed(e);
                    break;
                }
            };
            consumed += len;
            self.last_rx = now;
            let version = (self.state == State::Connected).then_some(self.version);
            match protocol::decode(&rest[..len], version) {
                Ok(packet) => self.handle_packet(packet),
                Err(e) => self.decode_failed(e),
            }
        }
        consumed
    }

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
        let connack = Packet::ConnAck(ConnAck {
            session_present: false,
            code: refusal.code(self.version),
            properties: Properties::default(),
        });
        encode_into(&mut self.out, self.version, &connack);
        self.finish(CloseReason::ConnectRefused(refusal));
    }

    /// The backend answered a [`SessionEvent::Join`].
    pub fn joined(&mut self, member: u32, request: u64, result: Result<(), BackendError>) {
        let Some((subs, pos)) = self.subscribed.as_deref_mut().and_then(|subs| {
            let pos = subs
                .subacks
                .iter()
                .position(|s| s.waiting.iter().any(|w| w.0 == request))?;
            Some((subs, pos))
        }) else {
            if let Err(e) = result {
                tracing::warn!(conn = ?self.conn, member, "updating a subscription failed: {e}");
            }
            return;
        };
        let suback = &mut subs.subacks[pos];
        let w = suback
            .waiting
            .iter()
            .position(|w| w.0 == request)
            .unwrap_or(0);
        let (_, group, indices) = suback.waiting.swap_remove(w);
        if let Err(e) = result {
            tracing::warn!(conn = ?self.conn, ?group, "subscription refused by the backend: {e}");
            suback.reason.get_or_insert_with(|| e.to_string());
            let code = match (&e, self.version) {
                // Issue #17: another identity's group (or one of another kind).
                (BackendError::NotOwner(_), Version::V5) => ReasonCode::NOT_AUTHORIZED,
                (BackendError::NotOwner(_), _) => ReasonCode::V3_SUBACK_FAILURE,
                _ => ReasonCode::UNSPECIFIED_ERROR,
            };
            for i in indices {
                if let Some(c) = suback.codes.get_mut(i) {
                    *c = code;
                }
            }
            // The group never started: forget its filters.
            subs.subscriptions.retain(|_, s| s.group != group);
            if let Some(m) = subs.groups.remove(&group) {
                subs.members.remove(&m);
            }
        }
        self.flush_subacks();
    }

    /// Events from the backend for this connection.
    pub fn deliver(&mut self, delivery: Delivery) {
        let subs = match self.subscribed.as_deref_mut() {
            Some(subs)
                if self.state == State::Connected
                    && subs.members.contains_key(&delivery.member) =>
            {
                subs
            }
            _ => {
                // Unsubscribed or closing: QoS 1 events of it are not acknowledged and will be
                // delivered again to whoever reads the group next.
                self.released += u64::from(delivery.cost);
                return;
            }
        };
        match delivery.qos {
            QoS::AtMostOnce => self.send_delivery(delivery, None),
            _ if subs.pending.is_empty()
                && subs.inflight.len() < usize::from(self.client_receive_max) =>
            {
                let id = subs.inflight.insert(delivery.ack);
                self.send_delivery(delivery, Some(id));
            }
            _ => subs.pending.push_back(delivery),
        }
    }

    /// The backend answered a [`SessionEvent::Command`] (QoS 1 and 2 only).
    pub fn command_done(&mut self, packet_id: u16, result: Result<(), BackendError>) {
        let code = match &result {
            Ok(()) => ReasonCode::SUCCESS,
            Err(BackendError::QuotaExceeded(_)) => ReasonCode::QUOTA_EXCEEDED,
            Err(_) => ReasonCode::UNSPECIFIED_ERROR,
        };
        if let Err(e) = &result {
            if self.version == Version::V311 {
                self.finish(CloseReason::CommandFailed(e.to_string()));
                return;
            }
        }
        if let Some(slot) = self.inbound.as_deref_mut().and_then(|i| {
            i.acks
                .iter_mut()
                .find(|a| a.packet_id == packet_id && a.result.is_none())
        }) {
            slot.result = Some(code);
            slot.reason = result.err().map(|e| e.to_string().into());
        }
        self.flush_inbound();
    }

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

    // ----- outputs ------------------------------------------------------------------------

    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// When [`Session::handle_timeout`] next has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::AwaitingConnect | State::Authenticating => {
                Some(self.last_rx + self.config.connect_timeout)
            }
            State::Connected => match (self.keep_alive_deadline(), self.auth_deadline) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
            State::Closed => None,
        }
    }

    /// [MQTT-3.1.2-24] 1.5 × Keep Alive after the last packet.
    fn keep_alive_deadline(&self) -> Option<Instant> {
        let ka = Duration::from_secs(u64::from(self.keep_alive));
        (self.keep_alive > 0).then(|| self.last_rx + ka + ka / 2)
    }

    /// The bytes to write. After writing, call [`OutQueue::consume`] and pass the released cost
    /// on with [`Session::take_released`] (the shell owns the connection's byte credit).
    pub fn out(&mut self) -> &mut OutQueue {
        &mut self.out
    }

    /// Frees buffers that are empty (called now and then by the shell, so that idle
    /// connections hold no capacity a burst left behind).
    pub fn trim(&mut self) {
        trim_deque(&mut self.events);
        if let Some(subs) = &mut self.subscribed {
            subs.trim();
        }
        if self.inbound.as_ref().is_some_and(|i| i.is_empty()) {
            self.inbound = None;
        }
        self.out.trim();
    }

    /// Delivery cost released by the session itself (dropped or discarded deliveries).
    pub fn take_released(&mut self) -> u64 {
        std::mem::take(&mut self.released)
    }

    pub fn take_stats(&mut self) -> Stats {
        self.subscribed
            .as_mut()
            .map(|subs| std::mem::take(&mut subs.stats))
            .unwrap_or_default()
    }

    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    pub fn is_connected(&self) -> bool {
        self.state == State::Connected
    }

    pub fn close_reason(&self) -> Option<&CloseReason> {
        self.close_reason.as_deref()
    }

    pub fn conn_id(&self) -> ConnId {
        self.conn
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The client id, shared (the shell's registry of client ids keys on it without a copy).
    pub fn client_id_shared(&self) -> &Arc<str> {
        &self.client_id
    }

    pub fn version(&self) -> Version {
        self.version
    }

    pub fn subscription_count(&self) -> usize {
        self.subscribed
            .as_ref()
            .map_or(0, |subs| subs.subscriptions.len())
    }

    pub fn inflight_len(&self) -> usize {
        self.subscribed
            .as_ref()
            .map_or(0, |subs| subs.inflight.len())
    }

    // ----- packet handling ----------------------------------------------------------------

    fn handle_packet(&mut self, packet: Packet<'_>) {
        match (self.state, packet) {
            (State::AwaitingConnect, Packet::Connect(c)) => self.handle_connect(c),
            (State::AwaitingConnect, _) => {
                // [MQTT-3.1.0-1] the first packet must be CONNECT.
                self.finish(CloseReason::ProtocolViolation {
                    code: ReasonCode::PROTOCOL_ERROR,
                    detail: "first packet was not CONNECT".into(),
                });
            }
            (State::Connected, Packet::Publish(p)) => self.handle_publish(p),
            (State::Connected, Packet::PubAck(a)) => self.handle_puback(a),
            (State::Connected, Packet::PubRel(a)) => self.handle_pubrel(a),
            (State::Connected, Packet::Subscribe(s)) => self.handle_subscribe(s),
            (State::Connected, Packet::Unsubscribe(u)) => self.handle_unsubscribe(u),
            (State::Connected, Packet::PingReq) => {
                encode_into(&mut self.out, self.version, &Packet::PingResp)
            }
            (State::Connected, Packet::Disconnect(d)) => {
                self.finish(CloseReason::ClientDisconnect(d.code))
            }
            (State::Connected, Packet::Connect(_)) => {
                self.violation(ReasonCode::PROTOCOL_ERROR, "second CONNECT")
            }
            (State::Connected, Packet::Auth(a)) => self.handle_auth(a),
            (State::Connected, Packet::PubRec(_) | Packet::PubComp(_)) => self.violation(
                ReasonCode::PROTOCOL_ERROR,
                "PUBREC/PUBCOMP: the server never sends QoS 2",
            ),
            (State::Connected, _) => {
                self.violation(ReasonCode::PROTOCOL_ERROR, "packet only a server may send")
            }
            (State::Authenticating | State::Closed, _) => {}
        }
    }

    fn handle_connect(&mut self, c: Connect<'_>) {
        self.version = c.version;
        // `last_rx` is now: the connect timeout restarts for authentication.
        if c.client_id.is_empty() && !c.clean_start && c.version == Version::V311 {
            // [MQTT-3.1.3-8] empty client id needs Clean Session 1: return code 2.
            let connack = Packet::ConnAck(ConnAck {
                session_present: false,
                code: ReasonCode::V3_IDENTIFIER_REJECTED,
                properties: Properties::default(),
            });
            encode_into(&mut self.out, self.version, &connack);
            self.finish(CloseReason::ProtocolViolation {
                code: ReasonCode::CLIENT_IDENTIFIER_NOT_VALID,
                detail: "empty client id with clean session 0".into(),
            });
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
                let connack = Packet::ConnAck(ConnAck {
                    session_present: false,
                    code: ReasonCode::BAD_USER_NAME_OR_PASSWORD,
                    properties: Properties::default(),
                });
                encode_into(&mut self.out, self.version, &connack);
                self.finish(CloseReason::ConnectRefused(ConnectRefusal::BadCredentials));
                return;
            }
        } else if c.properties.authentication_method.is_some() {
            let connack = Packet::ConnAck(ConnAck {
                session_present: false,
                code: ReasonCode::BAD_AUTHENTICATION_METHOD,
                properties: Properties::default(),
            });
            encode_into(&mut self.out, self.version, &connack);
            self.finish(CloseReason::ProtocolViolation {
                code: ReasonCode::BAD_AUTHENTICATION_METHOD,
                detail: "enhanced authentication is not supported".into(),
            });
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
    fn handle_auth(&mut self, a: Auth<'_>) {
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

    fn handle_publish(&mut self, p: Publish<'_>) {
        let v5 = self.version == Version::V5;
        if v5 && p.properties.topic_alias.is_some() {
            // We advertise Topic Alias Maximum 0 [MQTT-3.3.2-9].
            return self.violation(
                ReasonCode::TOPIC_ALIAS_INVALID,
                "topic aliases are not supported",
            );
        }
        if v5 && !p.properties.subscription_identifiers.is_empty() {
            // [MQTT-3.3.4-6] a PUBLISH from a client must not carry a Subscription Identifier:
            // a protocol error, and the PUBLISH is not acknowledged.
            return self.violation(
                ReasonCode::PROTOCOL_ERROR,
                "subscription identifier in a client PUBLISH",
            );
        }
        if v5 && p.retain {
            // [MQTT-3.3.1-?] Retain Available 0: a retained PUBLISH is a protocol error (0x9A).
            return self.violation(
                ReasonCode::RETAIN_NOT_SUPPORTED,
                "retained messages are not supported",
            );
        }
        let packet_id = p.packet_id.unwrap_or(0);
        let awaiting_rel = |i: &Inbound| i.awaiting_rel.contains(&packet_id);
        if p.qos == QoS::ExactlyOnce && self.inbound.as_deref().is_some_and(awaiting_rel) {
            // [MQTT-4.3.3] a re-sent QoS 2 PUBLISH we already accepted: PUBREC again, once.
            let pubrec = Packet::PubRec(Ack {
                packet_id,
                code: ReasonCode::SUCCESS,
                properties: Properties::default(),
            });
            return encode_into(&mut self.out, self.version, &pubrec);
        }
        if p.qos != QoS::AtMostOnce
            && self.inbound.as_ref().map_or(0, |i| i.outstanding())
                >= usize::from(self.config.server_receive_maximum)
        {
            // [MQTT-3.3.4-9] more unacknowledged QoS 1/2 PUBLISHes than our Receive Maximum.
            return self.violation(
                ReasonCode::RECEIVE_MAXIMUM_EXCEEDED,
                "receive maximum exceeded",
            );
        }
        let Some(target) = parse_command_topic(p.topic) else {
            return self.refuse_command(&p, CommandRefusal::InvalidTopic);
        };
        if let Err(e) =
            self.config
                .registry
                .authorize_device_write(&self.identity, target.app, target.device)
        {
            tracing::info!(client = %self.client_id, topic = p.topic, "command refused: {e}");
            return self.refuse_command(&p, CommandRefusal::NotAuthorized);
        }
        if p.qos != QoS::AtMostOnce {
            self.inbound().acks.push_back(InboundAck {
                packet_id,
                qos: p.qos,
                result: None,
                reason: None,
            });
        }
        self.events.push_back(SessionEvent::Command(Command {
            packet_id,
            app: target.app.to_owned(),
            device: target.device.to_owned(),
            command: target.command.to_owned(),
            content_type: p.properties.content_type.map(str::to_owned),
            payload: Bytes::copy_from_slice(p.payload),
        }));
    }

    fn refuse_command(&mut self, p: &Publish<'_>, reason: CommandRefusal) {
        self.events.push_back(SessionEvent::CommandRefused {
            reason,
            topic: p.topic.to_owned(),
        });
        if p.qos == QoS::AtMostOnce {
            return; // spec 2.5: a failed QoS 0 command is dropped (and counted).
        }
        let (code, why) = match reason {
            // One text for an unknown application or device and a missing right, as one
            // code is used for all of them: names cannot be probed (spec 2.5).
            CommandRefusal::NotAuthorized => (
                ReasonCode::NOT_AUTHORIZED,
                parse_command_topic(p.topic).map_or(String::new(), |t| {
                    format!(
                        "not authorized: no write permission for device {} of application {}",
                        t.device, t.app
                    )
                }),
            ),
            CommandRefusal::InvalidTopic => (
                ReasonCode::TOPIC_NAME_INVALID,
                "not a command topic: command/<application>/<device>/<command>".to_owned(),
            ),
        };
        if self.version == Version::V311 {
            // Spec 2.5: MQTT 3.1.1 has no negative PUBACK; the connection is closed.
            return self.finish(CloseReason::CommandFailed(format!(
                "{reason:?} on topic {}",
                p.topic
            )));
        }
        self.inbound().acks.push_back(InboundAck {
            packet_id: p.packet_id.unwrap_or(0),
            qos: p.qos,
            result: Some(code),
            reason: Some(why.into()),
        });
        self.flush_inbound();
    }

    fn inbound(&mut self) -> &mut Inbound {
        self.inbound.get_or_insert_with(Box::default)
    }

    fn subscribed(&mut self) -> &mut Subscribed {
        self.subscribed.get_or_insert_with(Box::default)
    }

    /// [MQTT-4.6.0-2/3] PUBACKs and PUBRECs go out in the order the PUBLISHes came in, even
    /// though the backend may confirm them out of order.
    fn flush_inbound(&mut self) {
        let Some(inbound) = self.inbound.as_deref_mut() else {
            return;
        };
        while inbound.acks.front().is_some_and(|a| a.result.is_some()) {
            let Some(InboundAck {
                packet_id,
                qos,
                result: Some(code),
                reason,
            }) = inbound.acks.pop_front()
            else {
                break;
            };
            let ack = Ack {
                packet_id,
                code,
                properties: Properties {
                    reason_string: reason_string(
                        self.version,
                        !self.flags.has(Flags::NO_PROBLEM_INFO),
                        self.client_max_packet,
                        reason.as_deref(),
                    ),
                    ..Properties::default()
                },
            };
            let packet = if qos == QoS::ExactlyOnce {
                if code == ReasonCode::SUCCESS {
                    inbound.awaiting_rel.insert(packet_id);
                }
                Packet::PubRec(ack)
            } else {
                Packet::PubAck(ack)
            };
            encode_into(&mut self.out, self.version, &packet);
        }
    }

    fn handle_pubrel(&mut self, a: Ack<'_>) {
        let released = self
            .inbound
            .as_deref_mut()
            .is_some_and(|i| i.awaiting_rel.remove(&a.packet_id));
        let code = if released {
            ReasonCode::SUCCESS
        } else {
            ReasonCode::PACKET_IDENTIFIER_NOT_FOUND
        };
        let pubcomp = Packet::PubComp(Ack {
            packet_id: a.packet_id,
            code,
            properties: Properties::default(),
        });
        encode_into(&mut self.out, self.version, &pubcomp);
    }

    fn handle_puback(&mut self, a: Ack<'_>) {
        let Some(subs) = self.subscribed.as_deref_mut() else {
            return;
        };
        if let Some(token) = subs.inflight.remove(a.packet_id) {
            subs.stats.acked += 1;
            self.events.push_back(SessionEvent::Ack(token));
            self.fill_window();
        }
    }

    fn fill_window(&mut self) {
        loop {
            let Some(subs) = self.subscribed.as_deref_mut() else {
                return;
            };
            if subs.inflight.len() >= usize::from(self.client_receive_max) {
                return;
            }
            let Some(d) = subs.pending.pop_front() else {
                return;
            };
            if !subs.members.contains_key(&d.member) {
                self.released += u64::from(d.cost);
                continue;
            }
            let id = subs.inflight.insert(d.ack);
            self.send_delivery(d, Some(id));
        }
    }

    fn handle_subscribe(&mut self, s: Subscribe<'_>) {
        let v5 = self.version == Version::V5;
        // Spec 2.1: MQTT 5 user property `content-mode` picks the encoding for this SUBSCRIBE.
        let mode = match s
            .properties
            .user_properties
            .iter()
            .rev()
            .find(|(k, _)| *k == "content-mode")
        {
            None => Ok(Mode::Structured),
            Some((_, "structured")) => Ok(Mode::Structured),
            Some((_, "binary")) => Ok(Mode::Binary),
            Some((_, other)) => Err(*other),
        };
        // Spec 2.1: user property `start` (replay) sets where a new group begins.
        let start = match s
            .properties
            .user_properties
            .iter()
            .rev()
            .find(|(k, _)| *k == "start")
        {
            None => Ok(StartAt::Latest),
            Some((_, value)) => StartAt::parse(value).ok_or(*value),
        };
        let subscription_id = s.properties.subscription_identifiers.first().copied();
        let mut codes = Vec::with_capacity(s.filters.len());
        // The first refusal's explanation, for the SUBACK's Reason String.
        let mut reason: Option<String> = None;
        let mut touched: Vec<(GroupKey, Arc<str>, Vec<usize>)> = Vec::new();
        for (i, f) in s.filters.iter().enumerate() {
            let mut refuse = |v5_code: ReasonCode, why: &dyn Fn() -> String| {
                reason.get_or_insert_with(|| format!("{}: {}", f.filter, why()));
                codes.push(if v5 {
                    v5_code
                } else {
                    ReasonCode::V3_SUBACK_FAILURE
                });
            };
            let target = match parse_filter(f.filter) {
                Ok(t) => t,
                Err(FilterError::WildcardNotSupported) => {
                    refuse(ReasonCode::WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED, &|| {
                        "wildcards are supported only as app/<application>/+|#/…".into()
                    });
                    continue;
                }
                Err(FilterError::Invalid) => {
                    refuse(ReasonCode::TOPIC_FILTER_INVALID, &|| {
                        "not an event filter: app/<application>[/<device>/<channel>]".into()
                    });
                    continue;
                }
            };
            let mode = match mode {
                Ok(m) => m,
                Err(other) => {
                    tracing::info!(client = %self.client_id, "unknown content-mode `{other}`");
                    // Spec 2.1: 0x83 on v5; v3.1.1 cannot send user properties at all.
                    refuse(ReasonCode::IMPLEMENTATION_SPECIFIC_ERROR, &|| {
                        format!("unknown content-mode `{other}` (structured or binary)")
                    });
                    continue;
                }
            };
            if let Err(other) = start {
                tracing::info!(client = %self.client_id, "invalid start `{other}`");
                // Spec 2.1: 0x83, like an unknown content-mode.
                refuse(ReasonCode::IMPLEMENTATION_SPECIFIC_ERROR, &|| {
                    format!("invalid start `{other}` ({START_FORMS})")
                });
                continue;
            }
            if let Err(e) = self
                .config
                .registry
                .authorize(&self.identity, target.app, Access::Read)
            {
                tracing::info!(client = %self.client_id, filter = f.filter, "subscription refused: {e}");
                // One text for an unknown application and a missing right: names cannot be
                // probed.
                refuse(ReasonCode::NOT_AUTHORIZED, &|| {
                    format!(
                        "not authorized: no read permission on application {}",
                        target.app
                    )
                });
                continue;
            }
            let group = match target.share {
                Some(share) => GroupKey::shared(target.app, share),
                None if !self.flags.has(Flags::CLIENT_ID_ASSIGNED) => {
                    GroupKey::client(target.app, &self.client_id)
                }
                None => GroupKey::Ephemeral {
                    app: Arc::from(target.app),
                    conn: self.conn,
                },
            };
            // Spec 2.1: QoS 2 is granted as QoS 1.
            let qos = if f.options.qos == QoS::AtMostOnce {
                QoS::AtMostOnce
            } else {
                QoS::AtLeastOnce
            };
            let held = self.subscribed().subscriptions.len();
            if held >= self.config.max_subscriptions
                && !self.subscribed().subscriptions.contains_key(f.filter)
            {
                // A filter already held is replaced below and does not count twice; a new one
                // beyond the quota is refused alone, the others of this SUBSCRIBE still granted.
                tracing::debug!(client = %self.client_id, filter = f.filter, held, "subscription quota exceeded");
                let max = self.config.max_subscriptions;
                refuse(ReasonCode::QUOTA_EXCEEDED, &|| {
                    format!("quota exceeded: at most {max} subscriptions per connection")
                });
                continue;
            }
            let filter: Arc<str> = Arc::from(f.filter);
            // [MQTT-3.8.4-3] a filter the client already holds is replaced.
            self.subscribed().subscriptions.insert(
                filter.clone(),
                Subscription {
                    group: group.clone(),
                    filter: MemberFilter {
                        filter,
                        selector: target.selector,
                        qos,
                        subscription_id,
                        mode,
                    },
                },
            );
            codes.push(match qos {
                QoS::AtMostOnce => ReasonCode::GRANTED_QOS_0,
                _ => ReasonCode::GRANTED_QOS_1,
            });
            match touched.iter_mut().find(|t| t.0 == group) {
                Some(t) => t.2.push(i),
                None => touched.push((group, Arc::from(target.app), vec![i])),
            }
        }
        let mut waiting = Vec::with_capacity(touched.len());
        for (group, app, indices) in touched {
            let request = self.join(app, group.clone(), start.unwrap_or_default());
            waiting.push((request, group, indices));
        }
        self.subscribed().subacks.push_back(PendingSubAck {
            packet_id: s.packet_id,
            codes,
            reason,
            waiting,
        });
        self.flush_subacks();
    }

    /// Sends a Join carrying every filter the session holds for `group`; returns its request id.
    fn join(&mut self, app: Arc<str>, group: GroupKey, start: StartAt) -> u64 {
        let subs = self.subscribed();
        let member = match subs.groups.get(&group) {
            Some(m) => *m,
            None => {
                subs.next_member = subs.next_member.wrapping_add(1);
                subs.groups.insert(group.clone(), subs.next_member);
                subs.members.insert(subs.next_member, AppTopics::new(&app));
                subs.next_member
            }
        };
        subs.next_request += 1;
        let request = subs.next_request;
        let filters = subs
            .subscriptions
            .values()
            .filter(|s| s.group == group)
            .map(|s| s.filter.clone())
            .collect();
        self.events.push_back(SessionEvent::Join {
            member,
            request,
            app,
            group,
            filters,
            start,
        });
        request
    }

    /// SUBACKs go out in SUBSCRIBE order, each once its groups are joined.
    fn flush_subacks(&mut self) {
        let Some(subs) = self.subscribed.as_deref_mut() else {
            return;
        };
        while subs.subacks.front().is_some_and(|s| s.waiting.is_empty()) {
            let Some(s) = subs.subacks.pop_front() else {
                break;
            };
            let suback = Packet::SubAck(SubAck {
                packet_id: s.packet_id,
                properties: Properties {
                    reason_string: reason_string(
                        self.version,
                        !self.flags.has(Flags::NO_PROBLEM_INFO),
                        self.client_max_packet.saturating_sub(s.codes.len() as u32),
                        s.reason.as_deref(),
                    ),
                    ..Properties::default()
                },
                codes: s.codes,
            });
            encode_into(&mut self.out, self.version, &suback);
        }
    }

    fn handle_unsubscribe(&mut self, u: Unsubscribe<'_>) {
        let mut codes = Vec::with_capacity(u.filters.len());
        let mut touched: Vec<(GroupKey, Arc<str>)> = Vec::new();
        for f in &u.filters {
            let removed = self
                .subscribed
                .as_deref_mut()
                .and_then(|subs| subs.subscriptions.remove(*f));
            match removed {
                Some(s) => {
                    codes.push(ReasonCode::SUCCESS);
                    if !touched.iter().any(|t| t.0 == s.group) {
                        let app = match &s.group {
                            GroupKey::Ephemeral { app, .. } => app.clone(),
                            GroupKey::Durable(_) => Arc::from(app_of(&s.filter)),
                        };
                        touched.push((s.group, app));
                    }
                }
                None => codes.push(ReasonCode::NO_SUBSCRIPTION_EXISTED),
            }
        }
        for (group, app) in touched {
            // Only filters the session held were touched: it is subscribed.
            let Some(subs) = self.subscribed.as_deref_mut() else {
                break;
            };
            if subs.subscriptions.values().any(|s| s.group == group) {
                // The group exists already: `start` would be ignored.
                self.join(app, group, StartAt::Latest);
            } else if let Some(member) = subs.groups.remove(&group) {
                subs.members.remove(&member);
                let unsent = take_unsent(&mut subs.pending, member, &mut self.released);
                self.events.push_back(SessionEvent::Leave { group, unsent });
            }
        }
        let unsuback = Packet::UnsubAck(UnsubAck {
            packet_id: u.packet_id,
            properties: Properties::default(),
            codes,
        });
        encode_into(&mut self.out, self.version, &unsuback);
    }

    fn send_delivery(&mut self, d: Delivery, packet_id: Option<u16>) {
        let record = &d.record;
        // Callers checked the membership; a member gone since has nothing to deliver.
        let Some(base) = self
            .subscribed
            .as_ref()
            .and_then(|subs| subs.members.get(&d.member))
            .map(|topics| topics.base(d.whole_app).clone())
        else {
            self.released += u64::from(d.cost);
            let inflight = self.subscribed.as_deref_mut().map(|s| &mut s.inflight);
            if let Some((id, window)) = packet_id.zip(inflight) {
                window.remove(id);
            }
            return;
        };
        let topic = d.topic(&base);
        let v5 = self.version == Version::V5;
        let (payload, props) = match d.mode {
            Mode::Structured => (
                record.structured(),
                PublishProperties {
                    payload_format_indicator: v5.then_some(1),
                    content_type: v5.then_some(STRUCTURED_CONTENT_TYPE),
                    subscription_identifiers: &d.subscription_ids,
                    user_properties: &[],
                    raw: &[],
                },
            ),
            Mode::Binary => (
                &record.event.data,
                PublishProperties {
                    payload_format_indicator: None,
                    // Left out when a client may refuse it (a record from another producer).
                    content_type: record
                        .event
                        .datacontenttype
                        .as_deref()
                        .filter(|ct| protocol::topic::valid_text(ct)),
                    subscription_identifiers: &d.subscription_ids,
                    user_properties: &[],
                    raw: record.binary_properties(),
                },
            ),
        };
        let header = PublishHeader {
            dup: d.dup && packet_id.is_some(),
            qos: if packet_id.is_some() {
                QoS::AtLeastOnce
            } else {
                QoS::AtMostOnce
            },
            retain: false,
            topic,
            packet_id,
        };
        if v5
            && protocol::publish_packet_size(self.version, &header, &props, payload.len())
                > self.client_max_packet as usize
        {
            // [MQTT-3.1.2-25] too large for the client: discard as if delivered.
            tracing::debug!(client = %self.client_id, "event larger than the client's Maximum Packet Size, discarded");
            self.released += u64::from(d.cost);
            let inflight = self
                .subscribed
                .as_deref_mut()
                .map(|subs| &mut subs.inflight);
            if let Some(token) = packet_id.zip(inflight).and_then(|(id, w)| w.remove(id)) {
                self.events.push_back(SessionEvent::Ack(token));
            }
            return;
        }
        let tail = self.out.tail();
        let before = tail.len();
        if let Err(e) =
            protocol::encode_publish_header(self.version, &header, &props, payload.len(), tail)
        {
            tracing::warn!(client = %self.client_id, "cannot encode event, skipped: {e}");
            tail.truncate(before);
            self.released += u64::from(d.cost);
            // Skipped for good, like an event too large for the client: acknowledged, so that
            // its offset is committed and it is not delivered again on the next connection.
            let inflight = self
                .subscribed
                .as_deref_mut()
                .map(|subs| &mut subs.inflight);
            if let Some(token) = packet_id.zip(inflight).and_then(|(id, w)| w.remove(id)) {
                self.events.push_back(SessionEvent::Ack(token));
            }
            return;
        }
        let appended = tail.len() - before;
        self.out.commit_tail(appended);
        self.out.push_payload(payload);
        self.out.charge_here(d.cost);
        let (mode, qos) = (
            usize::from(d.mode == Mode::Binary),
            usize::from(packet_id.is_some()),
        );
        let stats = &mut self.subscribed().stats;
        stats.delivered[mode][qos] += 1;
        stats.delivered_bytes[mode][qos] += payload.len() as u64;
    }

    // ----- closing ------------------------------------------------------------------------

    fn decode_failed(&mut self, e: DecodeError) {
        match (self.state, &e) {
            (State::AwaitingConnect, DecodeError::UnsupportedProtocolVersion { .. }) => {
                // [MQTT-3.1.2-2] answer an unknown protocol level with return code 1 (the 3.1.1
                // form: a client of an unknown version cannot be assumed to read v5 properties).
                let connack = Packet::ConnAck(ConnAck {
                    session_present: false,
                    code: ReasonCode::V3_UNACCEPTABLE_PROTOCOL_VERSION,
                    properties: Properties::default(),
                });
                encode_into(&mut self.out, Version::V311, &connack);
                self.finish(CloseReason::ProtocolViolation {
                    code: e.reason_code(),
                    detail: e.to_string(),
                });
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

    fn violation(&mut self, code: ReasonCode, detail: &str) {
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
    fn disconnect(&mut self, code: ReasonCode, reason: &str, why: CloseReason) {
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

    fn finish(&mut self, why: CloseReason) {
        if self.state != State::Closed {
            self.state = State::Closed;
            self.close_reason = Some(Box::new(why));
        }
    }
}

fn encode_into(out: &mut OutQueue, version: Version, packet: &Packet<'_>) {
    let tail = out.tail();
    let before = tail.len();
    match packet.encode(version, tail) {
        Ok(()) => {
            let appended = tail.len() - before;
            out.commit_tail(appended);
        }
        Err(e) => {
            tail.truncate(before);
            tracing::error!("cannot encode {packet:?}: {e}");
        }
    }
}

/// The application a durable member filter belongs to, from its normalised selector or filter.
fn app_of(filter: &MemberFilter) -> &str {
    parse_filter(&filter.filter)
        .map(|t| t.app)
        .unwrap_or_default()
}

/// Removes `member`'s held-back deliveries, adding their cost to `released`; returns their
/// tokens.
fn take_unsent(pending: &mut VecDeque<Delivery>, member: u32, released: &mut u64) -> Vec<AckToken> {
    let mut unsent = Vec::new();
    pending.retain(|d| {
        if d.member != member {
            return true;
        }
        unsent.push(d.ack);
        *released += u64::from(d.cost);
        false
    });
    unsent
}
