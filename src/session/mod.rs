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
//!
//! This file holds the [`Session`] itself, its inputs' entry point and its outputs; each kind of
//! work is an `impl Session` block of its own file: `connect.rs` (CONNECT, CONNACK, AUTH),
//! `subscribe.rs` (SUBSCRIBE, UNSUBSCRIBE, joins), `deliver.rs` (events out, the QoS 1
//! window), `commands.rs` (PUBLISH in, PUBACK/PUBREC/PUBCOMP) and `close.rs` (timeouts,
//! violations, DISCONNECT, teardown).

mod close;
mod commands;
mod connect;
mod deliver;
mod filter;
mod inbound;
mod inflight;
mod outbound;
mod stats;
mod subscribe;
mod subscribed;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

pub use filter::{parse as parse_filter, parse_command_topic, CommandTopic, FilterError, Target};
use inbound::Inbound;
pub use outbound::OutQueue;
pub use stats::Stats;
use subscribed::{trim_deque, Subscribed};

use crate::protocol::{self, Packet, ReasonCode, Version};
use crate::registry::{Current, Identity};
use crate::seam::{AckToken, ConnId, GroupKey, MemberFilter, StartAt};

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
    pub registry: Arc<Current>,
}

/// What the shell must do on the session's behalf.
#[derive(Debug)]
pub enum SessionEvent {
    /// A CONNECT arrived: authenticate, take over the client id, then call
    /// [`Session::accept_connect`] or [`Session::reject_connect`].
    Connect(ConnectRequest),
    /// Join (or update the filters of) a consumer group; answer with [`Session::joined`].
    Join(JoinRequest),
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

/// What [`SessionEvent::Join`] asks of the shell: the member (of this session) joining `group`
/// with every filter the session holds for it.
#[derive(Debug)]
pub struct JoinRequest {
    pub member: u32,
    /// Echoed in [`Session::joined`], so that the answer finds the SUBACKs waiting for it.
    pub request: u64,
    pub app: Arc<str>,
    pub group: GroupKey,
    pub filters: Vec<MemberFilter>,
    /// Where a group that does not exist yet begins (spec 2.1 `start`).
    pub start: StartAt,
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
    /// A reload took away the right to read an application this session subscribed to (or the
    /// application itself).
    RightsRevoked {
        app: String,
    },
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

    // ----- packet dispatch (each kind is handled in its file) ------------------------------

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
