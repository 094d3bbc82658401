"""Event streaming to paho-mqtt subscribers: encodings (spec 2.2, 2.3), subscription identifiers,
consumer groups, device/channel filters and the start position of a new group (spec 2.1, 2.4)."""

import base64
import json
import os
import uuid
from collections import defaultdict
from datetime import datetime, timezone

import pytest

from conftest import http_request, mqtt, unique, wait_total

CE_JSON = "application/cloudevents+json; charset=utf-8"


def nonce() -> str:
    return uuid.uuid4().hex


def check_common_attributes(ce: dict, device: str, channel: str, content_type: str,
                            app: str = "demo") -> None:
    assert ce["specversion"] == "1.0"
    uuid.UUID(ce["id"])  # a UUID
    assert ce["type"] == "io.drogue.event.v1"
    assert ce["source"] == f"drogue://{app}/{device}"
    assert ce["subject"] == channel
    t = datetime.fromisoformat(ce["time"].replace("Z", "+00:00"))
    assert t.utcoffset().total_seconds() == 0, ce["time"]
    assert abs((datetime.now(timezone.utc) - t).total_seconds()) < 60
    assert ce["datacontenttype"] == content_type
    assert ce["application"] == app
    assert ce["device"] == device
    assert ce["partitionkey"] == f"{app}/{ce.get('sender', device)}"


def ingest_three_kinds(service, tag: str) -> tuple[dict, str, bytes]:
    json_data = {"tag": tag, "temp": 21.5, "nested": {"ok": True, "list": [1, 2, 3]}}
    text_data = f"hello {tag} – ünïcödé"
    bin_data = b"\x00\xff\xfe" + tag.encode() + bytes(range(256))
    service.ingest("device1", "temp", json_data)
    service.ingest("device1", "greeting", text_data, content_type="text/plain")
    service.ingest("device1", "blob", bin_data, content_type="application/octet-stream")
    return json_data, text_data, bin_data


def check_structured_three(msgs, json_data, text_data, bin_data):
    assert [m.topic for m in msgs] == ["app/demo"] * 3
    ces = [m.json() for m in msgs]
    by_subject = {ce["subject"]: ce for ce in ces}
    assert set(by_subject) == {"temp", "greeting", "blob"}, ces

    ce = by_subject["temp"]
    check_common_attributes(ce, "device1", "temp", "application/json")
    assert ce["data"] == json_data
    assert "data_base64" not in ce

    ce = by_subject["greeting"]
    check_common_attributes(ce, "device1", "greeting", "text/plain")
    assert ce["data"] == text_data
    assert "data_base64" not in ce

    ce = by_subject["blob"]
    check_common_attributes(ce, "device1", "blob", "application/octet-stream")
    assert "data" not in ce
    assert base64.b64decode(ce["data_base64"], validate=True) == bin_data

    assert len({ce["id"] for ce in ces}) == 3
    # order is kept per device
    assert [ce["subject"] for ce in ces] == ["temp", "greeting", "blob"]


def test_v311_structured(service, clients):
    c = clients(service.mqtt_port, unique("v311s"), protocol=mqtt.MQTTv311)
    assert c.subscribe("app/demo", qos=1) == [1]
    data = ingest_three_kinds(service, nonce())
    msgs = c.collector.wait_for(3)
    assert len(c.collector.settle(0.3)) == 3
    assert all(m.qos == 1 for m in msgs)
    check_structured_three(msgs, *data)


def test_v5_structured(service, clients):
    c = clients(service.mqtt_port, unique("v5s"))
    assert c.subscribe("app/demo", qos=1) == [1]
    data = ingest_three_kinds(service, nonce())
    msgs = c.collector.wait_for(3)
    assert len(c.collector.settle(0.3)) == 3
    check_structured_three(msgs, *data)
    for m in msgs:
        assert m.qos == 1
        assert m.prop("ContentType") == CE_JSON
        assert m.prop("PayloadFormatIndicator") == 1
        json.loads(m.payload.decode("utf-8"))  # valid UTF-8 JSON


def test_v5_binary(service, clients):
    c = clients(service.mqtt_port, unique("v5b"))
    assert c.subscribe("app/demo", qos=1, user_properties=[("content-mode", "binary")]) == [1]
    # random bytes, plus a NUL and a sequence that is not valid UTF-8
    payload = b"\x00\xc3\x28\xff" + os.urandom(512) + b"\x00\x80"
    with pytest.raises(UnicodeDecodeError):
        payload.decode("utf-8")
    service.ingest("device2", "raw/data", payload, content_type="application/x-custom")
    json_data = {"k": nonce()}
    service.ingest("device2", "js", json_data)
    msgs = c.collector.wait_for(2)
    assert len(c.collector.settle(0.3)) == 2

    m = msgs[0]
    assert m.topic == "app/demo"
    assert m.payload == payload
    assert m.prop("ContentType") == "application/x-custom"
    up = m.user_properties
    assert up["specversion"] == "1.0"
    uuid.UUID(up["id"])
    assert up["type"] == "io.drogue.event.v1"
    assert up["source"] == "drogue://demo/device2"
    assert up["subject"] == "raw/data"
    datetime.fromisoformat(up["time"].replace("Z", "+00:00"))
    assert up["application"] == "demo"
    assert up["device"] == "device2"
    assert "datacontenttype" not in up  # carried as the Content Type property
    assert m.prop("PayloadFormatIndicator", 0) in (0, None)  # binary data is not declared UTF-8

    m = msgs[1]
    assert json.loads(m.payload) == json_data
    assert m.prop("ContentType") == "application/json"
    assert m.user_properties["subject"] == "js"
    assert m.user_properties["id"] != up["id"]


def test_subscription_identifier_echoed(service, clients):
    c = clients(service.mqtt_port, unique("subid"))
    assert c.subscribe("app/demo", qos=1, sub_id=7) == [1]
    for i, d in enumerate(["device1", "device2", "device3", "device4"] * 2):
        service.ingest(d, "t", {"i": i})
    msgs = c.collector.wait_for(8)
    assert len(c.collector.settle(0.3)) == 8
    assert [m.subscription_ids for m in msgs] == [[7]] * 8


def test_overlapping_filters_one_delivery_with_both_ids(service, clients):
    c = clients(service.mqtt_port, unique("overlap"))
    assert c.subscribe("app/demo", qos=1, sub_id=1) == [1]
    assert c.subscribe("app/demo/device1/#", qos=1, sub_id=2) == [1]
    tag = nonce()
    service.ingest("device1", "a", {"tag": tag, "n": 1})
    service.ingest("device2", "a", {"tag": tag, "n": 2})
    service.ingest("device1", "b/c", {"tag": tag, "n": 3})
    c.collector.wait_for(3)
    msgs = c.collector.settle(0.5)
    by_n = defaultdict(list)
    for m in msgs:
        ce = m.json()
        by_n[ce["data"]["n"]].append(m)
    assert {n: len(v) for n, v in by_n.items()} == {1: 1, 2: 1, 3: 1}, msgs
    assert by_n[1][0].subscription_ids == [1, 2]
    assert by_n[3][0].subscription_ids == [1, 2]
    assert by_n[2][0].subscription_ids == [1]
    assert by_n[2][0].topic == "app/demo"
    for n, ch in ((1, "a"), (3, "b/c")):
        assert by_n[n][0].topic in ("app/demo", f"app/demo/device1/{ch}")


def test_shared_subscription_splits_stream(service, clients):
    group = unique("g")
    a = clients(service.mqtt_port, unique("sharea"))
    b = clients(service.mqtt_port, unique("shareb"), protocol=mqtt.MQTTv311)
    assert a.subscribe(f"$share/{group}/app/demo", qos=1) == [1]
    assert b.subscribe(f"$share/{group}/app/demo", qos=1) == [1]
    devices = ["device1", "device2", "device3", "device4"]
    sent = []
    for i in range(200):
        d = devices[i % 4]
        marker = f"{d}-{i // 4}"
        service.ingest(d, "seq", {"marker": marker, "seq": i // 4})
        sent.append(marker)

    assert wait_total([a.collector, b.collector], 200, timeout=20)
    a_msgs, b_msgs = a.collector.settle(0.5), b.collector.settle(0.2)
    a_ev = [m.json() for m in a_msgs]
    b_ev = [m.json() for m in b_msgs]
    got = [e["data"]["marker"] for e in a_ev + b_ev]
    assert sorted(got) == sorted(sent), "every event exactly once across the group"
    assert len(a_ev) > 0 and len(b_ev) > 0, (len(a_ev), len(b_ev))
    for events in (a_ev, b_ev):
        per_device = defaultdict(list)
        for e in events:
            per_device[e["device"]].append(e["data"]["seq"])
        for d, seqs in per_device.items():
            assert seqs == sorted(seqs), f"order of {d} not kept: {seqs}"
    # a device's events all go to one member (one partition, one owner)
    assert not ({e["device"] for e in a_ev} & {e["device"] for e in b_ev})


def test_per_client_groups_each_get_everything(service, clients):
    a = clients(service.mqtt_port, unique("pa"))
    b = clients(service.mqtt_port, unique("pb"), protocol=mqtt.MQTTv311)
    assert a.subscribe("app/demo") == [1]
    assert b.subscribe("app/demo") == [1]
    tag = nonce()
    for i in range(20):
        service.ingest(f"device{i % 4 + 1}", "c", {"tag": tag, "i": i})
    for c in (a, b):
        c.collector.wait_for(20)
        msgs = c.collector.settle(0.3)
        assert sorted(m.json()["data"]["i"] for m in msgs) == list(range(20))


def test_aliases_a_and_application(service, clients):
    c = clients(service.mqtt_port, unique("alias"))
    assert c.subscribe("a/demo", sub_id=3) == [1]
    d = clients(service.mqtt_port, unique("alias2"))
    assert d.subscribe("application/demo", sub_id=4) == [1]
    service.ingest("device3", "x", {"v": 1})
    for cl, sid in ((c, 3), (d, 4)):
        [m] = cl.collector.wait_for(1)
        assert m.json()["device"] == "device3"
        assert m.subscription_ids == [sid]


@pytest.mark.parametrize("flt, expected", [
    ("app/demo/device1/#", {("device1", "temp"), ("device1", "room/1"), ("device1", "hum")}),
    ("app/demo/+/temp", {("device1", "temp"), ("device2", "temp"), ("device3", "temp")}),
    ("app/demo/device2/+", {("device2", "temp"), ("device2", "hum")}),
    ("app/demo/+/room/1", {("device1", "room/1"), ("device3", "room/1")}),
    ("app/demo/device3/room/1", {("device3", "room/1")}),
    ("app/demo/#", {("device1", "temp"), ("device1", "room/1"), ("device1", "hum"),
                    ("device2", "temp"), ("device2", "hum"), ("device3", "temp"),
                    ("device3", "room/1"), ("device2", "room/1/x"), ("device4", "other")}),
    ("app/demo/+/+", {("device1", "temp"), ("device1", "hum"), ("device2", "temp"),
                      ("device2", "hum"), ("device3", "temp"), ("device4", "other")}),
])
def test_device_channel_filters(service, clients, flt, expected):
    c = clients(service.mqtt_port, unique("flt"))
    assert c.subscribe(flt, qos=1) == [1]
    # a whole-app subscriber tells us when every event has been delivered
    probe = clients(service.mqtt_port, unique("probe"))
    assert probe.subscribe("app/demo") == [1]
    events = [("device1", "temp"), ("device1", "room/1"), ("device1", "hum"),
              ("device2", "temp"), ("device2", "hum"), ("device3", "temp"),
              ("device3", "room/1"), ("device2", "room/1/x"), ("device4", "other")]
    tag = nonce()
    for d, ch in events:
        service.ingest(d, ch, {"tag": tag})
    probe.collector.wait_for(len(events))
    c.collector.wait_for(len(expected))
    msgs = c.collector.settle(0.5)
    got = [(m.json()["device"], m.json()["subject"]) for m in msgs]
    assert sorted(got) == sorted(expected)
    for m in msgs:
        ce = m.json()
        assert m.topic == f"app/demo/{ce['device']}/{ce['subject']}"
        assert ce["data"] == {"tag": tag}


def test_new_group_starts_after_suback(service, clients):
    tag = nonce()
    for i in range(5):
        service.ingest(f"device{i % 4 + 1}", "before", {"tag": tag, "i": i})
    c = clients(service.mqtt_port, unique("fresh"))
    assert c.subscribe("app/demo", qos=1) == [1]
    for i in range(5, 10):
        service.ingest(f"device{i % 4 + 1}", "after", {"tag": tag, "i": i})
    c.collector.wait_for(5)
    msgs = c.collector.settle(0.5)
    assert sorted(m.json()["data"]["i"] for m in msgs) == [5, 6, 7, 8, 9]


def test_durable_group_resumes_after_reconnect(service, clients):
    cid = unique("durable")
    c = clients(service.mqtt_port, cid, clean=False)
    assert c.subscribe("app/demo", qos=1) == [1]
    service.ingest("device1", "d", {"i": 0})
    c.collector.wait_for(1)
    c.sync()  # the PUBACK is on the wire before the DISCONNECT
    c.close()
    # events while the client is away are kept for its group
    for i in range(1, 6):
        service.ingest(f"device{i % 4 + 1}", "d", {"i": i})
    c2 = clients(service.mqtt_port, cid, clean=False)
    assert c2.subscribe("app/demo", qos=1) == [1]
    c2.collector.wait_for(5)
    msgs = c2.collector.settle(0.5)
    got = sorted(m.json()["data"]["i"] for m in msgs)
    assert got == [1, 2, 3, 4, 5], "resumes from the committed offset, no gap, no replay of acked"


def test_empty_client_id_is_ephemeral(service, clients):
    c = clients(service.mqtt_port, "")
    assert c.subscribe("app/demo", qos=1) == [1]
    service.ingest("device4", "e", {"i": 1})
    [m] = c.collector.wait_for(1)
    assert m.json()["data"] == {"i": 1}


def test_qos0_subscription(service, clients):
    c = clients(service.mqtt_port, unique("q0"))
    assert c.subscribe("app/demo", qos=0) == [0]
    service.ingest("device1", "q", {"q": 0})
    [m] = c.collector.wait_for(1)
    assert m.qos == 0


def test_alias_filters_share_the_group(service, clients):
    """a/, app/ and application/ are one application stream: one delivery with every id."""
    c = clients(service.mqtt_port, unique("al"))
    assert c.subscribe("a/demo", sub_id=1) == [1]
    assert c.subscribe("app/demo", sub_id=2) == [1]
    assert c.subscribe("application/demo", sub_id=3) == [1]
    service.ingest("device1", "x", {"n": 1})
    c.collector.wait_for(1)
    [m] = c.collector.settle(0.4)
    assert m.topic == "app/demo"
    assert m.subscription_ids == [1, 2, 3]


SPECIAL_APPS = """
[[app]]
name = "my app"
members = { anonymous = "manager" }
devices = [ { name = "dev ä 1" } ]
"""


def test_percent_encoded_names(service_factory, clients):
    svc = service_factory(apps=SPECIAL_APPS)
    c = clients(svc.mqtt_port, unique("pct"))
    assert c.subscribe("app/my app", sub_id=1) == [1]
    assert c.subscribe("app/my app/dev ä 1/+", sub_id=2) == [1]
    status, body = http_request(
        f"{svc.http}/api/v1/apps/my%20app/devices/dev%20%C3%A4%201/events/ch%20%2F1",
        method="POST", body=b"{}", headers={"Content-Type": "application/json"})
    assert status == 202, body
    status, body = http_request(
        f"{svc.http}/api/v1/apps/my%20app/devices/dev%20%C3%A4%201/events/flat",
        method="POST", body=b"{}", headers={"Content-Type": "application/json"})
    assert status == 202, body
    c.collector.wait_for(2)
    msgs = c.collector.settle(0.4)
    ces = [m.json() for m in msgs]
    assert [ce["subject"] for ce in ces] == ["ch /1", "flat"]
    for ce in ces:
        assert ce["source"] == "drogue://my%20app/dev%20%C3%A4%201"
        assert ce["application"] == "my app"
        assert ce["device"] == "dev ä 1"
        assert ce["partitionkey"] == "my app/dev ä 1"
    assert msgs[0].subscription_ids == [1]
    assert msgs[1].subscription_ids == [1, 2]
