#!/usr/bin/env python3
"""The cost of one subscription in a running service: threads, RSS and open files of the
service process before and after N MQTT 3.1.1 clients subscribe to `app/<app>`, per
subscription.

  subscription_cost.py --mqtt 127.0.0.1:1883 --app bench --pid 1234 --clients 1000
  subscription_cost.py ... --client-ids durable-   (client ids durable-0, durable-1, …: one
                                                    durable consumer group each)

Without --client-ids the client ids are empty: ephemeral readers. The clients subscribe at QoS 0
and read nothing; they disconnect when the script ends. Progress goes to stderr, the result is
one line on stdout. Only plain sockets (no dependencies), so it runs wherever the service does.
"""

import argparse
import os
import socket
import struct
import sys
import time


def mqtt_string(b: bytes) -> bytes:
    return struct.pack(">H", len(b)) + b


def packet(first: int, body: bytes) -> bytes:
    out, n = bytes([first]), len(body)
    while True:
        byte, n = n & 0x7F, n >> 7
        out += bytes([byte | (0x80 if n else 0)])
        if not n:
            return out + body


def read_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("the service closed the connection")
        buf += chunk
    return buf


def read_packet(s: socket.socket) -> tuple[int, bytes]:
    first = read_exact(s, 1)[0]
    length, shift = 0, 0
    while True:
        b = read_exact(s, 1)[0]
        length |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            break
    return first, read_exact(s, length)


def usage(pid: int) -> tuple[int, int, int]:
    """(threads, RSS in KiB, open files) of the process."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    files = len(os.listdir(f"/proc/{pid}/fd"))
    return int(fields["Threads"]), int(fields["VmRSS"].split()[0]), files


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mqtt", required=True, help="HOST:PORT of the service's MQTT listener")
    p.add_argument("--app", required=True)
    p.add_argument("--pid", type=int, required=True, help="the service's process id")
    p.add_argument("--clients", type=int, default=100)
    p.add_argument("--client-ids", default="", help="client id prefix (default: empty ids)")
    p.add_argument("--settle", type=float, default=3.0, help="seconds to wait before measuring")
    args = p.parse_args()
    host, _, port = args.mqtt.rpartition(":")

    # Clients of an earlier run may still be going away (their consumers retired): start from
    # a steady state.
    before, deadline = usage(args.pid), time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(1)
        now = usage(args.pid)
        if now[0] == before[0] and now[2] == before[2]:
            break
        print(f"subscription_cost: waiting for the service to settle ({now[0]} threads, "
              f"{now[2]} open files)", file=sys.stderr)
        before = now
    started = time.monotonic()
    clients = []
    for i in range(args.clients):
        client_id = f"{args.client_ids}{i}".encode() if args.client_ids else b""
        s = socket.create_connection((host, int(port)), timeout=60)
        s.sendall(packet(0x10, mqtt_string(b"MQTT") + bytes([4, 2]) + struct.pack(">H", 0)
                         + mqtt_string(client_id)))
        first, body = read_packet(s)
        if first != 0x20 or body[1] != 0:
            print(f"subscription_cost: client {i}: CONNECT refused ({first:#x} {body!r})",
                  file=sys.stderr)
            return 1
        s.sendall(packet(0x82, struct.pack(">H", 1) + mqtt_string(f"app/{args.app}".encode())
                         + b"\x00"))
        clients.append(s)
        if (i + 1) % 500 == 0:
            print(f"subscription_cost: {i + 1}/{args.clients} connected", file=sys.stderr)
    for i, s in enumerate(clients):
        first, body = read_packet(s)
        if first != 0x90 or body[-1] == 0x80:
            print(f"subscription_cost: client {i}: SUBSCRIBE refused ({body!r})", file=sys.stderr)
            return 1
    took = time.monotonic() - started
    time.sleep(args.settle)
    after = usage(args.pid)
    n = args.clients
    kind = f"client ids {args.client_ids}0…" if args.client_ids else "empty client ids"
    print(f"{n} subscriptions ({kind}) in {took:.1f} s: "
          f"threads {before[0]} -> {after[0]} ({(after[0] - before[0]) / n:+.2f} each), "
          f"RSS {before[1]} -> {after[1]} KiB ({(after[1] - before[1]) / n:+.0f} KiB each), "
          f"open files {before[2]} -> {after[2]} ({(after[2] - before[2]) / n:+.2f} each, "
          f"the MQTT socket included)")
    for s in clients:
        s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
