"""HTTP operations and ingest routes (spec 5)."""

import json
import time

from conftest import http_request, metric_value, mqtt, parse_metrics, unique

FAMILIES = {
    "mqtt_integration_connections": "gauge",
    "mqtt_integration_subscriptions": "gauge",
    "mqtt_integration_events_delivered_total": "counter",
    "mqtt_integration_events_acked_total": "counter",
    "mqtt_integration_commands_total": "counter",
    "mqtt_integration_ingested_events_total": "counter",
    "mqtt_integration_group_lag": "gauge",
    "mqtt_integration_bytes_sent_total": "counter",
    "mqtt_integration_records_skipped_total": "counter",
}


def test_healthz_readyz(service):
    assert http_request(service.http + "/healthz")[0] == 200
    assert http_request(service.http + "/readyz")[0] == 200


def test_metrics_families_after_traffic(service_factory, clients):
    svc = service_factory()
    cid = unique("m5")
    v5 = clients(svc.mqtt_port, cid)
    v3 = clients(svc.mqtt_port, unique("m3"), protocol=mqtt.MQTTv311)
    bin5 = clients(svc.mqtt_port, unique("mb"))
    assert v5.subscribe("app/demo", qos=1) == [1]
    assert v3.subscribe("app/demo", qos=0) == [0]
    assert bin5.subscribe("app/demo/device1/#", qos=1,
                          user_properties=[("content-mode", "binary")]) == [1]
    for i in range(8):
        svc.ingest(f"device{i % 4 + 1}", "m", {"i": i})
    v5.collector.wait_for(8)
    v3.collector.wait_for(8)
    bin5.collector.wait_for(2)
    assert v5.publish("command/demo/device1/x", b"{}") == 0
    assert v5.publish("command/demo/off/x", b"{}") == 0x87
    v5.sync()

    status, body = http_request(svc.http + "/metrics")
    assert status == 200
    text = body.decode()
    for fam, kind in FAMILIES.items():
        assert f"# TYPE {fam} {kind}" in text, fam
    samples = parse_metrics(text)
    names = {n for n, _, _ in samples}
    assert set(FAMILIES) <= names, set(FAMILIES) - names

    assert metric_value(text, "mqtt_integration_connections", protocol="mqtt") == 3
    assert metric_value(text, "mqtt_integration_subscriptions") == 3
    assert metric_value(text, "mqtt_integration_events_delivered_total",
                        mode="structured", qos="1") == 8
    assert metric_value(text, "mqtt_integration_events_delivered_total",
                        mode="structured", qos="0") == 8
    assert metric_value(text, "mqtt_integration_events_delivered_total",
                        mode="binary", qos="1") == 2
    assert metric_value(text, "mqtt_integration_ingested_events_total") == 8
    assert metric_value(text, "mqtt_integration_commands_total", outcome="accepted") == 1
    assert metric_value(text, "mqtt_integration_commands_total", outcome="unauthorized") == 1
    assert metric_value(text, "mqtt_integration_bytes_sent_total") > 0
    assert metric_value(text, "mqtt_integration_records_skipped_total") == 0
    groups = {l.get("group") for n, l, _ in samples if n == "mqtt_integration_group_lag"}
    assert f"demo.{cid}" in groups, groups

    # every QoS 1 delivery is acknowledged and committed: acked 10, lag of the group drops to 0
    deadline = time.monotonic() + 5
    while True:
        text = svc.metrics()
        acked = metric_value(text, "mqtt_integration_events_acked_total")
        lag = metric_value(text, "mqtt_integration_group_lag", group=f"demo.{cid}")
        if (acked, lag) == (10, 0) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert (acked, lag) == (10, 0)

    # the connection gauge follows disconnects
    v3.close()
    deadline = time.monotonic() + 5
    while svc.metric("mqtt_integration_connections", protocol="mqtt") != 2:
        assert time.monotonic() < deadline, "connections gauge did not drop to 2"
        time.sleep(0.05)


def post(service, path, body, content_type="application/json"):
    return http_request(service.http + path, method="POST", body=body,
                        headers={"Content-Type": content_type})


def test_ingest_errors(service):
    base = "/api/v1/apps/{}/devices/{}/events/ch"
    assert post(service, base.format("nope", "device1"), b"{}")[0] == 404
    assert post(service, base.format("readonly", "device1"), b"{}")[0] == 403
    assert post(service, base.format("private", "device1"), b"{}")[0] == 403
    big = b"x" * (1024 * 1024 + 1)
    assert post(service, base.format("demo", "device1"), big,
                "application/octet-stream")[0] == 413
    assert post(service, base.format("demo", "device1"), b"{}")[0] == 202
    # unknown or disabled device of an existing application
    assert post(service, base.format("demo", "nosuch"), b"{}")[0] in (403, 404)
    assert post(service, base.format("demo", "off"), b"{}")[0] in (403, 404)
    assert http_request(service.http + "/nosuchroute")[0] == 404


def test_batch_ingest(service, clients):
    c = clients(service.mqtt_port, unique("batch"))
    assert c.subscribe("app/demo") == [1]
    batch = [
        {"device": "device1", "subject": "a", "datacontenttype": "application/json",
         "data": {"n": 1}},
        {"device": "device2", "subject": "b", "datacontenttype": "text/plain", "data": "two",
         "id": "my-id-2", "type": "my.type"},
    ]
    status, body = post(service, "/api/v1/apps/demo/events", json.dumps(batch).encode(),
                        "application/cloudevents-batch+json")
    assert status == 202, body
    assert json.loads(body) == {"accepted": 2}
    msgs = c.collector.wait_for(2)
    ces = sorted((m.json() for m in msgs), key=lambda ce: ce["subject"])
    assert ces[0]["data"] == {"n": 1}
    assert ces[0]["source"] == "drogue://demo/device1"
    assert ces[0]["application"] == "demo"
    assert ces[0]["partitionkey"] == "demo/device1"
    assert ces[0]["specversion"] == "1.0"
    assert ces[1]["id"] == "my-id-2"
    assert ces[1]["type"] == "my.type"
    assert ces[1]["data"] == "two"

    # all or nothing: the second event names a device that does not exist
    bad = [batch[0], {"device": "nosuch", "subject": "x", "data": {}}]
    status, body = post(service, "/api/v1/apps/demo/events", json.dumps(bad).encode(),
                        "application/cloudevents-batch+json")
    assert status == 400
    assert b"1" in body, body
    assert c.collector.settle(0.4) == msgs
