"""Authentication (spec 2.6, 3, 5): OAuth2 access tokens and API keys, with paho-mqtt.

Tokens are HS256 JWTs made here with the standard library (base64url + hmac) and checked by
the service against `auth.oauth.hs256_secret`; API keys come from the binary's `api-key`
command. Anonymous access is off in every service of this module.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import subprocess
import time

import pytest

from conftest import (DEMO_APPS, WAIT, Client, binary_path, encode_varint, http_request, mqtt,
                      read_packet, unique)

SECRET = "python-test-secret"
ISSUER = "https://sso.example.com/realms/pytest"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_token(user: str, expires_in: int = 600, secret: str = SECRET, **claims) -> str:
    header = {"alg": "HS256", "typ": "JWT"}
    body = {"iss": ISSUER, "exp": int(time.time()) + expires_in, "preferred_username": user}
    body.update(claims)
    signing_input = (b64url(json.dumps(header).encode()) + "." +
                     b64url(json.dumps(body).encode()))
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(signature)


def api_key(user: str) -> tuple[str, str]:
    """(key, hash) from `mqtt-integration api-key USER`."""
    out = subprocess.run([str(binary_path()), "api-key", user], capture_output=True, text=True,
                         check=True, timeout=WAIT)
    key, hashed = out.stdout.splitlines()
    return key, hashed


@pytest.fixture(scope="module")
def keys():
    return {"alice": api_key("alice"), "bob": api_key("bob")}


@pytest.fixture
def svc(service_factory, keys):
    # make_config puts `apps` right after `[auth]`, so [auth.oauth] can lead it.
    apps = f"""
[auth.oauth]
issuer = "{ISSUER}"
hs256_secret = "{SECRET}"

[[user]]
name = "alice"
api_keys = ["{keys['alice'][1]}"]

[[user]]
name = "bob"
api_keys = ["{keys['bob'][1]}"]
{DEMO_APPS}
"""
    return service_factory(allow_anonymous=False, apps=apps)


def connect_password_only(port: int, password: str) -> bytes:
    """An MQTT 5 CONNECT with a password and no user name (paho cannot send one); returns
    the CONNACK packet."""
    def s(b: bytes) -> bytes:
        return len(b).to_bytes(2, "big") + b

    body = (s(b"MQTT") + bytes([5, 0x02 | 0x40]) + (30).to_bytes(2, "big") + b"\x00" +
            s(unique("pw").encode()) + s(password.encode()))
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        sock.sendall(bytes([0x10]) + encode_varint(len(body)) + body)
        return read_packet(sock)


def test_v5_token_as_password(svc):
    connack = connect_password_only(svc.mqtt_port, make_token("alice"))
    assert connack[0] == 0x20 and connack[3] == 0x00, connack
    expired = connect_password_only(svc.mqtt_port, make_token("alice", expires_in=-60))
    assert expired[3] == 0x86, expired
    forged = connect_password_only(svc.mqtt_port, make_token("alice", secret="guess"))
    assert forged[3] == 0x86, forged


def test_v311_token_as_username_receives_events(svc, clients):
    c = clients(svc.mqtt_port, unique("tok3"), protocol=mqtt.MQTTv311,
                username=make_token("alice"))
    # alice owns `private` through the token's preferred_username; no [[user]] entry needed.
    assert c.subscribe("app/private") == [1]
    status, _ = http_request(
        f"{svc.http}/api/v1/apps/private/devices/device1/events/t", method="POST",
        body=b'{"via": "bearer"}',
        headers={"Content-Type": "application/json",
                 "Authorization": f"Bearer {make_token('alice')}"})
    assert status == 202
    [m] = c.collector.wait_for(1)
    assert m.json()["data"] == {"via": "bearer"}


def test_v5_token_as_username(svc, clients):
    c = clients(svc.mqtt_port, unique("tok5"), username=make_token("alice"))
    assert c.subscribe("app/private") == [1]
    bob = clients(svc.mqtt_port, unique("tok5b"), username=make_token("bob"))
    assert bob.subscribe("app/private") == [0x87]


def test_user_and_api_key(svc, clients, keys):
    key = keys["alice"][0]
    for protocol in (mqtt.MQTTv5, mqtt.MQTTv311):
        c = clients(svc.mqtt_port, unique("key"), protocol=protocol, username="alice",
                    password=key)
        assert c.subscribe("app/private") == [1]
    wrong = Client(svc.mqtt_port, unique("wrong"), username="alice", password=keys["bob"][0],
                   wait_connack=False)
    try:
        assert wrong.wait_connack() == 0x86
    finally:
        wrong.close()
    wrong3 = Client(svc.mqtt_port, unique("wrong3"), protocol=mqtt.MQTTv311, username="alice",
                    password="nope", wait_connack=False)
    try:
        # paho 2 reports the v3.1.1 return code 4 as the v5 reason 0x86 (bad user name or
        # password); the raw code is checked in tests/auth.rs.
        assert wrong3.wait_connack() == 0x86
    finally:
        wrong3.close()
    basic = base64.b64encode(f"alice:{key}".encode()).decode()
    status, _ = http_request(
        f"{svc.http}/api/v1/apps/private/devices/device1/events/t", method="POST",
        body=b"{}", headers={"Content-Type": "application/json",
                             "Authorization": f"Basic {basic}"})
    assert status == 202
    assert key not in svc.log()


def test_no_credentials_is_not_authorized(svc):
    c = Client(svc.mqtt_port, unique("anon"), wait_connack=False)
    try:
        assert c.wait_connack() == 0x87
    finally:
        c.close()
    status, body = http_request(f"{svc.http}/api/v1/apps/demo/devices/device1/events/t",
                                method="POST", body=b"{}",
                                headers={"Content-Type": "application/json"})
    assert status == 401, body
