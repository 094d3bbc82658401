//! A record of the event log, shared by every subscriber that receives it.
//!
//! Encodings are computed once per record, by whichever thread needs them first, and then
//! shared: the structured JSON payload, and the binary-mode user properties already in wire form.
//! Binary mode hands `event.data` (a `Bytes` over the backend's buffer) to the socket as is.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::{Bytes, BytesMut};

use crate::cloudevents::Event;
use crate::protocol;
use crate::protocol::topic;

/// Records whose device or subject could not form a topic, process-wide (a record is counted
/// once, when a filter first needs its topic).
static UNROUTABLE: AtomicU64 = AtomicU64::new(0);
static UNROUTABLE_LOGGED: AtomicBool = AtomicBool::new(false);

/// How many records filter subscribers skipped because their device or subject cannot form an
/// MQTT topic (part of `mqtt_integration_records_skipped_total`).
pub fn unroutable_records() -> u64 {
    UNROUTABLE.load(Ordering::Relaxed)
}

#[derive(Debug)]
pub struct Record {
    pub event: Event,
    pub partition: u32,
    pub offset: u64,
    structured: OnceLock<Bytes>,
    binary_properties: OnceLock<Bytes>,
    concrete_topic: OnceLock<Option<Arc<str>>>,
}

impl Record {
    pub fn new(event: Event, partition: u32, offset: u64) -> Record {
        Record {
            event,
            partition,
            offset,
            structured: OnceLock::new(),
            binary_properties: OnceLock::new(),
            concrete_topic: OnceLock::new(),
        }
    }

    /// The structured-mode payload (the CloudEvent as JSON), encoded on first use.
    pub fn structured(&self) -> &Bytes {
        self.structured.get_or_init(|| {
            let mut out = Vec::new();
            self.event.write_structured(&mut out);
            // Kept with the record for as long as the log retains it: give back the slack
            // (the size hint reckons with base64 data, a third more than JSON data). Without
            // this a 256-byte event's encoding held 1.2 KiB (massif), a third of the record.
            out.shrink_to_fit();
            Bytes::from(out)
        })
    }

    /// Binary-mode attributes as MQTT 5 User Properties in wire form, encoded on first use.
    pub fn binary_properties(&self) -> &Bytes {
        self.binary_properties.get_or_init(|| {
            // Sized exactly (a property is its identifier, two length prefixes, name and
            // value), so that the buffer is neither grown nor copied to be kept with the record.
            let size = self
                .event
                .binary_attributes()
                .map(|(k, v)| 5 + k.len() + v.len())
                .sum();
            let mut out = BytesMut::with_capacity(size);
            for (k, v) in self.event.binary_attributes() {
                // A record from Kafka may carry anything: an attribute with U+0000 or a control
                // character would be refused by a conforming client (MQTT 5 section 1.5.4).
                if !(topic::valid_text(k) && topic::valid_text(&v)) {
                    tracing::debug!(
                        attribute = ?k,
                        "attribute with characters a client may refuse, left out"
                    );
                    continue;
                }
                // An attribute longer than an MQTT string (64 KiB) cannot be sent; skip it
                // rather than fail the event.
                if protocol::encode_user_property(k, &v, &mut out).is_err() {
                    tracing::warn!(
                        attribute = k,
                        "attribute too long for an MQTT user property, left out"
                    );
                }
            }
            out.freeze()
        })
    }

    /// `app/<application>/<device>/<channel>`, or None when the event has no device or subject,
    /// or when either cannot stand in a topic ([`topic::valid_topic_part`]): such a record (one
    /// another producer wrote to Kafka) reaches whole-application subscribers only, and filter
    /// subscribers pass over it like over any record their filters do not match (consumed, so
    /// the group moves on; counted in [`unroutable_records`]).
    pub fn concrete_topic(&self, app_topic: &str) -> Option<&Arc<str>> {
        self.concrete_topic
            .get_or_init(|| {
                let device = self.event.device()?;
                let subject = self.event.subject.as_deref()?;
                if !(topic::valid_topic_part(device) && topic::valid_topic_part(subject)) {
                    self.unroutable(device, subject);
                    return None;
                }
                let t = format!("{app_topic}/{device}/{subject}");
                // [MQTT-4.7.3-3] a topic is at most 65,535 bytes: two long parts may not fit.
                if t.len() > 65_535 {
                    self.unroutable(device, subject);
                    return None;
                }
                Some(t.into())
            })
            .as_ref()
    }

    /// Counts a record whose device or subject cannot form a topic; the first is logged, the
    /// others only counted (one producer writing many would flood the log).
    #[cold]
    fn unroutable(&self, device: &str, subject: &str) {
        UNROUTABLE.fetch_add(1, Ordering::Relaxed);
        let (partition, offset) = (self.partition, self.offset);
        if !UNROUTABLE_LOGGED.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                id = %self.event.id,
                partition,
                offset,
                ?device,
                ?subject,
                "record whose device or subject cannot form an MQTT topic: delivered to \
                 whole-application subscribers only, skipped for filter subscribers; further \
                 ones are counted in mqtt_integration_records_skipped_total, not logged"
            );
        } else {
            tracing::debug!(id = %self.event.id, partition, offset, ?device, ?subject, "record cannot form a topic, skipped for filters");
        }
    }

    /// An estimate of the memory this record holds once delivered: the struct, each heap-held
    /// attribute string with the allocator's per-allocation overhead, the data, and the two
    /// encodings deliveries cache on it, both trimmed to their length (structured JSON ≈ data +
    /// attributes + member names; binary-mode user properties ≈ attributes + names). The
    /// embedded log's `retention_bytes` counts this, so that it bounds memory, not just payload
    /// bytes. A 256-byte JSON event from the HTTP ingest is estimated at ~2.2 KiB and measured
    /// ~1.7 KiB of RSS while retained (200k events: +335 MiB); before the encodings, the data
    /// and the extension vector were trimmed and attributes held inline, it was ~3.6 KiB.
    pub fn footprint(&self) -> u64 {
        /// Per heap allocation: the allocator's header and size-class rounding.
        const ALLOC: usize = 32;
        let e = &self.event;
        let mut attrs = 0;
        let mut allocs = 4; // the Arc, the extension vector, two caches

        // Attribute text of up to 24 bytes is held inline (`Text`): no allocation of its own.
        for s in [&e.id, &e.source, &e.ty].into_iter().chain(
            [&e.subject, &e.time, &e.datacontenttype, &e.dataschema]
                .into_iter()
                .flatten(),
        ) {
            attrs += s.len();
            allocs += usize::from(s.is_heap_allocated());
        }
        for (name, value) in &e.extensions {
            if let std::borrow::Cow::Owned(name) = name {
                attrs += name.len();
                allocs += 1;
            }
            if let crate::cloudevents::ExtensionValue::String(v) = value {
                attrs += v.len();
                allocs += usize::from(v.is_heap_allocated());
            }
        }
        let structs = std::mem::size_of::<Record>()
            + e.extensions.capacity()
                * std::mem::size_of::<(
                    std::borrow::Cow<'static, str>,
                    crate::cloudevents::ExtensionValue,
                )>();
        // Data once as received and once inside the structured encoding; attributes in the
        // event and in each encoding; member names and framing of both encodings.
        let estimate = structs + allocs * ALLOC + 2 * e.data.len() + 3 * attrs + 350;
        estimate as u64
    }

    /// What a delivery of this record costs a connection's byte credit (an estimate of the
    /// PUBLISH size, before it is encoded).
    pub fn cost(&self) -> u32 {
        let attrs = self.event.id.len() + self.event.source.len() + self.event.ty.len() + 160;
        u32::try_from(self.event.data.len() + attrs).unwrap_or(u32::MAX)
    }
}
