"""The Debian mosquitto clients against the service, and the README quick start as written."""

import json
import re
import shlex
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import REPO_ROOT, Service, http_request, port_is_free, unique

pytestmark = pytest.mark.skipif(
    not (shutil.which("mosquitto_sub") and shutil.which("mosquitto_pub")),
    reason="mosquitto-clients not installed (scripts/test installs them)")


class LineReader:
    """Reads a subprocess's stdout lines in a thread; `wait_line(pred)` with a timeout."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.lines: list[str] = []
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        for raw in self.proc.stdout:
            with self.cond:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_line(self, pred, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines:
                    if pred(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no matching line within {timeout}s: {self.lines}")
                self.cond.wait(left)


def start_sub(args: list[str]) -> tuple[subprocess.Popen, LineReader]:
    # -d lines are not flushed when stdout is a pipe: line-buffer them
    if shutil.which("stdbuf"):
        args = ["stdbuf", "-oL"] + args
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return proc, LineReader(proc)


def finish(proc: subprocess.Popen, timeout: float = 10.0) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError("subprocess did not finish in time")


def test_mosquitto_sub_v311(service):
    proc, out = start_sub(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(service.mqtt_port),
                           "-V", "311", "-i", unique("msub3"), "-q", "1", "-t", "app/demo",
                           "-C", "1", "-W", "15", "-d"])
    try:
        out.wait_line(lambda l: "received SUBACK" in l)
        service.ingest("device1", "temperature", {"temp": 21.5})
        assert finish(proc) == 0
        line = out.wait_line(lambda l: l.startswith("{"))
        ce = json.loads(line)
        assert ce["specversion"] == "1.0"
        assert ce["source"] == "drogue://demo/device1"
        assert ce["subject"] == "temperature"
        assert ce["data"] == {"temp": 21.5}
    finally:
        if proc.poll() is None:
            proc.kill()


def test_mosquitto_sub_v5_json_format(service):
    proc, out = start_sub(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(service.mqtt_port),
                           "-V", "5", "-i", unique("msub5"), "-q", "1", "-t", "app/demo",
                           "-C", "1", "-W", "15", "-F", "%j", "-d"])
    try:
        out.wait_line(lambda l: "received SUBACK" in l)
        body = json.dumps({"temp": 22}).encode()
        status, _ = http_request(
            f"{service.http}/api/v1/apps/demo/devices/device2/events/temperature",
            method="POST", body=body, headers={"Content-Type": "application/json"})
        assert status == 202
        assert finish(proc) == 0
        line = out.wait_line(lambda l: l.startswith("{"))
        j = json.loads(line)
        assert j["topic"] == "app/demo"
        assert j["qos"] == 1
        assert j["retain"] == 0
        assert j["properties"]["content-type"] == "application/cloudevents+json; charset=utf-8"
        assert j["properties"]["payload-format-indicator"] in (1, True)
        payload = j["payload"]
        ce = json.loads(payload) if isinstance(payload, str) else payload
        assert ce["type"] == "io.drogue.event.v1"
        assert ce["device"] == "device2"
        assert ce["data"] == {"temp": 22}
    finally:
        if proc.poll() is None:
            proc.kill()


def run_pub(service, *args, timeout=10):
    return subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(service.mqtt_port),
                           "-i", unique("mpub"), *args],
                          capture_output=True, timeout=timeout)


def test_mosquitto_pub_commands(service_factory):
    service = service_factory()
    ok = run_pub(service, "-V", "5", "-q", "1", "-t", "command/demo/device1/set", "-m", '{"v":1}')
    assert ok.returncode == 0, ok.stderr
    assert ok.stderr == b""

    refused = run_pub(service, "-V", "5", "-q", "1", "-t", "command/demo/off/set",
                      "-m", '{"v":1}')
    # mosquitto_pub reports the PUBACK reason code as a warning
    assert b"Not authorized" in refused.stderr, (refused.returncode, refused.stderr)

    refused3 = run_pub(service, "-V", "311", "-q", "1", "-t", "command/demo/off/set",
                       "-m", '{"v":1}')
    assert refused3.returncode != 0, "v3.1.1: the connection is closed"

    accepted = service.metric("mqtt_integration_commands_total", outcome="accepted")
    unauthorized = service.metric("mqtt_integration_commands_total", outcome="unauthorized")
    assert (accepted, unauthorized) == (1, 2)


# ------------------------------------------------------------------------------------------------
# README quick start


def readme_blocks() -> list[str]:
    text = (REPO_ROOT / "README.md").read_text()
    return re.findall(r"```[a-z]*\n(.*?)```", text, re.S)


def readme_command(prefix: str) -> str:
    for block in readme_blocks():
        cmd = block.replace("\\\n", " ").strip()
        if cmd.startswith(prefix):
            return cmd
    raise AssertionError(f"README has no `{prefix}` command")


def test_readme_quick_start(tmp_path):
    if not (port_is_free(1883) and port_is_free(8081) and port_is_free(8080)):
        pytest.skip("127.0.0.1:1883, :8080 or :8081 is in use; the README quick start needs them")
    if not shutil.which("curl"):
        pytest.skip("curl not installed")
    try:
        svc = Service(tmp_path, None, 1883, 8081, name="readme")
    except AssertionError as e:
        if "in use" in str(e).lower():
            pytest.skip(f"default ports taken meanwhile: {e}")
        raise
    sub = None
    try:
        sub_cmd = readme_command("mosquitto_sub")
        curl_cmd = readme_command("curl")
        pub_cmd = readme_command("mosquitto_pub")
        expected_block = next(b for b in readme_blocks() if b.startswith("app/demo "))

        sub = subprocess.Popen(shlex.split(sub_cmd), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
        out = LineReader(sub)
        deadline = time.monotonic() + 10
        while svc.metric("mqtt_integration_subscriptions") < 1:
            assert time.monotonic() < deadline, "mosquitto_sub did not subscribe"
            time.sleep(0.05)

        curl = subprocess.run(shlex.split(curl_cmd), capture_output=True, timeout=10)
        assert curl.returncode == 0, curl.stderr
        assert curl.stdout.decode().splitlines()[0].strip() == "HTTP/1.1 202 Accepted"

        line = out.wait_line(lambda l: l.startswith("app/demo "))
        topic, payload = line.split(" ", 1)
        got = json.loads(payload)
        exp = json.loads(expected_block.strip().split(" ", 1)[1])
        assert set(got) == set(exp), "the attributes README shows"
        for k, v in exp.items():
            if v != "…":
                assert got[k] == v, k
        assert got["data"] == {"temp": 21.5}

        pub = subprocess.run(shlex.split(pub_cmd), capture_output=True, timeout=10)
        assert pub.returncode == 0, pub.stderr
        assert svc.metric("mqtt_integration_commands_total", outcome="accepted") == 1
    finally:
        if sub is not None:
            sub.terminate()
            sub.wait(timeout=5)
        code = svc.terminate()
        assert code == 0, svc.log()
