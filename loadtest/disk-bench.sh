#!/usr/bin/env bash
# The embedded log on disk against memory (issue #14's benchmark targets), in one run: for each
# round, memory, disk `fsync = "always"` and disk `fsync = "interval"` one after the other (so
# that the load of a shared machine hits all three alike), each on a fresh service and a fresh
# log directory, the scenarios below; then a table of msg/s and the disk ÷ memory ratios.
#
#   ingest-1p      HTTP batch ingest (500 events of 256 B a request), one producer, one QoS 0
#                  subscriber: events/s produced
#   ingest-4p      the same with 4 producers (group commit: they share fdatasyncs)
#   fanout         1 → 10 QoS 0, ingested while subscribed: msg/s delivered
#   fanout-backlog 1 → 10 QoS 0 drained from a 200k backlog (delivery without ingest)
#   struct-4k      4 KiB binary data in structured mode (data_base64), 1 → 10 from a 50k backlog
#
# Uses the release binaries (`cargo build --release -p mqtt-integration -p loadtest`, or
# SERVICE_BIN=/path and LOADTEST_BIN=/path). Results: target/disk-bench/results.md and *.json.
#   ROUNDS=2 DURATION=8 SCENARIOS="ingest-1p fanout" loadtest/disk-bench.sh
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
. "$ROOT/loadtest/lib.sh"
cd "$ROOT"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
WORK="$TARGET/disk-bench"
SERVICE="${SERVICE_BIN:-$TARGET/release/mqtt-integration}"
LOADTEST="${LOADTEST_BIN:-$TARGET/release/loadtest}"
ROUNDS="${ROUNDS:-2}"
DURATION="${DURATION:-8}"
SCENARIOS="${SCENARIOS:-ingest-1p ingest-4p fanout fanout-backlog struct-4k}"
CONFIGS="${CONFIGS:-memory always interval}"
say() { printf '\ndisk-bench: %s\n' "$*" >&2; }
die() { printf 'disk-bench: error: %s\n' "$*" >&2; exit 1; }
[ -x "$SERVICE" ] && [ -x "$LOADTEST" ] || die "release binaries missing: $SERVICE, $LOADTEST"

SERVER_PID=""
stop_server() {
    stop_pid "$SERVER_PID" 10
    SERVER_PID=""
    rm -rf "$WORK/data"
}
trap 'rc=$?; stop_server; exit $rc' EXIT
trap 'exit 130' INT TERM

rm -rf "$WORK"
mkdir -p "$WORK"

# start CONFIG: memory | always | interval | nocache (interval without the read cache, as the
# disk log read before it had one) | bigcache (interval with a BIGCACHE_MIB (256) MiB read cache), on free
# ports, with an empty log directory.
start() {
    local config=$1 storage=disk fsync=$1 cache="${READ_CACHE:-134217728}"
    [ "$config" = memory ] && { storage=memory; fsync=always; }
    [ "$config" = nocache ] && { fsync=interval; cache=0; }
    [ "$config" = bigcache ] && { fsync=interval; cache=$((${BIGCACHE_MIB:-256} << 20)); }
    pick_ports
    rm -rf "$WORK/data"
    # As loadtest/compare's service: one partition (every event comes from one device).
    cat >"$WORK/service.toml" <<CONF
[server]
max_connections = 10000
[mqtt]
default_receive_maximum = 100
[[listener]]
kind = "mqtt"
bind = "127.0.0.1:$MQTT_PORT"
[http]
bind = "127.0.0.1:$HTTP_PORT"
[backend]
kind = "embedded"
[backend.embedded]
partitions = 1
storage = "$storage"
fsync = "$fsync"
dir = "$WORK/data"
read_cache_bytes = $cache
[auth]
allow_anonymous = true
[[app]]
name = "bench"
members = { anonymous = "manager" }
devices = [ { name = "device1" } ]
CONF
    RUST_LOG="${RUST_LOG:-warn}" "$SERVICE" --config "$WORK/service.toml" >>"$WORK/service.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$HTTP_PORT") 2>/dev/null && (exec 3<>"/dev/tcp/127.0.0.1/$MQTT_PORT") 2>/dev/null && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || die "the service exited at start (see $WORK/service.log)"
        sleep 0.05
    done
    die "the service does not listen after 10 s"
}

COMMON=(--app bench --mqtt-version 311 --payload 256 --duration "$DURATION" --warmup 2)
scenario_args() {
    case "$1" in
    ingest-1p) echo "${COMMON[*]} --subscribers 1 --qos 0" ;;
    ingest-4p) echo "${COMMON[*]} --subscribers 1 --qos 0 --producers 4" ;;
    fanout) echo "${COMMON[*]} --subscribers 10 --qos 0" ;;
    fanout-backlog) echo "${COMMON[*]} --subscribers 10 --qos 0 --backlog --events 200000" ;;
    struct-4k) echo "--app bench --mqtt-version 5 --payload 4096 --data binary --subscribers 10 --qos 0 --mode structured --backlog --events 50000" ;;
    *) die "unknown scenario $1" ;;
    esac
}

for round in $(seq 1 "$ROUNDS"); do
    for scenario in $SCENARIOS; do
        for config in $CONFIGS; do
            say "round $round: $scenario, $config"
            start "$config"
            # shellcheck disable=SC2046
            "$LOADTEST" fanout $(scenario_args "$scenario") --mqtt "127.0.0.1:$MQTT_PORT" \
                --http "127.0.0.1:$HTTP_PORT" --server-pid "$SERVER_PID" --label "$config" \
                --json "$WORK/$scenario-$config-$round.json" >"$WORK/$scenario-$config-$round.txt" 2>&1 ||
                say "failed: see $WORK/$scenario-$config-$round.txt"
            stop_server
        done
    done
done

python3 - "$WORK" "$ROUNDS" "$SCENARIOS" "$CONFIGS" <<'PY' | tee "$WORK/results.md"
import json, os, sys
work, rounds, scenarios, configs = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4].split()
def load(s, c, r):
    try:
        with open(os.path.join(work, f"{s}-{c}-{r}.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
def rate(s, j):
    if j is None:
        return None
    return j["produced_per_s"] if s.startswith("ingest") else j["delivered_per_s"]
print("| scenario | round | " + " | ".join(configs) + " | " + " | ".join(f"{c} ÷ memory" for c in configs if c != "memory") + " | missing/dup |")
print("|---" * (3 + len(configs) + len([c for c in configs if c != "memory"])) + "|")
for s in scenarios:
    for r in range(1, rounds + 1):
        js = {c: load(s, c, r) for c in configs}
        v = {c: rate(s, js[c]) for c in configs}
        cells = [("n/a" if v[c] is None else f"{v[c]:,.0f}") for c in configs]
        m = v.get("memory")
        ratios = [("n/a" if (m in (None, 0) or v[c] is None) else f"{v[c] / m:.2f}×") for c in configs if c != "memory"]
        lost = sum((j or {}).get("missing", 0) for j in js.values())
        dup = sum((j or {}).get("duplicates", 0) for j in js.values())
        print(f"| {s} | {r} | " + " | ".join(cells) + " | " + " | ".join(ratios) + f" | {lost}/{dup} |")
PY
