"""Issue #16: the shipped alert rules (dist/prometheus/alerts.yml) and Grafana dashboard
(dist/grafana/mqtt-integration.json) work against a real Prometheus scraping the real binary.

Prometheus (Debian's `prometheus` package: scripts/test installs it) runs on 127.0.0.1 with a
temporary config and TSDB, a 1 s scrape and evaluation interval and the alert rules loaded. After a
little traffic (a durable MQTT subscriber, HTTP ingest, a command), every expression of the
dashboard and of the rules is asked of Prometheus's HTTP API and must return a series. The
expressions are read from the two files (the rules as Prometheus loaded them), not listed here.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest

from conftest import REPO_ROOT, Client, free_port, http_request, unique

ALERTS = REPO_ROOT / "dist" / "prometheus" / "alerts.yml"
DASHBOARD = REPO_ROOT / "dist" / "grafana" / "mqtt-integration.json"
JOB = "mqtt-integration"

# Metric families that a rule may name before the service exports them. Only the disk log's
# fsync histogram (issue #14, being added): once /metrics has it, its rule must return a series
# like every other.
NOT_YET_EXPORTED = {"mqtt_integration_log_fsync_seconds"}

# Grafana's variables, as they expand for this one scrape job.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$instance": ".*",
    "$job": JOB,
}

COMPARISON = re.compile(r"\s*(==|!=|>=|<=|>|<)\s*[-+]?[0-9.eE]+\s*$")
TOP_LEVEL_SET_OPERATOR = re.compile(r"\s+(?:and|or|unless)\s+")


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"`{tool}` not found: install Debian's `prometheus` package (scripts/test does)")
    return path


def operands(expr: str) -> list[str]:
    """The value expressions inside an alert condition: split at `and`/`or`/`unless` outside
    parentheses and brackets, each with its final comparison with a number taken off."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(expr):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0:
            m = TOP_LEVEL_SET_OPERATOR.match(expr, i)
            if m and (i == 0 or expr[i - 1] != " "):
                parts.append(expr[start:i])
                start = m.end()
    parts.append(expr[start:])
    return [COMPARISON.sub("", p).strip() for p in parts]


def dashboard_expressions() -> list[tuple[str, str]]:
    """(panel title, expression) of every target, Grafana variables expanded."""
    board = json.loads(DASHBOARD.read_text())
    found = []
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for name, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(name, value)
            assert "$" not in expr, f"unexpanded variable in {panel['title']}: {expr}"
            found.append((panel["title"], expr))
    return found


class Prometheus:
    def __init__(self, workdir: Path, target: str, rules: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = workdir / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            f"rule_files:\n  - {rules}\n"
            f"scrape_configs:\n  - job_name: {JOB}\n    static_configs:\n"
            f"      - targets: ['{target}']\n"
        )
        self.log_path = workdir / "prometheus.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [need("prometheus"), f"--config.file={config}",
             f"--storage.tsdb.path={workdir / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}",
             f"--web.console.templates={workdir}", f"--web.console.libraries={workdir}"],
            stdout=self._log, stderr=subprocess.STDOUT, cwd=workdir)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def api(self, path: str, **params) -> dict:
        query = urllib.parse.urlencode(params)
        status, body = http_request(f"{self.url}/api/v1/{path}?{query}", timeout=5)
        assert status == 200, f"{path} {params}: {status} {body[:500]!r}"
        answer = json.loads(body)
        assert answer["status"] == "success", answer
        return answer["data"]

    def query(self, expr: str) -> list:
        return self.api("query", query=expr)["result"]

    def wait(self, what: str, pred, timeout: float = 20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"prometheus exited with {self.proc.returncode}:\n{self.log()}")
            try:
                value = pred()
                if value:
                    return value
            except (OSError, AssertionError):
                pass
            time.sleep(0.25)
        pytest.fail(f"prometheus: {what} within {timeout}s:\n{self.log()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def test_promtool_accepts_the_alert_rules():
    out = subprocess.run([need("promtool"), "check", "rules", str(ALERTS)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout, out.stdout


def test_operands_of_alert_conditions():
    assert operands('up{job="x"} == 0') == ['up{job="x"}']
    assert operands("a > 1000 and deriv(a[15m]) > 0") == ["a", "deriv(a[15m])"]
    assert operands('sum by (i) (rate(c{o=~"a|b"}[5m])) > 0') == ['sum by (i) (rate(c{o=~"a|b"}[5m]))']
    assert operands("x / on (i) max by (i) (y) > 0.9") == ["x / on (i) max by (i) (y)"]


def test_dashboard_and_alerts_against_a_real_prometheus(service_factory, tmp_path, monkeypatch):
    # A limit of 3 connections, so that two clients make the "near max_connections" rule true.
    monkeypatch.setenv("MQTT_INTEGRATION__SERVER__MAX_CONNECTIONS", "3")
    svc = service_factory()
    prometheus = Prometheus(tmp_path, f"127.0.0.1:{svc.http_port}", ALERTS)
    subscriber = sender = None
    try:
        # Traffic: a durable subscriber (its group has a lag series), ingest, a command.
        subscriber = Client(svc.mqtt_port, client_id=unique("prom-reader"))
        assert subscriber.subscribe("app/demo", qos=1) == [1]
        sender = Client(svc.mqtt_port, client_id=unique("prom-commander"))
        assert sender.publish("command/demo/device1/reboot", b"{}", qos=1) == 0

        prometheus.wait("the service scraped", lambda: prometheus.query(f'up{{job="{JOB}"}} == 1'))
        for i in range(10):
            svc.ingest("device1", "temp", {"n": i})
            time.sleep(0.1)
        subscriber.collector.wait_for(10)
        # A few more scrapes after the traffic, so that rates have two samples that differ.
        scrapes = prometheus.query(f'count_over_time(up{{job="{JOB}"}}[1m])')
        seen = float(scrapes[0]["value"][1])
        prometheus.wait("three more scrapes", lambda: float(prometheus.query(
            f'count_over_time(up{{job="{JOB}"}}[1m])')[0]["value"][1]) >= seen + 3)

        exported = svc.metrics()
        empty = []
        checked = 0
        for title, expr in dashboard_expressions():
            if not prometheus.query(expr):
                empty.append(f"dashboard panel {title!r}: {expr}")
            checked += 1

        # The rules as Prometheus loaded them from the file: all of them, all healthy.
        def rules():
            groups = prometheus.api("rules")["groups"]
            loaded = [r for g in groups for r in g["rules"]]
            return loaded if loaded and all(r["health"] == "ok" for r in loaded) else None
        loaded = prometheus.wait("every rule evaluated with health ok", rules)
        promtool = subprocess.run([need("promtool"), "check", "rules", str(ALERTS)],
                                  capture_output=True, text=True, timeout=30).stdout
        assert f"SUCCESS: {len(loaded)} rules found" in promtool, (promtool, loaded)
        for rule in loaded:
            for operand in operands(rule["query"]):
                if any(name in operand and name not in exported for name in NOT_YET_EXPORTED):
                    continue
                if not prometheus.query(operand):
                    empty.append(f"alert {rule['name']}: {operand}")
                checked += 1
        assert not empty, "expressions without a series:\n" + "\n".join(empty)
        assert checked >= 25, checked

        # The rules' logic, not only their syntax: 2 of 3 connections is not near the limit,
        # a third is (pending: `for: 5m` keeps it from firing within a test).
        def state(name):
            return next(r for r in prometheus.api("rules")["groups"][0]["rules"]
                        if r["name"] == name)["state"]
        assert state("MqttIntegrationConnectionsNearLimit") == "inactive"
        third = Client(svc.mqtt_port, client_id=unique("prom-third"))
        try:
            prometheus.wait("the connection rule pending",
                            lambda: state("MqttIntegrationConnectionsNearLimit") == "pending")
        finally:
            third.close()
        assert state("MqttIntegrationDown") == "inactive"
        assert state("MqttIntegrationNotReady") == "inactive"
    finally:
        for client in (subscriber, sender):
            if client is not None:
                client.close()
        prometheus.stop()
