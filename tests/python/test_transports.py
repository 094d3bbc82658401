"""TLS (mqtts), WebSocket (ws) and WebSocket over TLS (wss) listeners.

Certificates are made at test time with the openssl CLI (`pki` fixture in conftest.py).
Raw WebSocket checks speak HTTP/1.1 and RFC 6455 frames by hand over `socket`/`ssl`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import time

import pytest

from conftest import (Client, ServiceFactory, encode_varint, http_request, metric_value, mqtt,
                      read_packet, unique, free_port, WAIT)

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


# --------------------------------------------------------------------------------------------
# Configuration


def listener(kind: str, port: int, pki=None, cert: str = "server", client_ca: str | None = None,
             path: str | None = None, cert_path=None, key_path=None) -> str:
    lines = ["[[listener]]", f'kind = "{kind}"', f'bind = "127.0.0.1:{port}"']
    if kind in ("mqtts", "wss"):
        lines.append(f'cert = "{cert_path or pki.crt(cert)}"')
        lines.append(f'key = "{key_path or pki.key(cert)}"')
    if client_ca:
        lines.append(f'client_ca = "{pki.crt(client_ca)}"')
    if path:
        lines.append(f'path = "{path}"')
    return "\n".join(lines) + "\n"


class Ports:
    def __init__(self, **listeners):
        self.__dict__.update(listeners)


@pytest.fixture(scope="module")
def tsvc(tmp_path_factory, pki):
    """One service with every transport: mqtt, mqtts, ws, wss, ws on `/custom`, mqtts with
    client certificates (mutual TLS) and wss with client certificates."""
    ports = Ports(mqtts=free_port(), ws=free_port(), wss=free_port(), ws_custom=free_port(),
                  mtls=free_port(), mwss=free_port())
    extra = (listener("mqtts", ports.mqtts, pki)
             + listener("ws", ports.ws)
             + listener("wss", ports.wss, pki)
             + listener("ws", ports.ws_custom, path="/custom")
             + listener("mqtts", ports.mtls, pki, client_ca="client-ca")
             + listener("wss", ports.mwss, pki, client_ca="client-ca"))
    factory = ServiceFactory(tmp_path_factory.mktemp("transports"))
    svc = factory(extra=extra)
    svc.ports = ports
    yield svc
    factory.stop_all()


# --------------------------------------------------------------------------------------------
# Raw MQTT packets


def mqtt_str(b: bytes) -> bytes:
    return len(b).to_bytes(2, "big") + b


def packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + encode_varint(len(body)) + body


def connect_packet(client_id: str, level: int = 4, keepalive: int = 30) -> bytes:
    vh = mqtt_str(b"MQTT") + bytes([level, 0x02]) + keepalive.to_bytes(2, "big")
    if level == 5:
        vh += b"\x00"
    return packet(0x10, vh + mqtt_str(client_id.encode()))


def subscribe_packet(pkid: int, topic: str, qos: int = 1, level: int = 4) -> bytes:
    body = pkid.to_bytes(2, "big") + (b"\x00" if level == 5 else b"")
    return packet(0x82, body + mqtt_str(topic.encode()) + bytes([qos]))


def publish_packet(topic: str, payload: bytes, qos: int = 1, pkid: int = 1,
                   level: int = 4) -> bytes:
    body = mqtt_str(topic.encode())
    if qos:
        body += pkid.to_bytes(2, "big")
    if level == 5:
        body += b"\x00"
    return packet(0x30 | (qos << 1), body + payload)


def puback_packet(pkid: int) -> bytes:
    return packet(0x40, pkid.to_bytes(2, "big"))


def split_packet(data: bytes) -> tuple[bytes, bytes] | None:
    """(first whole MQTT packet, rest) or None if `data` does not hold a whole packet yet."""
    if len(data) < 2:
        return None
    length, mult, i = 0, 1, 1
    while True:
        if i >= len(data):
            return None
        b = data[i]
        length += (b & 0x7F) * mult
        i += 1
        if not b & 0x80:
            break
        mult *= 128
    if len(data) < i + length:
        return None
    return data[:i + length], data[i + length:]


def publish_parts(pkt: bytes, level: int = 4) -> tuple[str, int, bytes]:
    """(topic, packet id or 0, payload) of a PUBLISH packet."""
    whole = split_packet(pkt)
    assert whole is not None
    i = 1
    while pkt[i] & 0x80:
        i += 1
    body = pkt[i + 1:]
    tlen = int.from_bytes(body[:2], "big")
    topic = body[2:2 + tlen].decode()
    rest = body[2 + tlen:]
    pkid = 0
    if (pkt[0] >> 1) & 3:
        pkid = int.from_bytes(rest[:2], "big")
        rest = rest[2:]
    if level == 5:
        plen, mult, j = 0, 1, 0
        while True:
            b = rest[j]
            plen += (b & 0x7F) * mult
            j += 1
            if not b & 0x80:
                break
            mult *= 128
        rest = rest[j + plen:]
    return topic, pkid, rest


# --------------------------------------------------------------------------------------------
# Raw WebSocket client (RFC 6455, client side: masked frames)


class RawWs:
    def __init__(self, port: int, path: str = "/mqtt", protocols: str | None = "mqtt",
                 tls: ssl.SSLContext | None = None, rcvbuf: int | None = None,
                 timeout: float = WAIT):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(timeout)
        sock.connect(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls is not None:
            sock = tls.wrap_socket(sock, server_hostname="localhost")
        self.sock = sock
        self.buf = bytearray()
        self.mqtt_buf = b""
        key = base64.b64encode(os.urandom(16))
        lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket",
                 "Connection: Upgrade", f"Sec-WebSocket-Key: {key.decode()}",
                 "Sec-WebSocket-Version: 13"]
        if protocols is not None:
            lines.append(f"Sec-WebSocket-Protocol: {protocols}")
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        while b"\r\n\r\n" not in self.buf:
            chunk = sock.recv(4096)
            if not chunk:
                break
            self.buf += chunk
        head, _, rest = bytes(self.buf).partition(b"\r\n\r\n")
        self.buf = bytearray(rest)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        self.status_line = status_line
        self.status = int(status_line.split()[1]) if status_line else 0
        self.headers = {}
        for h in header_lines:
            name, _, value = h.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        if self.status == 101:
            expected = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()
            assert self.headers.get("sec-websocket-accept") == expected, self.headers

    # frames

    def send_frame(self, opcode: int, payload: bytes, fin: bool = True) -> None:
        self.sock.sendall(self.frame(opcode, payload, fin))

    @staticmethod
    def frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
        head = bytes([(0x80 if fin else 0) | opcode])
        n = len(payload)
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload)) if n < 4096 else \
            _mask_fast(payload, mask)
        return head + mask + masked

    def _need(self, n: int) -> None:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk

    def recv_frame(self) -> tuple[bool, int, bytes]:
        self._need(2)
        b0, b1 = self.buf[0], self.buf[1]
        assert not b1 & 0x80, "server frames must not be masked"
        n, off = b1 & 0x7F, 2
        if n == 126:
            self._need(4)
            n, off = struct.unpack(">H", bytes(self.buf[2:4]))[0], 4
        elif n == 127:
            self._need(10)
            n, off = struct.unpack(">Q", bytes(self.buf[2:10]))[0], 10
        self._need(off + n)
        payload = bytes(self.buf[off:off + n])
        del self.buf[:off + n]
        return bool(b0 & 0x80), b0 & 0x0F, payload

    # MQTT over the WebSocket

    def send_mqtt(self, data: bytes) -> None:
        self.send_frame(0x2, data)

    def read_mqtt(self) -> bytes:
        """The next whole MQTT packet (binary and continuation frames are a byte stream)."""
        while True:
            whole = split_packet(self.mqtt_buf)
            if whole is not None:
                pkt, self.mqtt_buf = whole
                return pkt
            fin, op, payload = self.recv_frame()
            if op in (0x0, 0x2):
                self.mqtt_buf += payload
            elif op == 0x8:
                raise EOFError(f"WebSocket Close {payload[:2].hex()}")
            elif op == 0x9:
                self.send_frame(0xA, payload)
            else:
                raise AssertionError(f"unexpected frame opcode {op:#x}")

    def is_closed(self, timeout: float = WAIT) -> bool:
        """True if the server ends the connection (Close frame or EOF) within `timeout`."""
        self.sock.settimeout(timeout)
        try:
            while True:
                _fin, op, _ = self.recv_frame()
                if op == 0x8:
                    return True
        except (EOFError, ConnectionResetError, BrokenPipeError, ssl.SSLError):
            return True
        except socket.timeout:
            return False

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def _mask_fast(payload: bytes, mask: bytes) -> bytes:
    n = len(payload)
    m = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    return (int.from_bytes(payload, "big") ^ m).to_bytes(n, "big")


def ws_mqtt_connect(ws: RawWs, client_id: str, level: int = 4) -> None:
    ws.send_mqtt(connect_packet(client_id, level))
    connack = ws.read_mqtt()
    assert connack[0] == 0x20 and connack[3] == 0, connack.hex()


# --------------------------------------------------------------------------------------------
# Helpers


PROTOCOLS = [pytest.param(mqtt.MQTTv311, id="v311"), pytest.param(mqtt.MQTTv5, id="v5")]


def subscribe_and_receive(svc, client: Client, device: str = "device1") -> dict:
    """Subscribes `app/demo`, ingests one JSON event, returns the delivered CloudEvent."""
    assert client.subscribe("app/demo", qos=1) == [1]
    marker = unique("evt")
    svc.ingest(device, "temperature", {"marker": marker})
    msgs = client.collector.wait_for(1)
    ce = json.loads(msgs[0].payload)
    assert ce["data"] == {"marker": marker}
    assert ce["source"] == f"drogue://demo/{device}"
    return ce


def tls_mqtt_attempt(port: int, ctx: ssl.SSLContext, timeout: float = 5.0) -> str:
    """Connects with `ctx`, sends CONNECT and reads the answer: "connack" on success, else a
    description of how it failed (handshake error, alert, connection closed)."""
    try:
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(connect_packet(unique("tls")))
            pkt = read_packet(s)
            if pkt[0] == 0x20 and pkt[3] == 0:
                return "connack"
            return f"unexpected answer {pkt.hex()}"
    except (ssl.SSLError, OSError, EOFError) as e:
        return f"failed: {e!r}"


def peer_cert_der(port: int, ctx: ssl.SSLContext) -> bytes:
    raw = socket.create_connection(("127.0.0.1", port), timeout=5.0)
    with ctx.wrap_socket(raw, server_hostname="localhost") as s:
        return s.getpeercert(binary_form=True)


def der_serial(der: bytes) -> int:
    """The serial number of a DER certificate (Certificate → tbsCertificate → serial)."""
    def header(i: int) -> tuple[int, int, int]:  # (tag, content start, content length)
        tag, n = der[i], der[i + 1]
        i += 2
        if n & 0x80:
            k = n & 0x7F
            n = int.from_bytes(der[i:i + k], "big")
            i += k
        return tag, i, n
    _, i, _ = header(0)          # Certificate SEQUENCE
    _, i, _ = header(i)          # tbsCertificate SEQUENCE
    tag, j, n = header(i)
    if tag == 0xA0:              # [0] version
        tag, j, n = header(j + n)
    assert tag == 0x02, f"serial INTEGER expected, tag {tag:#x}"
    return int.from_bytes(der[j:j + n], "big")


def wait_until(pred, timeout: float = WAIT, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return pred()


# --------------------------------------------------------------------------------------------
# 1. mqtts


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_mqtts_paho_receives_event(tsvc, pki, clients, protocol):
    c = clients(tsvc.ports.mqtts, unique("tls"), protocol=protocol, tls_context=pki.context())
    assert isinstance(c.client.socket(), ssl.SSLSocket)
    subscribe_and_receive(tsvc, c)


@pytest.mark.parametrize("version,name", [
    pytest.param(ssl.TLSVersion.TLSv1_2, "TLSv1.2", id="tls1.2"),
    pytest.param(ssl.TLSVersion.TLSv1_3, "TLSv1.3", id="tls1.3"),
])
def test_mqtts_tls_versions(tsvc, pki, clients, version, name):
    c = clients(tsvc.ports.mqtts, unique("tlsv"), protocol=mqtt.MQTTv5,
                tls_context=pki.context(version=version))
    assert c.client.socket().version() == name
    subscribe_and_receive(tsvc, c, device="device2")


@pytest.mark.skipif(not shutil.which("mosquitto_sub"), reason="mosquitto-clients not installed")
def test_mqtts_mosquitto_sub(tsvc, pki):
    from test_mosquitto import finish, start_sub
    proc, out = start_sub(
        ["mosquitto_sub", "-h", "localhost", "-p", str(tsvc.ports.mqtts), "--cafile",
         str(pki.crt("ca")), "-V", "5", "-i", unique("msubtls"), "-q", "1", "-t", "app/demo",
         "-C", "1", "-W", "15", "-d"])
    try:
        out.wait_line(lambda l: "received SUBACK" in l)
        marker = unique("mosq")
        tsvc.ingest("device3", "temperature", {"marker": marker})
        assert finish(proc) == 0, out.lines
        ce = json.loads(out.wait_line(lambda l: l.startswith("{")))
        assert ce["data"] == {"marker": marker}
        assert ce["device"] == "device3"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# --------------------------------------------------------------------------------------------
# 2. ws and wss with paho


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("kind", ["ws", "wss"])
def test_websocket_paho_receives_event(tsvc, pki, clients, kind, protocol):
    port = getattr(tsvc.ports, kind)
    ctx = pki.context() if kind == "wss" else None
    c = clients(port, unique(kind), protocol=protocol, transport="websockets",
                ws_path="/mqtt", tls_context=ctx)
    subscribe_and_receive(tsvc, c, device="device4")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_ws_command_puback(tsvc, clients, protocol):
    c = clients(tsvc.ports.ws, unique("wscmd"), protocol=protocol, transport="websockets")
    before = tsvc.metric("mqtt_integration_commands_total", outcome="accepted")
    assert c.publish("command/demo/device1/set", json.dumps({"on": True}), qos=1) == 0
    assert c.client.is_connected()
    assert wait_until(lambda: tsvc.metric("mqtt_integration_commands_total",
                                          outcome="accepted") >= before + 1)


def test_ws_custom_path(tsvc, clients):
    c = clients(tsvc.ports.ws_custom, unique("wscustom"), transport="websockets",
                ws_path="/custom")
    subscribe_and_receive(tsvc, c)
    # The default path is not served by a listener configured for /custom.
    with pytest.raises(mqtt.WebsocketConnectionError):
        clients(tsvc.ports.ws_custom, unique("wsdefault"), transport="websockets",
                ws_path="/mqtt")


def test_wss_large_binary_event_byte_exact(tsvc, pki, clients):
    c = clients(tsvc.ports.wss, unique("wssbig"), protocol=mqtt.MQTTv5, transport="websockets",
                tls_context=pki.context())
    assert c.subscribe("app/demo", qos=1, user_properties=[("content-mode", "binary")]) == [1]
    data = os.urandom(200 * 1024)
    tsvc.ingest("device1", "blob", data, content_type="application/octet-stream")
    msgs = c.collector.wait_for(1)
    m = msgs[0]
    assert m.prop("ContentType") == "application/octet-stream"
    assert len(m.payload) == len(data)
    assert m.payload == data
    assert m.user_properties.get("subject") == "blob"


# --------------------------------------------------------------------------------------------
# 3. Raw WebSocket upgrade and framing


def test_raw_upgrade_without_subprotocol_is_accepted(tsvc):
    ws = RawWs(tsvc.ports.ws, protocols=None)
    try:
        assert ws.status == 101, ws.status_line
        assert "sec-websocket-protocol" not in ws.headers
        ws_mqtt_connect(ws, unique("rawnoproto"))
    finally:
        ws.close()


@pytest.mark.parametrize("offered", ["mqtt", "mqttv3.1, mqtt", "MQTT"])
def test_raw_upgrade_names_mqtt_subprotocol(tsvc, offered):
    ws = RawWs(tsvc.ports.ws, protocols=offered)
    try:
        assert ws.status == 101, ws.status_line
        assert ws.headers.get("sec-websocket-protocol") == "mqtt", ws.headers
        ws_mqtt_connect(ws, unique("rawproto"), level=5)
    finally:
        ws.close()


def test_raw_upgrade_other_subprotocol_refused(tsvc):
    ws = RawWs(tsvc.ports.ws, protocols="wamp, stomp")
    try:
        assert ws.status == 400, ws.status_line
        assert ws.is_closed(5.0)
    finally:
        ws.close()


@pytest.mark.parametrize("port_name,path", [("ws", "/other"), ("ws", "/"), ("ws_custom", "/mqtt")])
def test_raw_upgrade_wrong_path_404(tsvc, port_name, path):
    ws = RawWs(getattr(tsvc.ports, port_name), path=path)
    try:
        assert ws.status == 404, ws.status_line
        assert ws.is_closed(5.0)
    finally:
        ws.close()


@pytest.mark.parametrize("kind", ["ws", "wss"])
@pytest.mark.parametrize("how", ["two-messages", "fragmented-message"])
def test_raw_connect_split_across_frames(tsvc, pki, kind, how):
    ws = RawWs(getattr(tsvc.ports, kind), tls=pki.context() if kind == "wss" else None)
    try:
        assert ws.status == 101
        pkt = connect_packet(unique("rawsplit"))
        a, b = pkt[:5], pkt[5:]
        if how == "two-messages":
            ws.send_frame(0x2, a)
            time.sleep(0.1)
            ws.send_frame(0x2, b)
        else:
            ws.send_frame(0x2, a, fin=False)
            time.sleep(0.1)
            ws.send_frame(0x0, b, fin=True)
        connack = ws.read_mqtt()
        assert connack[:2] == b"\x20\x02" and connack[3] == 0, connack.hex()
    finally:
        ws.close()


def test_raw_connect_and_subscribe_in_one_frame(tsvc):
    ws = RawWs(tsvc.ports.ws)
    try:
        ws.send_mqtt(connect_packet(unique("rawone")) + subscribe_packet(7, "app/demo", 0))
        connack = ws.read_mqtt()
        assert connack[0] == 0x20 and connack[3] == 0, connack.hex()
        suback = ws.read_mqtt()
        assert suback == b"\x90\x03\x00\x07\x00", suback.hex()
        marker = unique("one")
        tsvc.ingest("device1", "temperature", {"marker": marker})
        topic, _, payload = publish_parts(ws.read_mqtt())
        assert topic == "app/demo"
        assert json.loads(payload)["data"] == {"marker": marker}
    finally:
        ws.close()


def test_raw_large_command_over_many_frames(tsvc):
    """A 100 KiB command PUBLISH sent as 100 binary frames of 1 KiB: one MQTT packet spanning
    many WebSocket frames."""
    ws = RawWs(tsvc.ports.ws)
    try:
        ws_mqtt_connect(ws, unique("rawbigcmd"))
        pkt = publish_packet("command/demo/device1/upload", os.urandom(100 * 1024), qos=1,
                             pkid=42)
        ws.sock.sendall(b"".join(ws.frame(0x2, pkt[i:i + 1024])
                                 for i in range(0, len(pkt), 1024)))
        assert ws.read_mqtt() == puback_packet(42)
    finally:
        ws.close()


def test_raw_text_frame_closes_connection(tsvc):
    ws = RawWs(tsvc.ports.ws)
    try:
        ws_mqtt_connect(ws, unique("rawtext"))
        ws.send_frame(0x1, connect_packet("text").hex().encode())
        assert ws.is_closed(5.0), "a text frame must end the connection"
    finally:
        ws.close()
    # the listener keeps serving
    ws2 = RawWs(tsvc.ports.ws)
    try:
        ws_mqtt_connect(ws2, unique("rawafter"))
    finally:
        ws2.close()


class RawTls:
    """MQTT over a raw TLS socket with the same interface as RawWs."""

    def __init__(self, port: int, ctx: ssl.SSLContext, rcvbuf: int):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(WAIT)
        sock.connect(("127.0.0.1", port))
        self.sock = ctx.wrap_socket(sock, server_hostname="localhost")

    def send_mqtt(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_mqtt(self) -> bytes:
        return read_packet(self.sock)

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("kind", [
    "ws",
    "wss",
    "mqtts",
])
def test_slow_reader_gets_each_event_once(tsvc, pki, kind):
    """A subscriber that reads slowly (small receive window, so the service's socket fills up)
    must still see every event exactly once, in order, and stay connected."""
    port = getattr(tsvc.ports, kind)
    if kind == "mqtts":
        conn = RawTls(port, pki.context(), rcvbuf=4096)
        conn.send_mqtt(connect_packet(unique("slow" + kind)))
        assert conn.read_mqtt()[0] == 0x20
    else:
        conn = RawWs(port, tls=pki.context() if kind == "wss" else None, rcvbuf=4096)
        ws_mqtt_connect(conn, unique("slow" + kind))
    try:
        conn.send_mqtt(subscribe_packet(1, "app/demo", 1))
        assert conn.read_mqtt()[0] == 0x90
        # ~8 MiB in structured mode: more than the service's socket send buffer can hold
        blobs = [os.urandom(512 * 1024) for _ in range(12)]
        for b in blobs:
            tsvc.ingest("device2", "slow-" + kind, b, content_type="application/octet-stream")
        time.sleep(1.5)   # let the service fill the socket and hit WouldBlock
        got = []
        conn.sock.settimeout(5.0)
        ended = None
        try:
            while len(got) <= len(blobs):
                pkt = conn.read_mqtt()
                if pkt[0] & 0xF0 != 0x30:
                    continue
                _topic, pkid, payload = publish_parts(pkt)
                got.append((pkid, base64.b64decode(json.loads(payload)["data_base64"])))
                conn.send_mqtt(puback_packet(pkid))
                if len(got) == len(blobs):
                    conn.sock.settimeout(1.0)   # anything more would be a duplicate
        except socket.timeout:
            pass
        except (EOFError, ConnectionResetError, ssl.SSLError) as e:
            ended = e
        index = [blobs.index(d) if d in blobs else "?" for _, d in got]
        assert [d for _, d in got] == blobs, (
            f"{len(got)} PUBLISH for {len(blobs)} events: packet ids {[p for p, _ in got]}, "
            f"events {index}; connection ended: {ended!r}")
        assert ended is None, f"connection ended: {ended!r}"
    finally:
        conn.close()


def test_raw_ping_and_close(tsvc):
    ws = RawWs(tsvc.ports.ws)
    try:
        ws_mqtt_connect(ws, unique("rawping"))
        ws.send_frame(0x9, b"are you there")
        _fin, op, payload = ws.recv_frame()
        assert (op, payload) == (0xA, b"are you there")
        ws.send_frame(0x8, struct.pack(">H", 1000))
        _fin, op, payload = ws.recv_frame()
        assert op == 0x8, f"expected a Close answer, got opcode {op:#x}"
        assert ws.is_closed(5.0)
    finally:
        ws.close()


# --------------------------------------------------------------------------------------------
# 4. Mutual TLS


@pytest.mark.parametrize("kind", ["mtls", "mwss"])
def test_mutual_tls_client_certificate(tsvc, pki, clients, kind):
    port = getattr(tsvc.ports, kind)
    transport = "websockets" if kind == "mwss" else "tcp"
    good = pki.context(client="client")
    c = clients(port, unique("mtls"), transport=transport, tls_context=good)
    subscribe_and_receive(tsvc, c)

    if kind == "mtls":
        no_cert = tls_mqtt_attempt(port, pki.context())
        assert no_cert != "connack", "a client without a certificate must be refused"
        other_ca = tls_mqtt_attempt(port, pki.context(client="other-client"))
        assert other_ca != "connack", "a certificate of another CA must be refused"
        # Both versions refused, in TLS 1.2 too (where the handshake itself fails).
        no_cert12 = tls_mqtt_attempt(port, pki.context(version=ssl.TLSVersion.TLSv1_2))
        assert no_cert12.startswith("failed"), no_cert12
    else:
        with pytest.raises(Exception):
            clients(port, unique("mwssnocert"), transport=transport, tls_context=pki.context())

    # The listener keeps serving certified clients, and the connected one is unaffected.
    assert tls_mqtt_attempt(tsvc.ports.mtls, good) == "connack"
    assert c.client.is_connected()
    c.collector.messages.clear()
    marker = unique("after")
    tsvc.ingest("device1", "temperature", {"marker": marker})
    assert json.loads(c.collector.wait_for(1)[0].payload)["data"] == {"marker": marker}


def test_mqtts_rejects_untrusted_server_for_client(tsvc, pki):
    """Sanity of the PKI: a client trusting another CA refuses the server's certificate."""
    result = tls_mqtt_attempt(tsvc.ports.mqtts, pki.context(ca="other-ca"))
    assert result.startswith("failed") and "CERTIFICATE_VERIFY_FAILED" in result, result


# --------------------------------------------------------------------------------------------
# 5. Certificate reload on SIGHUP


def test_sighup_reloads_certificate(service_factory, pki, clients, tmp_path):
    cert, key = tmp_path / "live.crt", tmp_path / "live.key"
    shutil.copy(pki.crt("server"), cert)
    shutil.copy(pki.key("server"), key)
    port = free_port()
    svc = service_factory(extra=listener("mqtts", port, cert_path=cert, key_path=key))
    ctx = pki.context()
    assert der_serial(peer_cert_der(port, ctx)) == pki.SERVER_SERIAL

    c1 = clients(port, unique("reload1"), tls_context=ctx)
    assert c1.subscribe("app/demo", qos=1) == [1]
    assert der_serial(c1.client.socket().getpeercert(binary_form=True)) == pki.SERVER_SERIAL

    # Rotate to certificate B (same CA, other serial and CN).
    shutil.copy(pki.crt("server-b"), cert)
    shutil.copy(pki.key("server-b"), key)
    svc.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: "TLS certificate reloaded" in svc.log(), 5.0), svc.log()
    der = peer_cert_der(port, ctx)
    assert der_serial(der) == pki.SERVER_B_SERIAL
    assert der == pki.der("server-b")
    assert tls_mqtt_attempt(port, ctx) == "connack"

    # The established connection was not dropped and still gets events.
    marker = unique("rot")
    svc.ingest("device1", "temperature", {"marker": marker})
    assert json.loads(c1.collector.wait_for(1)[0].payload)["data"] == {"marker": marker}
    assert c1.client.is_connected() and not c1.disconnects

    # A key that does not belong to the certificate: refused, B stays.
    shutil.copy(pki.crt("server"), cert)
    shutil.copy(pki.key("server-b"), key)
    svc.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: svc.log().count("TLS reload failed") == 1, 5.0), svc.log()
    assert der_serial(peer_cert_der(port, ctx)) == pki.SERVER_B_SERIAL

    # A broken key file: the reload fails, logged as an error, the current certificate stays.
    key.write_text("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")
    svc.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: svc.log().count("TLS reload failed") == 2, 5.0), svc.log()
    failed_line = next(l for l in svc.log().splitlines() if "TLS reload failed" in l)
    assert "ERROR" in failed_line, failed_line
    assert der_serial(peer_cert_der(port, ctx)) == pki.SERVER_B_SERIAL
    assert tls_mqtt_attempt(port, ctx) == "connack"
    marker2 = unique("rot2")
    svc.ingest("device1", "temperature", {"marker": marker2})
    assert json.loads(c1.collector.wait_for(2)[1].payload)["data"] == {"marker": marker2}
    assert svc.proc.poll() is None


# --------------------------------------------------------------------------------------------
# 6. Connections gauge by protocol


def test_connections_metric_by_protocol(service_factory, pki, clients):
    p = Ports(mqtts=free_port(), ws=free_port(), wss=free_port())
    svc = service_factory(extra=listener("mqtts", p.mqtts, pki) + listener("ws", p.ws)
                          + listener("wss", p.wss, pki))

    def counts():
        text = svc.metrics()
        return tuple(int(metric_value(text, "mqtt_integration_connections", protocol=k))
                     for k in ("mqtt", "mqtts", "ws", "wss"))

    assert counts() == (0, 0, 0, 0)
    ctx = pki.context()
    made = {"mqtts": [], "ws": [], "wss": []}
    for _ in range(2):
        made["mqtts"].append(clients(p.mqtts, unique("m-mqtts"), tls_context=ctx))
    made["ws"].append(clients(p.ws, unique("m-ws"), transport="websockets"))
    for _ in range(3):
        made["wss"].append(clients(p.wss, unique("m-wss"), transport="websockets",
                                   tls_context=ctx))
    plain = clients(svc.mqtt_port, unique("m-mqtt"))
    assert wait_until(lambda: counts() == (1, 2, 1, 3), 5.0), counts()

    made["mqtts"][0].close()
    made["ws"][0].close()
    made["wss"][0].close()
    made["wss"][1].close()
    assert wait_until(lambda: counts() == (1, 1, 0, 1), 5.0), counts()
    plain.close()
    made["mqtts"][1].close()
    made["wss"][2].close()
    assert wait_until(lambda: counts() == (0, 0, 0, 0), 5.0), counts()
