//! Commands from devices' clients: a PUBLISH to `command/<app>/<device>/<command>` checked,
//! authorised and handed to the shell; the backend's answer turned into PUBACK or PUBREC in the
//! order the PUBLISHes came in ([MQTT-4.6.0-2/3]); PUBREL answered with PUBCOMP (QoS 2).

use bytes::Bytes;

use super::inbound::{Inbound, InboundAck};
use super::{
    encode_into, parse_command_topic, reason_string, CloseReason, Command, CommandRefusal, Flags,
    Session, SessionEvent,
};
use crate::protocol::{Ack, Packet, Properties, Publish, QoS, ReasonCode, Version};
use crate::seam::BackendError;

impl Session {
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

    pub(super) fn handle_publish(&mut self, p: Publish<'_>) {
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
        if let Err(e) = self.config.registry.load().authorize_device_write(
            &self.identity,
            target.app,
            target.device,
        ) {
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

    pub(super) fn handle_pubrel(&mut self, a: Ack<'_>) {
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
}
