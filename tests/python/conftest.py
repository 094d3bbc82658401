"""Shared helpers for the Python integration tests of mqtt-integration.

- `service_factory` starts the real binary with a generated config on free loopback ports,
  waits for `/readyz`, and at teardown stops it with SIGTERM and asserts exit code 0.
  The service's stderr is kept in a file and attached to the report of every failing test.
- `Service.ingest()` posts an event over HTTP; `Service.metrics()` scrapes `/metrics`.
- `Client` wraps a paho-mqtt 2.x client (no automatic reconnect) with blocking helpers for
  CONNACK, SUBACK, UNSUBACK and PUBACK, and a `Collector` for delivered messages.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

REPO_ROOT = Path(__file__).resolve().parents[2]
WAIT = 10.0  # default upper bound for any wait in the tests, seconds


def binary_path() -> Path:
    env = os.environ.get("MQTT_INTEGRATION_BIN")
    path = Path(env) if env else REPO_ROOT / "target" / "debug" / "mqtt-integration"
    if not path.is_file():
        pytest.exit(f"service binary not found at {path}; run `cargo build` first", returncode=2)
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    """Nobody listens on 127.0.0.1:port (TIME_WAIT leftovers do not count: the service binds
    with SO_REUSEADDR, as Rust's std listener does)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


_counter = itertools.count(1)


def unique(prefix: str) -> str:
    """A client id / group name that no other test (or run) uses."""
    return f"{prefix}-{os.getpid()}-{next(_counter)}-{uuid.uuid4().hex[:6]}"


FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

# Applications and devices every test configuration has (shared with the Rust tests).
DEMO_APPS = (FIXTURES / "apps.toml").read_text()


def make_config(mqtt_port: int, http_port: int, allow_anonymous: bool = True,
                apps: str = DEMO_APPS, shutdown_timeout: str = "5s", extra: str = "") -> str:
    return f"""{extra}
[server]
threads = 2
connect_timeout = "2s"
shutdown_timeout = "{shutdown_timeout}"

[[listener]]
kind = "mqtt"
bind = "127.0.0.1:{mqtt_port}"

[http]
bind = "127.0.0.1:{http_port}"

[auth]
allow_anonymous = {"true" if allow_anonymous else "false"}
{apps}
"""


# --------------------------------------------------------------------------------------------
# HTTP helpers


def http_request(url: str, method: str = "GET", body: bytes | None = None,
                 headers: dict | None = None, timeout: float = WAIT) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


# --------------------------------------------------------------------------------------------
# The service under test

_running: list["Service"] = []


class Service:
    def __init__(self, workdir: Path, config: str | None, mqtt_port: int, http_port: int,
                 name: str = "svc", args: list[str] | None = None, shutdown_timeout: float = 5.0):
        self.workdir = workdir
        self.mqtt_port = mqtt_port
        self.http_port = http_port
        self.http = f"http://127.0.0.1:{http_port}"
        self.shutdown_timeout = shutdown_timeout
        self.stderr_path = workdir / f"{name}.stderr"
        self.stdout_path = workdir / f"{name}.stdout"
        cmd = [str(binary_path())]
        if config is not None:
            self.config_path = workdir / f"{name}.toml"
            self.config_path.write_text(config)
            cmd += ["--config", str(self.config_path)]
        cmd += args or []
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "info")
        # The log in memory (fast; the disk log has its own tests in tests/durability.rs).
        env.setdefault("MQTT_INTEGRATION__BACKEND__EMBEDDED__STORAGE", "memory")
        self._stderr = open(self.stderr_path, "wb")
        self._stdout = open(self.stdout_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self._stdout, stderr=self._stderr, env=env,
                                     cwd=workdir)
        self.exit_code: int | None = None
        _running.append(self)
        try:
            self.wait_ready()
        except BaseException:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._close()
            raise

    def log(self) -> str:
        try:
            return re.sub(r"\x1b\[[0-9;]*m", "", self.stderr_path.read_text(errors="replace"))
        except OSError:
            return ""

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"service exited with {self.proc.returncode} before ready:\n{self.log()}")
            try:
                status, _ = http_request(self.http + "/readyz", timeout=1.0)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"service not ready within {timeout}s:\n{self.log()}")

    def terminate(self) -> int:
        """SIGTERM, wait (bounded by the shutdown timeout plus slack), return the exit code."""
        if self.exit_code is not None:
            return self.exit_code
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=self.shutdown_timeout + 3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.exit_code = -9
                self._close()
                return self.exit_code
        self.exit_code = self.proc.returncode
        self._close()
        return self.exit_code

    def _close(self) -> None:
        self._stderr.close()
        self._stdout.close()
        if self in _running:
            _running.remove(self)

    # -- HTTP

    def ingest(self, device: str, channel: str, data: bytes | str | dict | list,
               content_type: str | None = None, app: str = "demo") -> int:
        if isinstance(data, (dict, list)):
            body = json.dumps(data).encode()
            content_type = content_type or "application/json"
        elif isinstance(data, str):
            body = data.encode()
            content_type = content_type or "text/plain"
        else:
            body = data
            content_type = content_type or "application/octet-stream"
        status, resp = http_request(
            f"{self.http}/api/v1/apps/{app}/devices/{device}/events/{channel}",
            method="POST", body=body, headers={"Content-Type": content_type})
        assert status == 202, f"ingest {app}/{device}/{channel}: {status} {resp!r}"
        return status

    def metrics(self) -> str:
        status, body = http_request(self.http + "/metrics")
        assert status == 200
        return body.decode()

    def metric(self, name: str, **labels) -> float:
        """The value of one sample (exact label set match on the given labels; 0 if absent)."""
        return metric_value(self.metrics(), name, **labels)


def parse_metrics(text: str) -> list[tuple[str, dict, float]]:
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)', line)
        if not m:
            continue
        labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        out.append((m.group(1), labels, float(m.group(4))))
    return out


def metric_value(text: str, name: str, **labels) -> float:
    total = 0.0
    for n, l, v in parse_metrics(text):
        if n == name and all(l.get(k) == str(val) for k, val in labels.items()):
            total += v
    return total


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for svc in list(_running):
            rep.sections.append((f"mqtt-integration stderr ({svc.stderr_path})", svc.log()[-20000:]))


class ServiceFactory:
    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.services: list[Service] = []

    def __call__(self, *, allow_anonymous: bool = True, apps: str = DEMO_APPS,
                 config: str | None = None, use_config: bool = True, mqtt_port: int | None = None,
                 http_port: int | None = None, shutdown_timeout: float = 5.0,
                 extra: str = "") -> Service:
        mqtt_port = mqtt_port or free_port()
        http_port = http_port or free_port()
        if use_config and config is None:
            config = make_config(mqtt_port, http_port, allow_anonymous, apps,
                                 shutdown_timeout=f"{int(shutdown_timeout)}s", extra=extra)
        svc = Service(self.workdir, config if use_config else None, mqtt_port, http_port,
                      name=f"svc{len(self.services) + 1}", shutdown_timeout=shutdown_timeout)
        self.services.append(svc)
        return svc

    def stop_all(self) -> None:
        problems = []
        for svc in self.services:
            code = svc.terminate()
            if code != 0:
                problems.append(f"service exited with {code} after SIGTERM:\n{svc.log()[-20000:]}")
        if problems:
            pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def service_factory(tmp_path):
    """Per-test services (isolation): `service_factory(allow_anonymous=False)` etc."""
    factory = ServiceFactory(tmp_path)
    yield factory
    factory.stop_all()


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """One service with the demo config, shared by the tests of a module."""
    factory = ServiceFactory(tmp_path_factory.mktemp("svc"))
    svc = factory()
    yield svc
    factory.stop_all()


# --------------------------------------------------------------------------------------------
# MQTT client helpers


class Message:
    def __init__(self, msg: mqtt.MQTTMessage):
        self.topic = msg.topic
        self.payload = bytes(msg.payload)
        self.qos = msg.qos
        self.dup = bool(msg.dup)
        self.retain = bool(msg.retain)
        self.properties = msg.properties
        self.received_at = time.monotonic()
        self.mid = msg.mid

    def json(self):
        return json.loads(self.payload)

    def prop(self, name, default=None):
        if self.properties is None:
            return default
        return getattr(self.properties, name, default)

    @property
    def user_properties(self) -> dict:
        return dict(self.prop("UserProperty", []) or [])

    @property
    def subscription_ids(self) -> list:
        ids = self.prop("SubscriptionIdentifier", [])
        if ids is None:
            return []
        return sorted(ids if isinstance(ids, list) else [ids])

    def __repr__(self):
        return f"Message({self.topic!r}, {self.payload[:120]!r})"


class Collector:
    """Gathers delivered messages; `wait_for(n)` blocks until at least n arrived."""

    def __init__(self):
        self.messages: list[Message] = []
        self.cond = threading.Condition()

    def add(self, msg: Message) -> None:
        with self.cond:
            self.messages.append(msg)
            self.cond.notify_all()

    def wait_until(self, pred, timeout: float = WAIT) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: pred(self.messages), timeout=timeout)

    def wait_for(self, n: int, timeout: float = WAIT) -> list[Message]:
        ok = self.wait_until(lambda msgs: len(msgs) >= n, timeout)
        msgs = self.snapshot()
        assert ok, f"expected {n} messages within {timeout}s, got {len(msgs)}: {msgs[:10]}"
        return msgs

    def settle(self, quiet: float = 0.5) -> list[Message]:
        """Wait until nothing new arrived for `quiet` seconds; return everything."""
        with self.cond:
            while True:
                before = len(self.messages)
                self.cond.wait(timeout=quiet)
                if len(self.messages) == before:
                    return list(self.messages)

    def snapshot(self) -> list[Message]:
        with self.cond:
            return list(self.messages)

    def __len__(self):
        with self.cond:
            return len(self.messages)


def wait_total(collectors, n: int, timeout: float = WAIT) -> bool:
    """Waits until the collectors together hold at least n messages."""
    deadline = time.monotonic() + timeout
    while sum(len(c) for c in collectors) < n:
        if time.monotonic() > deadline:
            got = sum(len(c) for c in collectors)
            raise AssertionError(f"expected {n} messages in total within {timeout}s, got {got}")
        time.sleep(0.02)
    return True


def reason_value(rc) -> int:
    return rc.value if hasattr(rc, "value") else int(rc)


class Client:
    """A paho-mqtt client with blocking helpers. No automatic reconnect."""

    def __init__(self, port: int, client_id: str = "", protocol=mqtt.MQTTv5,
                 clean: bool = True, connect_properties: Properties | None = None,
                 username: str | None = None, password: str | None = None,
                 wait_connack: bool = True, keepalive: int = 30, manual_ack: bool = False,
                 transport: str = "tcp", ws_path: str = "/mqtt",
                 tls_context: "ssl.SSLContext | None" = None, host: str = "127.0.0.1"):
        """`transport="websockets"` (with `ws_path`) and `tls_context` select MQTT over
        WebSocket and/or TLS; the defaults are plain TCP to 127.0.0.1."""
        self.protocol = protocol
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=protocol, reconnect_on_failure=False,
                                  manual_ack=manual_ack, transport=transport,
                                  clean_session=(clean if protocol != mqtt.MQTTv5 else None))
        if transport == "websockets":
            self.client.ws_set_options(path=ws_path)
        if tls_context is not None:
            self.client.tls_set_context(tls_context)
        self.collector = Collector()
        self.cond = threading.Condition()
        self.connack = None  # (reason code int, flags, properties)
        self.disconnects: list[tuple[int, object]] = []
        self.subacks: dict[int, list[int]] = {}
        self.unsubacks: dict[int, list[int]] = {}
        self.pubacks: dict[int, int] = {}
        c = self.client
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = lambda _c, _u, msg: self.collector.add(Message(msg))
        c.on_subscribe = self._on_subscribe
        c.on_unsubscribe = self._on_unsubscribe
        c.on_publish = self._on_publish
        if username is not None or password is not None:
            c.username_pw_set(username, password)
        kwargs = {}
        if protocol == mqtt.MQTTv5:
            kwargs["clean_start"] = clean
            if connect_properties is not None:
                kwargs["properties"] = connect_properties
        c.connect(host, port, keepalive=keepalive, **kwargs)
        c.loop_start()
        if wait_connack:
            rc = self.wait_connack()
            assert rc == 0, f"CONNACK {rc:#x}"

    # callbacks (paho network thread)

    def _on_connect(self, _c, _u, flags, rc, props):
        with self.cond:
            self.connack = (reason_value(rc), flags, props)
            self.cond.notify_all()

    def _on_disconnect(self, _c, _u, _flags, rc, props):
        with self.cond:
            self.disconnects.append((reason_value(rc), props))
            self.cond.notify_all()

    def _on_subscribe(self, _c, _u, mid, rcs, props):
        with self.cond:
            self.subacks[mid] = [reason_value(r) for r in rcs]
            self.cond.notify_all()

    def _on_unsubscribe(self, _c, _u, mid, rcs, props):
        with self.cond:
            self.unsubacks[mid] = [reason_value(r) for r in rcs]
            self.cond.notify_all()

    def _on_publish(self, _c, _u, mid, rc, props):
        with self.cond:
            self.pubacks[mid] = reason_value(rc)
            self.cond.notify_all()

    # blocking helpers

    def _wait(self, pred, timeout, what):
        with self.cond:
            ok = self.cond.wait_for(pred, timeout=timeout)
        assert ok, f"timed out after {timeout}s waiting for {what}"

    def wait_connack(self, timeout: float = WAIT) -> int:
        self._wait(lambda: self.connack is not None or self.disconnects, timeout, "CONNACK")
        if self.connack is None:
            return self.disconnects[0][0]
        return self.connack[0]

    def wait_disconnect(self, timeout: float = WAIT) -> tuple[int, object]:
        self._wait(lambda: bool(self.disconnects), timeout, "disconnect")
        return self.disconnects[0]

    def subscribe(self, filters, qos: int = 1, sub_id: int | None = None,
                  user_properties: list | None = None, timeout: float = WAIT) -> list[int]:
        """SUBSCRIBE (one or several filters) and return the SUBACK reason codes."""
        if isinstance(filters, str):
            filters = [filters]
        topics = [(f, qos) if isinstance(f, str) else (f[0], f[1]) for f in filters]
        props = None
        if self.protocol == mqtt.MQTTv5:
            topics = [(f, mqtt.SubscribeOptions(qos=q)) for f, q in topics]
            if sub_id is not None or user_properties:
                props = Properties(PacketTypes.SUBSCRIBE)
                if sub_id is not None:
                    props.SubscriptionIdentifier = sub_id
                if user_properties:
                    props.UserProperty = user_properties
        rc, mid = self.client.subscribe(topics, properties=props)
        assert rc == mqtt.MQTT_ERR_SUCCESS, f"subscribe: {rc}"
        self._wait(lambda: mid in self.subacks, timeout, f"SUBACK for {filters}")
        return self.subacks[mid]

    def unsubscribe(self, filters, timeout: float = WAIT) -> list[int]:
        rc, mid = self.client.unsubscribe(filters)
        assert rc == mqtt.MQTT_ERR_SUCCESS, f"unsubscribe: {rc}"
        self._wait(lambda: mid in self.unsubacks, timeout, f"UNSUBACK for {filters}")
        return self.unsubacks[mid]

    def publish(self, topic: str, payload: bytes | str, qos: int = 1,
                properties: Properties | None = None, timeout: float = WAIT) -> int | None:
        """PUBLISH; for QoS 1/2 wait for the acknowledgement and return its reason code."""
        info = self.client.publish(topic, payload, qos=qos, properties=properties)
        if qos == 0:
            return None
        self._wait(lambda: info.mid in self.pubacks or bool(self.disconnects), timeout,
                   f"PUBACK for {topic}")
        return self.pubacks.get(info.mid)

    def ack(self, msg: "Message") -> None:
        """PUBACK a message (clients made with manual_ack=True)."""
        self.client.ack(msg.mid, msg.qos)

    def sync(self, timeout: float = WAIT) -> None:
        """A round trip (UNSUBSCRIBE of a filter never subscribed): afterwards every PUBACK for
        messages already delivered to the collector has been written to the socket."""
        self.unsubscribe("sync/never/subscribed", timeout=timeout)

    def close(self) -> None:
        try:
            if self.client.is_connected():
                self.client.disconnect()
        finally:
            self.client.loop_stop()


@pytest.fixture
def clients():
    """`clients(port, ...)` makes a `Client`; all are closed at the end of the test."""
    made: list[Client] = []

    def make(port: int, *args, **kwargs) -> Client:
        c = Client(port, *args, **kwargs)
        made.append(c)
        return c

    yield make
    for c in made:
        try:
            c.close()
        except Exception:
            pass


def raw_connect(port: int, client_id: str = "", level: int = 4, username: str | None = None,
                timeout: float = WAIT) -> tuple[socket.socket, bytes]:
    """Sends a minimal CONNECT over a raw socket; returns (socket, first packet bytes read)."""
    def s(b: bytes) -> bytes:
        return len(b).to_bytes(2, "big") + b

    flags = 0x02 | (0x80 if username is not None else 0)
    vh = s(b"MQTT") + bytes([level, flags]) + (30).to_bytes(2, "big")
    if level == 5:
        vh += b"\x00"
    payload = s(client_id.encode()) + (s(username.encode()) if username is not None else b"")
    body = vh + payload
    pkt = bytes([0x10]) + encode_varint(len(body)) + body
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.sendall(pkt)
    return sock, read_packet(sock)


def encode_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def read_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def read_packet(sock: socket.socket) -> bytes:
    first = read_exact(sock, 1)
    mult, length = 1, 0
    header = first
    while True:
        b = read_exact(sock, 1)
        header += b
        length += (b[0] & 0x7F) * mult
        if not b[0] & 0x80:
            break
        mult *= 128
    return header + read_exact(sock, length)


def is_closed(sock: socket.socket, timeout: float = WAIT) -> bool:
    """True if the peer closes the connection within `timeout` (reads and drops anything sent)."""
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            data = sock.recv(4096)
            if not data:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False
    return False


# --------------------------------------------------------------------------------------------
# TLS test certificates (generated with the openssl CLI at test time, never committed)

_OPENSSL_CNF = (FIXTURES / "openssl.cnf").read_text()


class Pki:
    """Certificates in `dir`: `<name>.crt` / `<name>.key` (PEM). `ca` signs the server
    certificates `server` (serial 0x1001, CN localhost) and `server-b` (serial 0x2002,
    CN localhost-b); `client-ca` signs `client`; `other-ca` signs `other-client`."""

    SERVER_SERIAL = 0x1001
    SERVER_B_SERIAL = 0x2002

    def __init__(self, dir: Path):
        self.dir = dir
        dir.mkdir(parents=True, exist_ok=True)
        self.cnf = dir / "openssl.cnf"
        self.cnf.write_text(_OPENSSL_CNF)
        self._ca("ca", "mqtt-integration test CA")
        self._ca("client-ca", "mqtt-integration test client CA")
        self._ca("other-ca", "some other CA")
        self._leaf("server", "localhost", "ca", "server", self.SERVER_SERIAL)
        self._leaf("server-b", "localhost-b", "ca", "server", self.SERVER_B_SERIAL)
        self._leaf("client", "client-1", "client-ca", "client", 0x3003)
        self._leaf("other-client", "client-x", "other-ca", "client", 0x4004)

    def _openssl(self, *args: str) -> None:
        r = subprocess.run(["openssl", *args], cwd=self.dir, capture_output=True, timeout=30)
        assert r.returncode == 0, f"openssl {' '.join(args)}: {r.stderr.decode()}"

    def _ca(self, name: str, cn: str) -> None:
        self._openssl("req", "-x509", "-config", str(self.cnf), "-extensions", "ca",
                      "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                      "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2",
                      "-subj", f"/CN={cn}")

    def _leaf(self, name: str, cn: str, ca: str, ext: str, serial: int) -> None:
        self._openssl("req", "-new", "-config", str(self.cnf), "-newkey", "ec",
                      "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                      "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}")
        self._openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt",
                      "-CAkey", f"{ca}.key", "-set_serial", str(serial), "-days", "2",
                      "-extfile", str(self.cnf), "-extensions", ext, "-out", f"{name}.crt")

    def crt(self, name: str) -> Path:
        return self.dir / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.dir / f"{name}.key"

    def der(self, name: str) -> bytes:
        return ssl.PEM_cert_to_DER_cert(self.crt(name).read_text())

    def context(self, client: str | None = None, version: "ssl.TLSVersion | None" = None,
                ca: str = "ca") -> ssl.SSLContext:
        """A client context trusting `ca`; optionally presenting certificate `client` and
        pinned to one TLS version."""
        ctx = ssl.create_default_context(cafile=str(self.crt(ca)))
        if version is not None:
            ctx.minimum_version = version
            ctx.maximum_version = version
        if client is not None:
            ctx.load_cert_chain(str(self.crt(client)), str(self.key(client)))
        return ctx


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> Pki:
    if not shutil.which("openssl"):
        pytest.skip("openssl CLI not installed (scripts/test installs it)")
    return Pki(tmp_path_factory.mktemp("pki"))


def v5_props(packet_type, **values) -> Properties:
    p = Properties(packet_type)
    for k, v in values.items():
        setattr(p, k, v)
    return p


__all__ = [
    "Client", "Collector", "Message", "Service", "WAIT", "free_port", "port_is_free", "unique",
    "http_request", "metric_value", "parse_metrics", "raw_connect", "read_packet", "is_closed",
    "encode_varint", "v5_props", "PacketTypes", "Properties", "mqtt", "make_config", "DEMO_APPS",
    "tempfile", "Pki",
]
