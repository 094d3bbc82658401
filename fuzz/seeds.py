#!/usr/bin/env python3
"""Writes the seed corpus: packets from the MQTT 3.1.1 and 5.0 specifications' examples and
typical client conversations, and WebSocket upgrades. Run from the repository root:
python3 fuzz/seeds.py (the files are committed; rerun only to change them)."""
import os, struct

def varint(n):
    out = bytearray()
    while True:
        b = n % 128; n //= 128
        out.append(b | (0x80 if n else 0))
        if not n: return bytes(out)

def s(x): return struct.pack(">H", len(x)) + x
def pkt(first, body): return bytes([first]) + varint(len(body)) + body

def connect(level, cid, props=b""):
    body = s(b"MQTT") + bytes([level, 0x02]) + struct.pack(">H", 60)
    if level == 5: body += varint(len(props)) + props
    return pkt(0x10, body + s(cid))

def subscribe(level, pid, flt, opts=1, props=b""):
    body = struct.pack(">H", pid) + ((varint(len(props)) + props) if level == 5 else b"")
    return pkt(0x82, body + s(flt) + bytes([opts]))

def publish(level, topic, payload, qos=1, pid=1, props=b""):
    body = s(topic) + (struct.pack(">H", pid) if qos else b"") + ((varint(len(props)) + props) if level == 5 else b"")
    return pkt(0x30 | (qos << 1), body + payload)

user_prop = b"\x26" + s(b"content-mode") + s(b"binary")
sub_id = b"\x0b\x07"
seeds = {
    "decode": {
        "connect_v311": connect(4, b"client-1"),
        "connect_v5_props": connect(5, b"client-5", b"\x21\x00\x10\x27\x00\x00\x10\x00"),
        "subscribe_v5_binary": subscribe(5, 1, b"app/demo", 1, user_prop + sub_id),
        "publish_a_b_id10": publish(4, b"a/b", b"", qos=1, pid=10),  # MQTT 3.1.1 §3.3.2.3 example
        "publish_v5_ct": publish(5, b"command/demo/device1/set", b'{"v":1}', props=b"\x03" + s(b"application/json")),
        "pingreq": b"\xc0\x00",
        "disconnect_v5": b"\xe0\x02\x00\x00",
        "unsubscribe": pkt(0xA2, struct.pack(">H", 3) + s(b"app/demo")),
        "varint_max": b"\x30\xff\xff\xff\x7f",
    },
}
conv = lambda level: connect(level, b"fuzz") + subscribe(level, 1, b"app/demo") + subscribe(level, 2, b"$share/g/app/demo/+/temp", 1) \
    + publish(level, b"command/demo/device1/set", b"{}") + publish(level, b"command/demo/off/set", b"x", qos=2, pid=2) \
    + pkt(0x62, struct.pack(">H", 2)) + pkt(0xA2, struct.pack(">H", 3) + ((b"\x00") if level == 5 else b"") + s(b"app/demo")) + b"\xc0\x00"
seeds["session"] = {"v311": b"\x07" + conv(4), "v5": b"\x03" + conv(5), "garbage_first": b"\x01\xff\xff\xff\xff"}
upgrade = (b"GET /mqtt HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n")
frame = lambda payload: bytes([0x82, 0x80 | len(payload)]) + b"\x01\x02\x03\x04" + bytes(b ^ [1, 2, 3, 4][i % 4] for i, b in enumerate(payload))
seeds["websocket"] = {"upgrade": upgrade, "upgrade_connect": upgrade + frame(connect(4, b"ws")), "wrong_path": upgrade.replace(b"/mqtt", b"/x")}
seeds["websocket"].update({"wrong_version": upgrade.replace(b"Version: 13", b"Version: 8"), "plain_get": b"GET /mqtt HTTP/1.1\r\nHost: localhost\r\n\r\n",
                           "empty_key": upgrade.replace(b"dGhlIHNhbXBsZSBub25jZQ==", b"")})

def record(headers, payload):
    out = bytearray([len(headers)])
    for k, v in headers:
        out += bytes([len(k)]) + k
        out += bytes([255]) if v is None else bytes([len(v)]) + v
    return bytes(out) + payload
binary = [(b"ce_specversion", b"1.0"), (b"ce_id", b"1"), (b"ce_source", b"drogue://demo/device1"), (b"ce_type", b"io.drogue.event.v1"),
          (b"ce_subject", b"temp"), (b"ce_application", b"demo"), (b"ce_device", b"device1"), (b"content-type", b"application/json")]
structured = (b'{"specversion":"1.0","id":"2","source":"drogue://demo/device1","type":"io.drogue.event.v1",'
              b'"datacontenttype":"application/json","device":"device1","data":{"temp":21}}')
seeds["kafka_record"] = {
    "binary_json": record(binary, b'{"temp":21.5}'),
    "binary_octets": record(binary[:4] + [(b"content-type", None)], bytes(range(16))),
    "structured": record([(b"content-type", b"application/cloudevents+json; charset=utf-8")], structured),
}

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
for target, files in seeds.items():
    os.makedirs(os.path.join(root, target), exist_ok=True)
    for name, data in files.items():
        with open(os.path.join(root, target, name), "wb") as f:
            f.write(data)
print("seeds written to", root)
