"""Commands published by MQTT clients (spec 2.5)."""

import pytest

from conftest import PacketTypes, is_closed, mqtt, raw_connect, unique, v5_props

ACCEPTED = 'mqtt_integration_commands_total'


def commands(service, outcome):
    return service.metric(ACCEPTED, outcome=outcome)


def test_v5_command_reason_codes(service_factory, clients):
    # a fresh service: the command counters start at 0
    service = service_factory()
    c = clients(service.mqtt_port, unique("cmd"))
    assert c.publish("command/demo/device1/set", b'{"v":1}', qos=1) == 0x00
    ct = v5_props(PacketTypes.PUBLISH, ContentType="text/plain")
    assert c.publish("command/demo/device2/say", b"hello", qos=1, properties=ct) == 0x00
    assert c.publish("command/demo/device3/raw", b"\x00\xff", qos=1) == 0x00
    accepted = 3

    refused = {
        "command/demo/off/set": 0x87,          # disabled device
        "command/demo/nosuch/set": 0x87,       # unknown device
        "command/nope/device1/set": 0x87,      # unknown application
        "command/readonly/device1/set": 0x87,  # reader role: no write permission
        "command/private/device1/set": 0x87,   # no role at all
        "command/demo/device1": 0x90,          # three levels
        "command/demo//set": 0x90,             # empty level
        "command//device1/set": 0x90,
        "other/topic": 0x90,
        "app/demo": 0x90,
    }
    for topic, expected in refused.items():
        assert c.publish(topic, b'{"v":1}', qos=1) == expected, topic
    assert not c.disconnects, "v5 refusals keep the connection"

    # QoS 2 command: PUBREC carries the reason code (paho completes the flow)
    assert c.publish("command/demo/device4/q2", b"{}", qos=2) == 0x00
    accepted += 1

    assert commands(service, "accepted") == accepted
    assert commands(service, "unauthorized") == 5
    assert commands(service, "invalid_topic") == 5
    # the connection still works
    assert c.subscribe("app/demo") == [1]


def test_v5_qos0_command_refused_is_dropped_silently(service_factory, clients):
    service = service_factory()
    c = clients(service.mqtt_port, unique("cmd0"))
    c.publish("command/demo/off/set", b"{}", qos=0)
    c.publish("command/demo/device1/set", b"{}", qos=0)
    c.sync()
    assert not c.disconnects
    assert commands(service, "accepted") == 1
    assert commands(service, "unauthorized") == 1


def test_v311_command_accepted(service, clients):
    c = clients(service.mqtt_port, unique("cmd3"), protocol=mqtt.MQTTv311)
    assert c.publish("command/demo/device1/set", b'{"v":1}', qos=1) == 0
    assert not c.disconnects


@pytest.mark.parametrize("topic", ["command/demo/off/set", "command/readonly/device1/set",
                                   "command/demo/device1", "other/topic"])
def test_v311_refused_qos1_command_closes_connection(service, clients, topic):
    c = clients(service.mqtt_port, unique("cmd3r"), protocol=mqtt.MQTTv311)
    c.publish(topic, b'{"v":1}', qos=1)
    c.wait_disconnect()
    assert not c.pubacks, "no PUBACK for a refused command"


def test_v311_refused_command_raw_socket(service):
    sock, connack = raw_connect(service.mqtt_port, unique("raw"), level=4)
    try:
        assert connack == b"\x20\x02\x00\x00"
        topic = b"command/demo/off/set"
        body = len(topic).to_bytes(2, "big") + topic + b"\x00\x01" + b"{}"
        sock.sendall(bytes([0x32, len(body)]) + body)
        assert is_closed(sock, timeout=5), "the server closes the connection"
    finally:
        sock.close()
