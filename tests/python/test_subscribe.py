"""SUBSCRIBE / UNSUBSCRIBE outcomes (spec 2.1): reason codes, QoS downgrade, content-mode."""

import socket

import pytest

from conftest import mqtt, raw_connect, read_packet, unique

GRANTED_QOS1 = 0x01


def test_v5_invalid_content_mode_fails_only_that_subscribe(service, clients):
    c = clients(service.mqtt_port, unique("cm"))
    assert c.subscribe("app/demo", qos=1, user_properties=[("content-mode", "weird")]) == [0x83]
    # the same SUBSCRIBE with several filters: all fail with 0x83 (the property is per packet)
    codes = c.subscribe(["app/demo", "app/demo/device1/#"], qos=1,
                        user_properties=[("content-mode", "nope")])
    assert codes == [0x83, 0x83]
    # the connection is still fine, and nothing was subscribed
    service.ingest("device1", "t", {"x": 1})
    assert c.collector.settle(0.5) == []
    assert c.subscribe("app/demo", qos=1, user_properties=[("content-mode", "structured")]) == [1]
    service.ingest("device1", "t", {"x": 2})
    [m] = c.collector.wait_for(1)
    assert m.json()["data"] == {"x": 2}


def test_v5_invalid_content_mode_other_filters_unaffected(service, clients):
    """Another SUBSCRIBE of the same client (and its stream) is not affected by a failed one."""
    c = clients(service.mqtt_port, unique("cm2"))
    assert c.subscribe("app/demo/device2/#", qos=1) == [1]
    assert c.subscribe("app/demo/device1/#", qos=1,
                       user_properties=[("content-mode", "BINARY!")]) == [0x83]
    service.ingest("device2", "a", {"n": 1})
    service.ingest("device1", "a", {"n": 2})
    [m] = c.collector.wait_for(1)
    assert c.collector.settle(0.4) == [m]
    assert m.topic == "app/demo/device2/a"


def test_v5_bad_filters_reason_codes(service, clients):
    c = clients(service.mqtt_port, unique("bad5"))
    codes = c.subscribe(["#", "app/+", "foo/bar", "app/private", "app/demo", "+/demo",
                         "app/nosuchapp", "app/demo/x/y/#"], qos=1)
    assert codes[0] == 0xA2, "bare #"
    assert codes[1] == 0xA2, "app/+"
    assert codes[2] == 0x8F, "foo/bar"
    assert codes[3] == 0x87, "app/private: not authorized"
    assert codes[4] == GRANTED_QOS1, "app/demo granted in the same SUBSCRIBE"
    assert codes[5] == 0xA2, "+/demo"
    assert codes[6] in (0x87, 0x8F), "unknown application"
    assert codes[7] == 0xA2, "# only after app/<a>/ or app/<a>/<device>/"
    service.ingest("device1", "t", {"ok": 1})
    [m] = c.collector.wait_for(1)
    assert m.topic == "app/demo"


def test_v311_bad_filters_0x80(service, clients):
    c = clients(service.mqtt_port, unique("bad3"), protocol=mqtt.MQTTv311)
    codes = c.subscribe(["#", "app/+", "foo/bar", "app/private", "app/demo"], qos=1)
    assert codes == [0x80, 0x80, 0x80, 0x80, 1]
    service.ingest("device2", "t", {"ok": 1})
    [m] = c.collector.wait_for(1)
    assert m.json()["data"] == {"ok": 1}


def test_v311_binary_mode_property_not_applicable(service, clients):
    """v3.1.1 has no user properties: always structured."""
    c = clients(service.mqtt_port, unique("v3"), protocol=mqtt.MQTTv311)
    assert c.subscribe("app/demo") == [1]
    service.ingest("device1", "b", b"\x00\x01", content_type="application/octet-stream")
    [m] = c.collector.wait_for(1)
    assert m.json()["data_base64"] == "AAE="


@pytest.mark.parametrize("protocol", [mqtt.MQTTv5, mqtt.MQTTv311], ids=["v5", "v311"])
def test_qos2_granted_as_qos1(service, clients, protocol):
    c = clients(service.mqtt_port, unique("q2"), protocol=protocol)
    assert c.subscribe("app/demo", qos=2) == [1]
    service.ingest("device3", "q", {"q": 2})
    [m] = c.collector.wait_for(1)
    assert m.qos == 1


def test_unsubscribe_stops_stream(service, clients):
    c = clients(service.mqtt_port, unique("unsub"))
    assert c.subscribe("app/demo", qos=1) == [1]
    service.ingest("device1", "u", {"n": 1})
    c.collector.wait_for(1)
    assert c.unsubscribe("app/demo") == [0x00]
    # a second subscriber proves the later events were delivered by the service at all
    probe = clients(service.mqtt_port, unique("probe"))
    assert probe.subscribe("app/demo") == [1]
    for n in range(2, 6):
        service.ingest(f"device{n % 4 + 1}", "u", {"n": n})
    probe.collector.wait_for(4)
    msgs = c.collector.settle(0.5)
    assert [m.json()["data"]["n"] for m in msgs] == [1]
    assert service.metric("mqtt_integration_subscriptions") >= 1


def test_v5_unsuback_no_subscription_existed(service, clients):
    c = clients(service.mqtt_port, unique("unsub2"))
    assert c.subscribe("app/demo/device1/#", qos=1) == [1]
    assert c.unsubscribe(["app/demo", "app/demo/device1/#", "foo/bar"]) == [0x11, 0x00, 0x11]
    assert c.unsubscribe("app/demo/device1/#") == [0x11]


def test_resubscribe_replaces_subscription(service, clients):
    """Spec 2.4: subscribing again to a held filter replaces it, never a second stream."""
    c = clients(service.mqtt_port, unique("resub"))
    assert c.subscribe("app/demo", qos=1, sub_id=1) == [1]
    assert c.subscribe("app/demo", qos=0, sub_id=2) == [0]
    for n in range(4):
        service.ingest(f"device{n + 1}", "r", {"n": n})
    c.collector.wait_for(4)
    msgs = c.collector.settle(0.5)
    assert sorted(m.json()["data"]["n"] for m in msgs) == [0, 1, 2, 3]
    assert all(m.subscription_ids == [2] for m in msgs)
    assert all(m.qos == 0 for m in msgs)


def test_v311_raw_suback_bytes(service):
    """The exact SUBACK bytes for v3.1.1 (packet id echoed, one return code per filter)."""
    sock, connack = raw_connect(service.mqtt_port, unique("raw"), level=4)
    try:
        assert connack == b"\x20\x02\x00\x00"

        def s(t: str) -> bytes:
            return len(t).to_bytes(2, "big") + t.encode()

        body = (0x1234).to_bytes(2, "big") + s("app/demo") + b"\x02" + s("#") + b"\x01"
        sock.sendall(bytes([0x82, len(body)]) + body)
        assert read_packet(sock) == b"\x90\x04\x12\x34\x01\x80"
    finally:
        sock.close()
