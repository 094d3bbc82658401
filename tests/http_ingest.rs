//! Spec 5: batch ingest (CloudEvents HTTP batch mode) reaches subscribers, all or nothing.

mod common;

use common::*;
use rumqttc::v5::mqttbytes::QoS;
use std::time::Duration;

fn post_batch(svc: &Service, body: &str) -> (u16, String) {
    let url = format!("http://{}/api/v1/apps/demo/events", svc.http);
    match ureq::post(&url)
        .set("Content-Type", "application/cloudevents-batch+json")
        .send_string(body)
    {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(e) => panic!("batch post failed: {e}"),
    }
}

#[test]
fn batch_ingest_all_or_nothing() {
    let svc = Service::start("");
    let c = V5::connect(v5_options(svc.mqtt, "http-batch-sub"));
    c.subscribe("app/demo", QoS::AtLeastOnce, None);

    let good = r#"[
      {"specversion":"1.0","id":"b-1","type":"t","source":"x","device":"device1","subject":"batch","datacontenttype":"application/json","data":{"k":1}},
      {"device":"device2","subject":"batch","datacontenttype":"application/json","data":{"k":2}},
      {"device":"device3","subject":"batch","datacontenttype":"text/plain","data":"three"}
    ]"#;
    let (status, body) = post_batch(&svc, good);
    assert_eq!(status, 202, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON body");
    assert_eq!(v["accepted"], 3, "{body}");

    let mut got = std::collections::BTreeMap::new();
    while got.len() < 3 {
        let p = c
            .next_publish(Duration::from_secs(5))
            .unwrap_or_else(|| panic!("batch events missing: {got:?}"));
        let ce = cloudevent(&p.payload);
        assert_eq!(ce["application"], "demo");
        assert_eq!(ce["subject"], "batch");
        got.insert(ce["device"].as_str().unwrap().to_owned(), ce);
    }
    assert_eq!(got["device1"]["data"], serde_json::json!({"k":1}));
    assert_eq!(got["device1"]["id"], "b-1");
    assert_eq!(got["device1"]["source"], "drogue://demo/device1");
    assert_eq!(got["device2"]["data"], serde_json::json!({"k":2}));
    assert_eq!(got["device3"]["data"], "three");
    for ce in got.values() {
        assert_eq!(
            ce["partitionkey"],
            format!("demo/{}", ce["device"].as_str().unwrap())
        );
        assert!(
            ce["id"].is_string() && ce["time"].is_string() && ce["specversion"] == "1.0",
            "{ce}"
        );
    }

    // One bad event (unknown device, index 1): 400 naming the index, nothing delivered.
    let bad = r#"[
      {"device":"device1","subject":"bad-batch","datacontenttype":"application/json","data":{"k":10}},
      {"device":"nosuchdevice","subject":"bad-batch","datacontenttype":"application/json","data":{"k":11}},
      {"device":"device3","subject":"bad-batch","datacontenttype":"application/json","data":{"k":12}}
    ]"#;
    let (status, body) = post_batch(&svc, bad);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains('1'), "the body must name index 1: {body}");
    // A marker on every partition; then nothing of the bad batch may show up.
    for d in ["device1", "device2", "device3", "device4"] {
        assert_eq!(
            svc.ingest("demo", d, "marker", "application/json", b"{}"),
            202
        );
    }
    let mut markers = 0;
    while markers < 4 {
        let p = c
            .next_publish(Duration::from_secs(5))
            .expect("markers missing");
        let ce = cloudevent(&p.payload);
        assert_eq!(
            ce["subject"], "marker",
            "an event of the refused batch was delivered: {ce}"
        );
        markers += 1;
    }
    if let Some(p) = c.next_publish(Duration::from_millis(500)) {
        panic!(
            "unexpected delivery: {}",
            String::from_utf8_lossy(&p.payload)
        );
    }
}
