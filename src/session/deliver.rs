//! Deliveries from the backend to the client: QoS 0 straight out, QoS 1 within the client's
//! window (Receive Maximum) and held back beyond it, PUBACKs that free the window, and the
//! encoding of one event as PUBLISH (structured or binary mode).

use std::collections::VecDeque;

use super::{Session, SessionEvent, State};
use crate::cloudevents::STRUCTURED_CONTENT_TYPE;
use crate::protocol::{self, Ack, PublishHeader, PublishProperties, QoS, Version};
use crate::seam::{AckToken, Delivery, Mode};

impl Session {
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

    pub(super) fn handle_puback(&mut self, a: Ack<'_>) {
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
            return self.skip_as_delivered(d.cost, packet_id);
        }
        let tail = self.out.tail();
        let before = tail.len();
        if let Err(e) =
            protocol::encode_publish_header(self.version, &header, &props, payload.len(), tail)
        {
            tracing::warn!(client = %self.client_id, "cannot encode event, skipped: {e}");
            tail.truncate(before);
            // Skipped for good, like an event too large for the client: acknowledged, so that
            // its offset is committed and it is not delivered again on the next connection.
            return self.skip_as_delivered(d.cost, packet_id);
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

    /// An event that will never be sent (too large for the client, or not encodable): its cost
    /// released, and its window slot freed and acknowledged as if the client had, so that its
    /// offset is committed and it is not delivered again.
    fn skip_as_delivered(&mut self, cost: u32, packet_id: Option<u16>) {
        self.released += u64::from(cost);
        let inflight = self
            .subscribed
            .as_deref_mut()
            .map(|subs| &mut subs.inflight);
        if let Some(token) = packet_id.zip(inflight).and_then(|(id, w)| w.remove(id)) {
            self.events.push_back(SessionEvent::Ack(token));
        }
    }
}

/// Removes `member`'s held-back deliveries, adding their cost to `released`; returns their
/// tokens.
pub(super) fn take_unsent(
    pending: &mut VecDeque<Delivery>,
    member: u32,
    released: &mut u64,
) -> Vec<AckToken> {
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
