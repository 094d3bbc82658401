//! Tests against the broker of `scripts/test` (`KAFKA_BOOTSTRAP`; they fail without it).

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer as _};
use rdkafka::{Offset, TopicPartitionList};

use super::clients;
use super::codec::{decode, encode_headers, WireHeaders};
use super::payload::{raw_headers, LiveMessages};
use crate::cloudevents::Event;
use crate::config::KafkaConfig;

fn config() -> KafkaConfig {
    let bootstrap = std::env::var("KAFKA_BOOTSTRAP").expect(
        "KAFKA_BOOTSTRAP is not set: run scripts/test (it starts a broker) or scripts/kafka start",
    );
    KafkaConfig {
        bootstrap_servers: bootstrap,
        ..KafkaConfig::default()
    }
}

/// Binary mode: the event's data IS the librdkafka message's payload (same address), and the
/// message lives exactly as long as the data. The header bytes `raw_headers.c` finds are the
/// headers librdkafka itself parses.
#[test]
fn binary_payload_is_not_copied() {
    let config = config();
    let topic = format!("zerocopy-{}", uuid::Uuid::new_v4());
    clients::create_topic(&config, &topic).expect("create topic");
    let event = Event::new_device_event(
        "zc",
        "d1",
        "ch",
        "d1",
        "test",
        Some("application/octet-stream"),
        bytes::Bytes::from(vec![7u8; 4096]),
        std::time::SystemTime::now(),
    );
    // Uncompressed, then in a gzip batch (decompressed by librdkafka into a buffer of its own).
    for compression in ["none", "gzip"] {
        let producer: BaseProducer = clients::base(&config, &[("compression.type", compression)])
            .create()
            .unwrap();
        producer
            .send(
                BaseRecord::to(&topic)
                    .key("d1")
                    .payload(&event.data[..])
                    .headers(encode_headers(&event)),
            )
            .map_err(|(e, _)| e)
            .unwrap();
        producer.flush(Duration::from_secs(30)).unwrap();
    }

    let consumer: BaseConsumer = clients::consumer_config(&config, "zerocopy-test")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..clients::partitions_of(consumer.client(), &topic)
        .unwrap()
        .unwrap()
    {
        tpl.add_partition_offset(&topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let live = LiveMessages::default();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let next = || loop {
        assert!(std::time::Instant::now() < deadline, "no record");
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            break m.unwrap();
        }
    };
    // Both records (either order): the header bytes read past librdkafka's header list say
    // what that list says.
    let first = next();
    assert_headers_as_librdkafka_reads(&first);
    drop(first);
    let msg = next();
    assert_headers_as_librdkafka_reads(&msg);
    let native = msg.payload().unwrap().as_ptr();
    let decoded = decode(msg, &live).unwrap();
    assert!(decoded.zero_copy);
    assert_eq!(
        decoded.event.data.as_ptr(),
        native,
        "the data is the message payload"
    );
    assert_eq!(decoded.event.data.len(), 4096);
    assert_eq!(decoded.event.id, event.id);
    assert_eq!(decoded.event.extensions, event.extensions);
    assert_eq!(live.count(), 1);
    let clone = decoded.event.data.clone();
    drop(decoded);
    assert_eq!(live.count(), 1, "a clone keeps the message");
    drop(clone);
    assert_eq!(live.count(), 0, "released with the last Bytes");
}

/// What `raw_headers.c` finds, read by `WireHeaders`, is what librdkafka's own header list holds.
fn assert_headers_as_librdkafka_reads(msg: &rdkafka::message::BorrowedMessage<'_>) {
    let ours: Vec<(Vec<u8>, Option<Vec<u8>>)> = WireHeaders::new(raw_headers(msg))
        .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
        .collect();
    let librdkafka: Vec<(Vec<u8>, Option<Vec<u8>>)> = msg
        .headers()
        .expect("headers")
        .iter()
        .map(|h| (h.key.as_bytes().to_vec(), h.value.map(<[u8]>::to_vec)))
        .collect();
    assert_eq!(ours, librdkafka);
    assert!(ours.len() >= 8, "{} headers", ours.len());
}
