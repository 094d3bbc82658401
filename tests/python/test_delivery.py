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
