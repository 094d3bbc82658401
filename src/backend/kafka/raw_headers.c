/*
 * The unparsed headers of a consumed message, as the broker sent them (record format v2),
 * without librdkafka's header list: `rd_kafka_message_headers`, its only public access, copies
 * every header into a malloc'ed element of a list (after a calloc'ed shadow buffer), which was
 * 44 % of the Kafka worker's time per record (perf, `loadtest/kafka-bench.sh`). The bytes are
 * parsed in Rust (`codec::WireHeaders`).
 *
 * This reaches into librdkafka's internal message struct, so it is compiled (build.rs) against
 * the very librdkafka source tree rdkafka-sys built: a field that moves or is renamed in another
 * librdkafka version fails the build instead of reading the wrong memory.
 */
#include "rdkafka_int.h"
#include "rdkafka_msg.h"

/*
 * The header bytes of `message` (a varint count, then per header the varint key length, the
 * key, the varint value length (-1: null), the value); NULL with *len = 0 when it has none.
 * They point into the fetch buffer the message holds, valid until the message is destroyed.
 * The length may include bytes after the headers (librdkafka stores "up to the record's end").
 */
const void *mqtt_integration_raw_headers(const rd_kafka_message_t *message, size_t *len) {
        const rd_kafka_msg_t *rkm =
            rd_kafka_message2msg((rd_kafka_message_t *)message);
        if (rkm->rkm_flags & RD_KAFKA_MSG_F_PRODUCER ||
            RD_KAFKAP_BYTES_LEN(&rkm->rkm_u.consumer.binhdrs) <= 0) {
                *len = 0;
                return NULL;
        }
        *len = (size_t)RD_KAFKAP_BYTES_LEN(&rkm->rkm_u.consumer.binhdrs);
        return rkm->rkm_u.consumer.binhdrs.data;
}
