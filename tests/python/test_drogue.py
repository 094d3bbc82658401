"""Drogue Cloud drop-in (issue #12): what a client of Drogue's MQTT integration relies on.

- a whole-application filter is answered on its own topic (`a/<app>`, `application/<app>`,
  also behind `$share/<g>/`), so that paho's per-filter callbacks (`message_callback_add`) fire;
- an event with empty data keeps it (`"data_base64": ""` in structured mode, an empty payload in
  binary mode);
- v5 refusals carry a Reason String.
"""

import threading

import pytest

from conftest import WAIT, Properties, PacketTypes, mqtt, unique

PROTOCOLS = [mqtt.MQTTv5, mqtt.MQTTv311]
PROTOCOL_IDS = ["v5", "v311"]


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=PROTOCOL_IDS)
@pytest.mark.parametrize("flt, topic", [
    ("app/demo", "app/demo"),
    ("a/demo", "a/demo"),
    ("application/demo", "application/demo"),
    ("$share/{g}/a/demo", "a/demo"),
    ("$share/{g}/application/demo", "application/demo"),
    ("$share/{g}/app/demo", "app/demo"),
])
def test_whole_application_filters_deliver_on_their_own_topic(service, clients, protocol, flt,
                                                             topic):
    flt = flt.format(g=unique("g"))
    c = clients(service.mqtt_port, unique("alias"), protocol=protocol)
    assert c.subscribe(flt) == [1]
    service.ingest("device1", "temp", {"t": 1})
    [m] = c.collector.wait_for(1)
    assert m.topic == topic
    assert m.json()["data"] == {"t": 1}


@pytest.mark.parametrize("flt, topic", [
    ("a/demo", "a/demo"),
    ("application/demo", "application/demo"),
    ("$share/{g}/a/demo", "a/demo"),
])
def test_binary_mode_on_alias_topics(service, clients, flt, topic):
    flt = flt.format(g=unique("g"))
    c = clients(service.mqtt_port, unique("alias-bin"))
    assert c.subscribe(flt, user_properties=[("content-mode", "binary")]) == [1]
    service.ingest("device2", "raw", b"\x01\x02", content_type="application/octet-stream")
    [m] = c.collector.wait_for(1)
    assert m.topic == topic
    assert m.payload == b"\x01\x02"
    assert m.user_properties["device"] == "device2"


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=PROTOCOL_IDS)
def test_paho_per_filter_callbacks_get_their_events(service, protocol):
    """paho routes a message to the callbacks whose filter matches its topic: with Drogue's
    topics every subscription's callback fires, and no message falls through to on_message."""
    got = {"a": [], "application": [], "share": [], "fallback": []}
    done = threading.Event()

    def collect(key):
        def on_message(_c, _u, msg):
            got[key].append(msg.topic)
            if all(len(got[k]) >= 1 for k in ("a", "application", "share")):
                done.set()
        return on_message

    group = unique("cb")
    clients_ = []
    try:
        for key, flt, cb_filter in [
            ("a", "a/demo", "a/demo"),
            ("application", "application/demo", "application/demo"),
            ("share", f"$share/{group}/a/demo", "a/demo"),
        ]:
            cl = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=unique(key),
                             protocol=protocol)
            cl.message_callback_add(cb_filter, collect(key))
            cl.on_message = collect("fallback")
            subscribed = threading.Event()
            cl.on_subscribe = lambda *_a, ev=subscribed: ev.set()
            cl.connect("127.0.0.1", service.mqtt_port)
            cl.loop_start()
            clients_.append(cl)
            cl.subscribe(flt, qos=1)
            assert subscribed.wait(WAIT), f"SUBACK for {flt}"
        service.ingest("device1", "cb", {"n": 1})
        assert done.wait(WAIT), got
        assert got["a"] == ["a/demo"]
        assert got["application"] == ["application/demo"]
        assert got["share"] == ["a/demo"]
        assert got["fallback"] == []
    finally:
        for cl in clients_:
            cl.disconnect()
            cl.loop_stop()


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=PROTOCOL_IDS)
def test_empty_data_stays_present_in_structured_mode(service, clients, protocol):
    c = clients(service.mqtt_port, unique("empty"), protocol=protocol)
    assert c.subscribe("app/demo") == [1]
    service.ingest("device1", "blob", b"", content_type="application/octet-stream")
    service.ingest("device1", "text", b"", content_type="text/plain")
    ms = c.collector.wait_for(2)
    blob, text = (m.json() for m in ms)
    assert blob["data_base64"] == ""
    assert "data" not in blob
    assert text["data"] == ""


def test_empty_data_is_an_empty_payload_in_binary_mode(service, clients):
    c = clients(service.mqtt_port, unique("empty-bin"))
    assert c.subscribe("app/demo", user_properties=[("content-mode", "binary")]) == [1]
    service.ingest("device1", "blob", b"", content_type="application/octet-stream")
    [m] = c.collector.wait_for(1)
    assert m.payload == b""
    assert m.prop("ContentType") == "application/octet-stream"


def reason_string(props):
    return getattr(props, "ReasonString", None) if props is not None else None


def test_v5_refusals_say_why(service):
    """SUBACK and PUBACK refusals carry a Reason String; an unknown application reads like a
    forbidden one (names cannot be probed)."""
    subacks, pubacks = {}, {}
    cond = threading.Condition()

    def on_subscribe(_c, _u, mid, rcs, props):
        with cond:
            subacks[mid] = ([r.value for r in rcs], reason_string(props))
            cond.notify_all()

    def on_publish(_c, _u, mid, rc, props):
        with cond:
            pubacks[mid] = (rc.value, reason_string(props))
            cond.notify_all()

    cl = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=unique("why"),
                     protocol=mqtt.MQTTv5)
    cl.on_subscribe = on_subscribe
    cl.on_publish = on_publish
    cl.connect("127.0.0.1", service.mqtt_port)
    cl.loop_start()
    try:
        _, sub_private = cl.subscribe("app/private", qos=1)
        _, sub_unknown = cl.subscribe("app/no-such-app", qos=1)
        cmd_readonly = cl.publish("command/readonly/device1/set", b"{}", qos=1).mid
        cmd_unknown = cl.publish("command/no-such-app/device1/set", b"{}", qos=1).mid
        with cond:
            assert cond.wait_for(lambda: len(subacks) == 2 and len(pubacks) == 2, WAIT)
        assert subacks[sub_private] == (
            [0x87], "app/private: not authorized: no read permission on application private")
        assert subacks[sub_unknown] == (
            [0x87],
            "app/no-such-app: not authorized: no read permission on application no-such-app")
        assert pubacks[cmd_readonly] == (
            0x87, "not authorized: no write permission for device device1 of application readonly")
        assert pubacks[cmd_unknown] == (
            0x87,
            "not authorized: no write permission for device device1 of application no-such-app")
    finally:
        cl.disconnect()
        cl.loop_stop()


def test_v5_no_reason_string_when_the_client_asks_for_none(service):
    subacks = {}
    cond = threading.Condition()

    def on_subscribe(_c, _u, mid, rcs, props):
        with cond:
            subacks[mid] = ([r.value for r in rcs], reason_string(props))
            cond.notify_all()

    props = Properties(PacketTypes.CONNECT)
    props.RequestProblemInformation = 0
    cl = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=unique("quiet"),
                     protocol=mqtt.MQTTv5)
    cl.on_subscribe = on_subscribe
    cl.connect("127.0.0.1", service.mqtt_port, properties=props)
    cl.loop_start()
    try:
        _, mid = cl.subscribe("app/private", qos=1)
        with cond:
            assert cond.wait_for(lambda: mid in subacks, WAIT)
        assert subacks[mid] == ([0x87], None)
    finally:
        cl.disconnect()
        cl.loop_stop()
