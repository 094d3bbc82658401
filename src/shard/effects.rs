//! What a session's requests do outside the session: the shard's per-event effects.
//!
//! The event loop (`event_loop.rs`) owns the poll, the sockets and the connection slab; when a
//! session asks for something ([`SessionEvent`]) the loop hands it here: authenticate a CONNECT
//! and claim its client id, re-authenticate on AUTH, join or leave a consumer group, batch an
//! acknowledgement for its worker, build and produce a command's CloudEvent. The metrics a
//! connection's session feeds (deliveries, acks, subscriptions, command outcomes) and what a
//! closed connection gives back (its client id, its counted gauges) are mapped here too.
//! Nothing here reads or writes a socket.

use std::time::{Instant, SystemTime};

use super::connection::Connection;
use super::ShardContext;
use crate::auth::Authenticated;
use crate::backend::BackendHandle;
use crate::cloudevents::{Event, ExtensionValue, ISSUED_BY};
use crate::metrics::{CommandOutcome, Metrics};
use crate::registry::Identity;
use crate::seam::{
    AckToken, BackendError, Claim, ConnId, GroupKey, Join, Mode, ShardLink, ToBackend, ToShard,
};
use crate::session::{Command, CommandRefusal, ConnectRefusal, ConnectRequest, SessionEvent};

/// What the effects of one shard need: its context, its way back from the backend, and the
/// acknowledgements it batches per worker until the end of the loop turn.
pub(super) struct Effects<'a> {
    pub ctx: &'a ShardContext,
    pub link: &'a ShardLink,
    pub acks: &'a mut [Vec<AckToken>],
}

impl Effects<'_> {
    /// Acts on one event of `conn`'s session. Returns the connection that held this client id
    /// before, which the caller closes (it may live on another shard).
    pub fn apply(&mut self, conn: &mut Connection, event: SessionEvent) -> Option<ConnId> {
        let conn_id = conn.id();
        match event {
            SessionEvent::Connect(req) => return self.connect(conn, &req),
            SessionEvent::Join(req) => {
                let claim = Claim::new(
                    conn.session.identity(),
                    &req.app,
                    conn.session.client_id(),
                    &req.group,
                );
                let worker = self.ctx.backend.worker_of(&req.group);
                let join = Join {
                    claim,
                    conn: conn_id,
                    member: req.member,
                    request: req.request,
                    app: req.app,
                    filters: req.filters,
                    flow: conn.flow(self.ctx.max_queued_bytes),
                    link: self.link.clone(),
                    group: req.group,
                    start: req.start,
                };
                self.ctx.backend.send(worker, ToBackend::Join(join));
            }
            SessionEvent::Leave { group, unsent } => self.leave(conn_id, group, unsent),
            SessionEvent::Command(cmd) => self.command(conn, cmd),
            SessionEvent::CommandRefused { reason, topic } => {
                tracing::debug!(conn = ?conn_id, topic, ?reason, "command refused");
                self.ctx.metrics.command(match reason {
                    CommandRefusal::NotAuthorized => CommandOutcome::Unauthorized,
                    CommandRefusal::InvalidTopic => CommandOutcome::InvalidTopic,
                });
            }
            SessionEvent::Reauthenticate { token } => self.reauthenticate(conn, &token),
            SessionEvent::Ack(token) => {
                if let Some(batch) = self.acks.get_mut(usize::from(token.worker)) {
                    batch.push(token);
                }
            }
        }
        None
    }

    /// CONNECT: authenticate, claim the client id, answer (or schedule a delayed refusal).
    fn connect(&mut self, conn: &mut Connection, req: &ConnectRequest) -> Option<ConnId> {
        match self.ctx.auth.authenticate(req, SystemTime::now()) {
            Ok(Authenticated {
                identity,
                expires_at,
            }) => {
                // Claimed before CONNACK: another identity's client id is refused
                // and its holder stays (issue #17).
                let claimed = self.ctx.clients.claim(
                    conn.session.client_id_shared().clone(),
                    conn.id(),
                    &identity,
                );
                let Ok(previous) = claimed else {
                    tracing::info!(peer = %conn.peer(), client = %req.client_id, %identity, "connection refused: the client id is held by another identity");
                    conn.session.reject_connect(ConnectRefusal::ClientIdInUse);
                    return None;
                };
                conn.session.accept_connect(Instant::now(), identity);
                conn.session.set_auth_deadline(expires_at.map(deadline));
                conn.claimed = true;
                previous
            }
            Err(refusal) => {
                tracing::info!(peer = %conn.peer(), client = %req.client_id, ?refusal, "connection refused");
                let delay = self.ctx.auth_failure_delay;
                if delay.is_zero() {
                    conn.session.reject_connect(refusal);
                } else {
                    // Answer later, reading nothing meanwhile: guessing gets slow.
                    conn.reject_at = Some(Box::new((Instant::now() + delay, refusal)));
                }
                None
            }
        }
    }

    /// The member leaves `group` (unsubscribe or close). The acks batched for its worker go
    /// first (see [`send_acks`]).
    pub fn leave(&mut self, conn: ConnId, group: GroupKey, unsent: Vec<AckToken>) {
        let worker = self.ctx.backend.worker_of(&group);
        send_acks(&self.ctx.backend, self.acks, worker);
        self.ctx.backend.send(
            worker,
            ToBackend::Leave {
                conn,
                group,
                unsent,
            },
        );
    }

    /// PUBLISH to a command topic: the command as a CloudEvent, produced to the command stream;
    /// the result comes back as [`ToShard::Produced`].
    fn command(&mut self, conn: &Connection, cmd: Command) {
        let conn_id = conn.id();
        let content_type = cmd
            .content_type
            .clone()
            .unwrap_or_else(|| guess_content_type(&cmd.payload).to_owned());
        // Spec 2.3: `sender` is the target device, as Drogue Cloud's integration
        // writes it: its device endpoints route a command to the connection named
        // in `sender`, and the stream is keyed by `<app>/<sender>`. Who sent the
        // command goes into an extension of its own.
        let mut event = Event::new_device_event(
            &cmd.app,
            &cmd.device,
            &cmd.command,
            &cmd.device,
            &self.ctx.instance,
            Some(&content_type),
            cmd.payload,
            SystemTime::now(),
        );
        let issued_by = match conn.session.identity() {
            Identity::Anonymous => "anonymous",
            Identity::User { name, .. } => name,
        };
        event.set_extension(ISSUED_BY, ExtensionValue::from(issued_by));
        let link = self.link.clone();
        let packet_id = cmd.packet_id;
        self.ctx.producer.send_command(
            &cmd.app,
            &cmd.device,
            event,
            Box::new(move |result| {
                link.send(ToShard::Produced {
                    conn: conn_id,
                    packet_id,
                    result,
                })
            }),
        );
    }

    /// AUTH with a new token (MQTT 5 re-authentication).
    fn reauthenticate(&mut self, conn: &mut Connection, token: &str) {
        let result = match self.ctx.auth.authenticate_token(token, SystemTime::now()) {
            // The token must name the same user: AUTH renews, it does not switch.
            Ok(a) if same_user(&a.identity, conn.session.identity()) => {
                Ok(a.expires_at.map(deadline))
            }
            Ok(a) => {
                tracing::info!(peer = %conn.peer(), client = conn.session.client_id(), "re-authentication refused: the token is for {}, not {}", a.identity, conn.session.identity());
                Err(())
            }
            Err(e) => {
                tracing::info!(peer = %conn.peer(), client = conn.session.client_id(), "re-authentication refused: {e}");
                Err(())
            }
        };
        conn.session.reauthenticated(result);
    }
}

/// Counts a command's outcome once the backend answered ([`ToShard::Produced`]).
pub(super) fn command_produced(
    metrics: &Metrics,
    conn: ConnId,
    packet_id: u16,
    result: &Result<(), BackendError>,
) {
    metrics.command(match result {
        Ok(()) => CommandOutcome::Accepted,
        Err(_) if packet_id == 0 => CommandOutcome::Dropped,
        Err(_) => CommandOutcome::BackendError,
    });
    if let Err(e) = result {
        tracing::warn!(conn = ?conn, "command not accepted by the backend: {e}");
    }
}

/// Moves what the session counted since the last flush into the metrics: its subscriptions
/// (as a change of the gauge), its deliveries per mode and QoS, its acknowledgements.
pub(super) fn count_session(metrics: &Metrics, conn: &mut Connection) {
    let subs = conn.session.subscription_count() as u32;
    if subs != conn.counted_subscriptions {
        metrics.add_subscriptions(subs as i64 - conn.counted_subscriptions as i64);
        conn.counted_subscriptions = subs;
    }
    let stats = conn.session.take_stats();
    for (m, mode) in [Mode::Structured, Mode::Binary].into_iter().enumerate() {
        for qos in 0..2 {
            metrics.add_delivered(
                mode,
                qos as u8,
                stats.delivered[m][qos],
                stats.delivered_bytes[m][qos],
            );
        }
    }
    if stats.acked > 0 {
        metrics.acked(stats.acked);
    }
}

/// What a closed connection gives back: its client id, and what it counted in the gauges.
pub(super) fn forget(ctx: &ShardContext, conn: &Connection) {
    if conn.claimed {
        ctx.clients.release(conn.session.client_id(), conn.id());
    }
    ctx.metrics.add_queued_bytes(-(conn.counted_queued as i64));
    if conn.counted_subscriptions > 0 {
        ctx.metrics
            .add_subscriptions(-(conn.counted_subscriptions as i64));
    }
}

/// A token's expiry as a deadline on the monotonic clock the sessions use.
fn deadline(expires_at: SystemTime) -> Instant {
    Instant::now()
        + expires_at
            .duration_since(SystemTime::now())
            .unwrap_or_default()
}

fn same_user(a: &Identity, b: &Identity) -> bool {
    match (a, b) {
        (Identity::User { name: x, .. }, Identity::User { name: y, .. }) => x == y,
        _ => false,
    }
}

/// Spec 2.5: without a Content Type, JSON if the payload parses as JSON, else octet-stream.
fn guess_content_type(payload: &[u8]) -> &'static str {
    if serde_json::from_slice::<serde::de::IgnoredAny>(payload).is_ok() {
        "application/json"
    } else {
        "application/octet-stream"
    }
}

/// Sends the acks batched for `worker`. Called at the end of each loop turn, and before a Leave
/// to that worker: acks that reached the worker after the Leave would find the group gone, its
/// last commit made without them, and the acknowledged events would come again next time.
pub(super) fn send_acks(backend: &BackendHandle, acks: &mut [Vec<AckToken>], worker: u16) {
    if let Some(batch) = acks.get_mut(usize::from(worker)) {
        if !batch.is_empty() {
            backend.send(worker, ToBackend::Acks(std::mem::take(batch)));
        }
    }
}
