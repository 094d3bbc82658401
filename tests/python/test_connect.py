"""Connecting (spec 2.6), client-id takeover and shutdown (spec 6)."""

import signal
import time

import pytest

from conftest import Client, mqtt, raw_connect, unique


def test_connack_v5_properties(service, clients):
    c = clients(service.mqtt_port, unique("props"))
    rc, flags, props = c.connack
    assert rc == 0
    assert flags.session_present is False
    assert props.WildcardSubscriptionAvailable == 1
    assert props.SharedSubscriptionAvailable == 1
    assert props.RetainAvailable == 0
    assert props.SubscriptionIdentifierAvailable == 1
    assert props.MaximumPacketSize > 0
    assert getattr(props, "TopicAliasMaximum", 0) == 0


def test_connack_v5_assigned_client_identifier(service, clients):
    c = clients(service.mqtt_port, "")
    assert c.connack[0] == 0


def test_anonymous_not_allowed(service_factory, clients):
    svc = service_factory(allow_anonymous=False)
    c = Client(svc.mqtt_port, unique("anon5"), protocol=mqtt.MQTTv5, wait_connack=False)
    try:
        assert c.wait_connack() == 0x87
    finally:
        c.close()
    # v3.1.1: return code 5 (checked on the wire: paho maps it to a v5 reason code)
    sock, connack = raw_connect(svc.mqtt_port, unique("anon3"), level=4)
    try:
        assert connack == b"\x20\x02\x00\x05"
    finally:
        sock.close()
    c3 = Client(svc.mqtt_port, unique("anon3p"), protocol=mqtt.MQTTv311, wait_connack=False)
    try:
        assert c3.wait_connack() != 0
    finally:
        c3.close()


def test_bad_credentials(service, clients):
    """username + password that match no user: v5 0x86, v3.1.1 4."""
    c = Client(service.mqtt_port, unique("bad"), username="mallory", password="nope",
               wait_connack=False)
    try:
        assert c.wait_connack() == 0x86
    finally:
        c.close()


def test_client_id_takeover(service, clients):
    cid = unique("takeover")
    first = clients(service.mqtt_port, cid)
    assert first.subscribe("app/demo") == [1]
    second = clients(service.mqtt_port, cid)
    rc, _props = first.wait_disconnect(timeout=5)
    assert rc == 0x8E, f"first connection: DISCONNECT {rc:#x}, expected 0x8E session taken over"
    # the second keeps working (and is not taken over by anything)
    assert second.subscribe("app/demo") == [1]
    service.ingest("device1", "t", {"who": "second"})
    [m] = second.collector.wait_for(1)
    assert m.json()["data"] == {"who": "second"}
    time.sleep(0.3)
    assert not second.disconnects
    assert second.client.is_connected()


def test_sigterm_disconnects_v5_clients_and_exits_0(service_factory, clients):
    svc = service_factory(shutdown_timeout=5)
    v5 = clients(svc.mqtt_port, unique("bye"))
    assert v5.subscribe("app/demo") == [1]
    v3 = clients(svc.mqtt_port, unique("bye3"), protocol=mqtt.MQTTv311)
    assert v3.subscribe("app/demo") == [1]
    svc.ingest("device1", "t", {"n": 1})
    v5.collector.wait_for(1)
    started = time.monotonic()
    svc.proc.send_signal(signal.SIGTERM)
    rc, _ = v5.wait_disconnect(timeout=5)
    assert rc == 0x8B, f"DISCONNECT {rc:#x}, expected 0x8B server shutting down"
    v3.wait_disconnect(timeout=5)  # plain close for v3.1.1
    code = svc.proc.wait(timeout=svc.shutdown_timeout + 2)
    elapsed = time.monotonic() - started
    assert code == 0, svc.log()
    assert elapsed < svc.shutdown_timeout, f"exit took {elapsed:.1f}s"
