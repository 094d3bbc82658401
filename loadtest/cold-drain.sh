#!/usr/bin/env bash
# Draining a backlog from the embedded log on disk that is not in the page cache (issue #14):
#   1. a fresh service (disk, `fsync = "interval"`, one partition) takes EVENTS (1,000,000)
#      events of 256 B over the HTTP batch ingest (500 a request);
#   2. it is stopped (SIGTERM) and started again on the same directory: the restart time (the
#      log's own `took_ms` and until it listens) is the issue's "restart with 1M records";
#   3. the segment files' pages are dropped from the page cache — `posix_fadvise(DONTNEED)` on
#      each file (no root needed, and only these files: the page cache of the other programs on a
#      shared machine stays), checked with `fincore` before and after;
#   4. one MQTT 5 subscriber (mosquitto_sub, QoS 0, a new group with `start = earliest`) drains
#      all of them: msg/s from its start to its last message;
#   5. the same again with the files now in the page cache (another new group), for comparison.
# Uses the release binary (SERVICE_BIN=/path to pick another). Prints the figures; leaves nothing
# behind (the log directory is deleted at the end).
# STORAGE=memory: the same ingest and drains in memory, without the restart (the baseline of
# what the subscriber and the delivery path manage when no file is read).
#   EVENTS=200000 loadtest/cold-drain.sh
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
. "$ROOT/loadtest/lib.sh"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
WORK="$TARGET/cold-drain"
SERVICE="${SERVICE_BIN:-$TARGET/release/mqtt-integration}"
EVENTS="${EVENTS:-1000000}"
STORAGE="${STORAGE:-disk}"
say() { printf 'cold-drain: %s\n' "$*" >&2; }
die() { printf 'cold-drain: error: %s\n' "$*" >&2; exit 1; }
[ -x "$SERVICE" ] || die "no release binary at $SERVICE"
command -v mosquitto_sub >/dev/null || die "mosquitto_sub is needed (Debian package mosquitto-clients)"

SERVER_PID=""
stop_server() {
    stop_pid "$SERVER_PID" 30
    SERVER_PID=""
}
trap 'rc=$?; stop_server; rm -rf "$WORK/data"; exit $rc' EXIT
trap 'exit 130' INT TERM

rm -rf "$WORK"
mkdir -p "$WORK"
pick_ports
cat >"$WORK/service.toml" <<CONF
[[listener]]
kind = "mqtt"
bind = "127.0.0.1:$MQTT_PORT"
[http]
bind = "127.0.0.1:$HTTP_PORT"
[backend]
kind = "embedded"
[backend.embedded]
partitions = 1
storage = "$STORAGE"
fsync = "interval"
dir = "$WORK/data"
[auth]
allow_anonymous = true
[[app]]
name = "bench"
members = { anonymous = "manager" }
devices = [ { name = "device1" } ]
CONF

start() {
    local t0
    t0=$(date +%s.%N)
    RUST_LOG=info "$SERVICE" --config "$WORK/service.toml" >>"$WORK/service.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 600); do
        (exec 3<>"/dev/tcp/127.0.0.1/$MQTT_PORT") 2>/dev/null && {
            STARTED=$(python3 -c "print(f'{$(date +%s.%N) - $t0:.2f}')")
            return 0
        }
        kill -0 "$SERVER_PID" 2>/dev/null || die "the service exited at start (see $WORK/service.log)"
        sleep 0.05
    done
    die "the service does not listen after 30 s"
}

drain() {
    local id=$1 t0 t1
    t0=$(date +%s.%N)
    # The client's own CPU time goes to $WORK/client-<id>.time: a client using a whole core
    # is the limit, not the service.
    /usr/bin/time -f '%U user %S sys %e s' -o "$WORK/client-$id.time" mosquitto_sub -V 5 -h 127.0.0.1 -p "$MQTT_PORT" -i "$id" -t app/bench -q 0 -C "$EVENTS" -W 600 \
        -D subscribe user-property start earliest >/dev/null
    t1=$(date +%s.%N)
    python3 -c "t=$t1-$t0; print(f'{$EVENTS} events in {t:.2f} s = {$EVENTS/t:,.0f} msg/s')"
    echo "  mosquitto_sub: $(cat "$WORK/client-$id.time"); service CPU so far: $(ps -o cputime= -p "$SERVER_PID")"
}

start
say "ingesting $EVENTS events of 256 B"
python3 - "$HTTP_PORT" "$EVENTS" <<'PY'
import http.client, sys, time
port, total = int(sys.argv[1]), int(sys.argv[2])
conn = http.client.HTTPConnection("127.0.0.1", port)
pad = "x" * 220
t0 = time.time()
sent = 0
while sent < total:
    n = min(500, total - sent)
    body = "[" + ",".join(
        '{"device":"device1","subject":"load","datacontenttype":"application/json","data":{"seq":%d,"p":"%s"}}'
        % (sent + i, pad) for i in range(n)) + "]"
    conn.request("POST", "/api/v1/apps/bench/events", body, {"Content-Type": "application/cloudevents-batch+json"})
    r = conn.getresponse()
    r.read()
    if r.status != 202:
        sys.exit(f"ingest answered {r.status}")
    sent += n
print(f"cold-drain: ingested {sent} in {time.time() - t0:.1f} s", file=sys.stderr)
PY
if [ "$STORAGE" = memory ]; then
    say "memory: $(drain first)"
    say "memory: $(drain second)"
    exit 0
fi
stop_server
say "log on disk: $(du -sh "$WORK/data" | cut -f1)"
start
OPENED=$(grep -o '"took_ms":[0-9]*' "$WORK/service.log" | tail -1 | cut -d: -f2 || true)
[ -n "$OPENED" ] || OPENED=$(grep 'embedded log opened' "$WORK/service.log" | tail -1 | grep -o 'took_ms=[0-9]*' | cut -d= -f2 || true)
say "restart: log opened in ${OPENED:-?} ms, listening after $STARTED s"

cached() { fincore -b -n -o RES "$WORK"/data/bench/0/*.log | awk '{s+=$1} END {print s+0}'; }
say "segment bytes in the page cache before: $(cached)"
python3 - "$WORK/data" <<'PY'
import os, sys
for root, _, files in os.walk(sys.argv[1]):
    for f in files:
        fd = os.open(os.path.join(root, f), os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
PY
COLD=$(cached)
say "segment bytes in the page cache after posix_fadvise(DONTNEED): $COLD"

say "cold drain: $(drain cold)"
say "segment bytes in the page cache after the cold drain: $(cached)"
say "warm drain: $(drain warm)"
stop_server
