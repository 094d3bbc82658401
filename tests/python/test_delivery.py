"""Delivery guarantees (spec 2.4): commit only after PUBACK (in partition order), flow control
windows, redelivery after reconnect, shared groups when a member leaves."""

import time

import pytest

from conftest import PacketTypes, mqtt, unique, v5_props, wait_total


def data(m):
    return m.json()["data"]


def test_unacked_events_redelivered_after_reconnect(service, clients):
    cid = unique("unacked")
    c = clients(service.mqtt_port, cid, clean=False, manual_ack=True)
    assert c.subscribe("app/demo", qos=1) == [1]
    for i in range(3):
        service.ingest("device1", "r", {"i": i})
    msgs = c.collector.wait_for(3)
    c.ack(msgs[0])  # only the first one
    c.sync()
    c.close()
    c2 = clients(service.mqtt_port, cid, clean=False)
    assert c2.connack[1].session_present is False
    assert c2.subscribe("app/demo", qos=1) == [1]
    c2.collector.wait_for(2)
    got = [data(m)["i"] for m in c2.collector.settle(0.5)]
    assert got == [1, 2], "what was not acknowledged comes again, in order; the acked one not"


def test_commit_waits_for_earlier_events_of_the_partition(service, clients):
    """PUBACK of a later event does not commit past an earlier unacknowledged one."""
    cid = unique("order")
    c = clients(service.mqtt_port, cid, manual_ack=True)
    assert c.subscribe("app/demo", qos=1) == [1]
    for i in range(3):
        service.ingest("device2", "o", {"i": i})
    msgs = c.collector.wait_for(3)
    c.ack(msgs[2])
    c.ack(msgs[1])
    c.sync()
    c.close()
    c2 = clients(service.mqtt_port, cid)
    assert c2.subscribe("app/demo", qos=1) == [1]
    c2.collector.wait_for(3)
    got = [data(m)["i"] for m in c2.collector.settle(0.5)]
    assert got == [0, 1, 2]


def test_v5_receive_maximum_limits_in_flight(service, clients):
    props = v5_props(PacketTypes.CONNECT, ReceiveMaximum=2)
    c = clients(service.mqtt_port, unique("rm"), connect_properties=props, manual_ack=True)
    assert c.subscribe("app/demo", qos=1) == [1]
    for i in range(6):
        service.ingest(f"device{i % 2 + 1}", "w", {"i": i})
    c.collector.wait_for(2)
    assert len(c.collector.settle(0.5)) == 2, "no more than Receive Maximum in flight"
    first = c.collector.snapshot()
    c.ack(first[0])
    c.collector.wait_for(3)
    assert len(c.collector.settle(0.4)) == 3
    acked = 1
    while acked < 6:
        msgs = c.collector.settle(0.3)
        assert len(msgs) - acked <= 2, "never more than 2 unacknowledged"
        assert len(msgs) > acked, f"stalled at {len(msgs)} with {acked} acked"
        for m in msgs[acked:]:
            c.ack(m)
        acked = len(msgs)
    msgs = c.collector.settle(0.3)
    assert sorted(data(m)["i"] for m in msgs) == list(range(6))


def test_v311_default_receive_maximum(service_factory, clients):
    svc = service_factory(extra="[mqtt]\ndefault_receive_maximum = 3\n")
    c = clients(svc.mqtt_port, unique("rm3"), protocol=mqtt.MQTTv311, manual_ack=True)
    assert c.subscribe("app/demo", qos=1) == [1]
    for i in range(5):
        svc.ingest("device1", "w", {"i": i})
    c.collector.wait_for(3)
    assert len(c.collector.settle(0.5)) == 3
    for m in c.collector.snapshot():
        c.ack(m)
    c.collector.wait_for(5)
    for m in c.collector.snapshot()[3:]:
        c.ack(m)
    assert [data(m)["i"] for m in c.collector.snapshot()] == [0, 1, 2, 3, 4]


def test_qos0_not_limited_by_receive_maximum(service, clients):
    props = v5_props(PacketTypes.CONNECT, ReceiveMaximum=1)
    c = clients(service.mqtt_port, unique("rm0"), connect_properties=props, manual_ack=True)
    assert c.subscribe("app/demo", qos=0) == [0]
    for i in range(5):
        service.ingest("device3", "z", {"i": i})
    c.collector.wait_for(5)


def test_slow_subscriber_does_not_slow_others(service, clients):
    props = v5_props(PacketTypes.CONNECT, ReceiveMaximum=1)
    slow = clients(service.mqtt_port, unique("slow"), connect_properties=props, manual_ack=True)
    fast = clients(service.mqtt_port, unique("fast"))
    assert slow.subscribe("app/demo", qos=1) == [1]
    assert fast.subscribe("app/demo", qos=1) == [1]
    for i in range(30):
        service.ingest(f"device{i % 4 + 1}", "s", {"i": i})
    fast.collector.wait_for(30)
    assert len(slow.collector) <= 1


def test_shared_group_member_leaves_rest_goes_to_the_other(service, clients):
    group = unique("leave")
    a = clients(service.mqtt_port, unique("la"))
    b = clients(service.mqtt_port, unique("lb"))
    assert a.subscribe(f"$share/{group}/app/demo") == [1]
    assert b.subscribe(f"$share/{group}/app/demo") == [1]
    for i in range(8):
        service.ingest(f"device{i % 4 + 1}", "l", {"i": i})
    wait_total([a.collector, b.collector], 8)
    a.sync()
    a.close()
    for i in range(8, 16):
        service.ingest(f"device{i % 4 + 1}", "l", {"i": i})
    b.collector.wait_until(lambda msgs: {data(m)["i"] for m in msgs} >= set(range(8, 16)),
                           timeout=10)
    got_b = [data(m)["i"] for m in b.collector.settle(0.5)]
    got_a = [data(m)["i"] for m in a.collector.snapshot()]
    assert set(range(8, 16)) <= set(got_b), "after a leaves, b gets all partitions"
    assert sorted(set(got_a) | set(got_b)) == list(range(16))
    assert len(got_a) + len(got_b) == 16, "nothing acknowledged is delivered again"


def test_shared_and_plain_subscription_of_one_client(service, clients):
    """Different groups: an event reaches the shared and the plain subscription separately."""
    c = clients(service.mqtt_port, unique("mix"))
    assert c.subscribe(f"$share/{unique('mixg')}/app/demo", sub_id=5) == [1]
    assert c.subscribe("app/demo", sub_id=6) == [1]
    service.ingest("device4", "m", {"x": 1})
    c.collector.wait_for(2)
    msgs = c.collector.settle(0.4)
    assert sorted(m.subscription_ids for m in msgs) == [[5], [6]]


def test_unsubscribe_one_of_two_overlapping(service, clients):
    c = clients(service.mqtt_port, unique("ov"))
    assert c.subscribe("app/demo", qos=1, sub_id=1) == [1]
    assert c.subscribe("app/demo/device1/#", qos=1, sub_id=2) == [1]
    assert c.unsubscribe("app/demo") == [0]
    service.ingest("device2", "x", {"n": 1})
    service.ingest("device1", "x", {"n": 2})
    [m] = c.collector.wait_for(1)
    assert c.collector.settle(0.4) == [m]
    assert data(m) == {"n": 2}
    assert m.subscription_ids == [2]
    assert m.topic == "app/demo/device1/x"


def test_overlap_highest_qos_wins(service, clients):
    c = clients(service.mqtt_port, unique("hq"))
    assert c.subscribe("app/demo", qos=0) == [0]
    assert c.subscribe("app/demo/device1/#", qos=1) == [1]
    service.ingest("device1", "q", {"n": 1})
    service.ingest("device2", "q", {"n": 2})
    c.collector.wait_for(2)
    by_n = {data(m)["n"]: m for m in c.collector.settle(0.4)}
    assert by_n[1].qos == 1
    assert by_n[2].qos == 0


def test_takeover_resumes_in_flight_with_dup(service, clients):
    cid = unique("tk")
    first = clients(service.mqtt_port, cid, manual_ack=True)
    assert first.subscribe("app/demo") == [1]
    for i in range(3):
        service.ingest("device1", "t", {"i": i})
    first.collector.wait_for(3)
    second = clients(service.mqtt_port, cid)
    assert first.wait_disconnect()[0] == 0x8E
    assert second.subscribe("app/demo") == [1]
    second.collector.wait_for(3)
    msgs = second.collector.settle(0.4)
    assert [data(m)["i"] for m in msgs] == [0, 1, 2]


def test_client_maximum_packet_size_skips_oversized_events(service, clients):
    """MQTT 5: a PUBLISH larger than the client's Maximum Packet Size is not sent; the stream
    goes on (the event is passed over, not retried forever), for QoS 0 and QoS 1."""
    for qos in (0, 1):
        props = v5_props(PacketTypes.CONNECT, MaximumPacketSize=700)
        c = clients(service.mqtt_port, unique("mps"), connect_properties=props)
        assert c.subscribe("app/demo", qos=qos) == [qos]
        service.ingest("device1", "big", "x" * 1000, content_type="text/plain")
        service.ingest("device1", "small", "y", content_type="text/plain")
        [m] = c.collector.wait_for(1)
        assert m.json()["subject"] == "small"
        assert len(c.collector.settle(0.3)) == 1
        assert not c.disconnects
        c.close()


def test_subscribe_during_ingest_no_gap(service, clients):
    """Events keep coming while a new group subscribes: from the first event it receives on,
    every later event of each device arrives, in order (the start is fixed before SUBACK)."""
    import threading

    stop = threading.Event()
    sent = {f"device{i}": [] for i in range(1, 5)}
    tag = unique("race")

    def producer():
        n = 0
        while not stop.is_set() and n < 4000:
            d = f"device{n % 4 + 1}"
            service.ingest(d, "race", {"tag": tag, "seq": n // 4})
            sent[d].append(n // 4)
            n += 1
            time.sleep(0.001)

    t = threading.Thread(target=producer)
    t.start()
    try:
        time.sleep(0.2)
        c = clients(service.mqtt_port, unique("racer"))
        assert c.subscribe("app/demo", qos=1) == [1]
        after_suback = {d: len(v) for d, v in sent.items()}
        time.sleep(0.5)
    finally:
        stop.set()
        t.join(timeout=30)
    assert all(n > 10 for n in after_suback.values()), "the producer ran before SUBACK"
    total_after = sum(len(v) - after_suback[d] for d, v in sent.items())
    assert total_after > 40, "the producer ran after SUBACK"
    c.collector.wait_for(total_after)
    msgs = c.collector.settle(0.5)
    per_device = {}
    for m in msgs:
        ce = m.json()
        if ce["data"].get("tag") == tag:
            per_device.setdefault(ce["device"], []).append(ce["data"]["seq"])
    for d, seqs in sent.items():
        got = per_device.get(d, [])
        assert got, f"nothing from {d}: sent {len(seqs)}, {after_suback}, received {len(msgs)} {per_device.keys()}"
        assert got == list(range(got[0], seqs[-1] + 1)), f"{d}: gap or disorder"
        assert got[0] <= after_suback[d], f"{d}: events accepted after SUBACK missing"


def test_resubscribe_switches_content_mode(service, clients):
    c = clients(service.mqtt_port, unique("mode"))
    assert c.subscribe("app/demo", qos=1) == [1]
    service.ingest("device1", "m", {"n": 1})
    c.collector.wait_for(1)
    c.sync()
    assert c.subscribe("app/demo", qos=1, user_properties=[("content-mode", "binary")]) == [1]
    service.ingest("device1", "m", {"n": 2})
    c.collector.wait_for(2)
    msgs = c.collector.settle(0.4)
    assert len(msgs) == 2, msgs
    assert msgs[0].json()["data"] == {"n": 1}
    assert msgs[1].payload == b'{"n": 2}'
    assert msgs[1].prop("ContentType") == "application/json"


def test_unsubscribe_shared_member_hands_over(service, clients):
    group = unique("hand")
    a = clients(service.mqtt_port, unique("ha"))
    b = clients(service.mqtt_port, unique("hb"))
    assert a.subscribe(f"$share/{group}/app/demo") == [1]
    assert b.subscribe(f"$share/{group}/app/demo") == [1]
    assert a.unsubscribe(f"$share/{group}/app/demo") == [0]
    for i in range(8):
        service.ingest(f"device{i % 4 + 1}", "h", {"i": i})
    b.collector.wait_for(8)
    assert sorted(data(m)["i"] for m in b.collector.settle(0.4)) == list(range(8))
    assert a.collector.snapshot() == []
