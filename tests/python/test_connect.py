"""Connecting (spec 2.6), client-id takeover and shutdown (spec 6)."""

import signal
import socket
import time

import pytest

from conftest import Client, is_closed, mqtt, raw_connect, read_packet, unique


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


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_shutdown_with_unacknowledged_in_flight(service_factory, clients, sig):
    svc = service_factory(shutdown_timeout=3)
    v5 = clients(svc.mqtt_port, unique("inflight"), manual_ack=True)
    v3 = clients(svc.mqtt_port, unique("inflight3"), protocol=mqtt.MQTTv311, manual_ack=True)
    assert v5.subscribe("app/demo") == [1]
    assert v3.subscribe("app/demo") == [1]
    for i in range(5):
        svc.ingest("device1", "t", {"i": i})
    v5.collector.wait_for(5)
    v3.collector.wait_for(5)
    started = time.monotonic()
    svc.proc.send_signal(sig)
    assert v5.wait_disconnect(timeout=5)[0] == 0x8B
    v3.wait_disconnect(timeout=5)
    assert svc.proc.wait(timeout=5) == 0
    assert time.monotonic() - started < 3


def s2(b: bytes) -> bytes:
    return len(b).to_bytes(2, "big") + b


def test_connect_timeout_closes_silent_connection(service):
    """server.connect_timeout = 2s: a TCP connection that never sends CONNECT is closed."""
    sock = socket.create_connection(("127.0.0.1", service.mqtt_port), timeout=5)
    try:
        started = time.monotonic()
        assert is_closed(sock, timeout=5)
        assert 1.5 < time.monotonic() - started < 4.5
    finally:
        sock.close()


def test_keep_alive_enforced(service):
    """No packet within 1.5 x keep alive (1 s): the server closes the connection."""
    body = s2(b"MQTT") + bytes([4, 2]) + (1).to_bytes(2, "big") + s2(unique("ka").encode())
    sock = socket.create_connection(("127.0.0.1", service.mqtt_port), timeout=5)
    try:
        sock.sendall(bytes([0x10, len(body)]) + body)
        assert read_packet(sock) == b"\x20\x02\x00\x00"
        started = time.monotonic()
        assert is_closed(sock, timeout=5)
        assert 1.0 < time.monotonic() - started < 3.5
    finally:
        sock.close()


def test_second_connect_packet_closes_connection(service):
    sock, connack = raw_connect(service.mqtt_port, unique("dbl"), level=4)
    try:
        assert connack == b"\x20\x02\x00\x00"
        body = s2(b"MQTT") + bytes([4, 2]) + (30).to_bytes(2, "big") + s2(b"again")
        sock.sendall(bytes([0x10, len(body)]) + body)
        assert is_closed(sock, timeout=5)
    finally:
        sock.close()


def test_packet_too_large(service, clients):
    """A PUBLISH above server.max_packet_size (1 MiB): v5 DISCONNECT 0x95."""
    c = clients(service.mqtt_port, unique("big"))
    c.publish("command/demo/device1/big", b"x" * (1024 * 1024 + 100), qos=1)
    assert c.wait_disconnect()[0] == 0x95
