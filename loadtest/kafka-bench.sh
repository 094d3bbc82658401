#!/usr/bin/env bash
# Kafka benchmark, end to end from a clean checkout:
#   a single-node broker (scripts/kafka) in target/kafka-bench, the service (release build,
#   backend.kind = "kafka", app `bench`), and two runs of `loadtest kafka`:
#     (a) max throughput: 200k records × 256 B, QoS 0, 1 subscriber, binary mode, MQTT 5
#     (a') the same, but phase B drains a backlog (produced while the subscriber was away), as
#         the bare consumer does: the like-for-like throughput comparison
#     (b) latency: 10,000 records/s for 10 s, QoS 1, 1 subscriber, structured mode, MQTT 5, and
#         a bare consumer reading the same records live (the latency floor of Kafka itself)
#     (c) the cost of one subscription (loadtest/subscription_cost.py): the service's threads,
#         RSS and open files before and after 1,000 ephemeral readers (empty client ids) and
#         50 durable groups (distinct client ids) subscribe
#   Everything it started is stopped on exit (also on failure or Ctrl-C); the broker's data is
#   deleted. Logs and the results stay in target/kafka-bench/.
#
#   loadtest/kafka-bench.sh             the whole thing (about 3-5 minutes on 2 cores)
#   SKIP_BUILD=1 loadtest/kafka-bench.sh   use the release binaries already built
#   EVENTS=50000 loadtest/kafka-bench.sh   a smaller run (a)
#   ONLY=backlog REPEAT=3 loadtest/kafka-bench.sh   only run (a'), three times (each run is
#                                        its own bare-vs-service comparison)
#   ONLY=subscriptions                  only (c): the cost of one subscription
#   SERVICE_BIN=/path/to/mqtt-integration ...   another build of the service (before/after)
#   SERVICE_PROPERTIES='"fetch.queue.backoff.ms" = "1"' ...   librdkafka settings for the service
#                                        (backend.kafka.properties, TOML inline-table entries)
#   PERF=1 ...                          also `perf record -g` the service during the (a') runs
#                                        (target/kafka-bench/perf-N.data); PERF=all: the
#                                        whole machine (broker, rig and service); PERF=dwarf:
#                                        the service with DWARF call graphs; PERF=sched: the
#                                        scheduler events (`perf sched timehist -i ...`)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
. "$ROOT/loadtest/lib.sh"
cd "$ROOT"
WORK="$ROOT/target/kafka-bench"
EVENTS="${EVENTS:-200000}"
ONLY="${ONLY:-}"
REPEAT="${REPEAT:-1}"
case "$ONLY" in ""|backlog|subscriptions) ;; *) echo "kafka-bench: ONLY must be empty, backlog or subscriptions" >&2; exit 2 ;; esac
say() { printf 'kafka-bench: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

SERVICE_PID=""
cleanup() {
    local rc=$?
    if [ -n "$SERVICE_PID" ] && kill -0 "$SERVICE_PID" 2>/dev/null; then
        say "stopping the service ($SERVICE_PID)"
        stop_pid "$SERVICE_PID" 15
    fi
    if [ -f "$WORK/broker/kafka.pid" ]; then
        scripts/kafka stop --dir "$WORK/broker" || scripts/kafka stop --dir "$WORK/broker" --kill || true
    fi
    rm -rf "$WORK/broker/data"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ -f "$WORK/broker/kafka.pid" ] && scripts/kafka stop --dir "$WORK/broker" --kill || true
rm -rf "$WORK"
mkdir -p "$WORK"

scripts/kafka fetch
if [ -z "${SKIP_BUILD:-}" ]; then
    say "building (release)"
    scripts/build-deps
    cargo build --release -p loadtest -p mqtt-integration
fi
SERVICE="${SERVICE_BIN:-$ROOT/target/release/mqtt-integration}"
LOADTEST="$ROOT/target/release/loadtest"
[ -x "$SERVICE" ] && [ -x "$LOADTEST" ] || die "release binaries missing (run without SKIP_BUILD)"

BOOTSTRAP="$(scripts/kafka start --dir "$WORK/broker" | sed -n 's/^bootstrap=//p')"
[ -n "$BOOTSTRAP" ] || die "the broker did not print its bootstrap address"
pick_ports

cat >"$WORK/service.toml" <<EOF
[[listener]]
kind = "mqtt"
bind = "127.0.0.1:$MQTT_PORT"

[http]
bind = "127.0.0.1:$HTTP_PORT"

[backend]
kind = "kafka"

[backend.kafka]
bootstrap_servers = "$BOOTSTRAP"
create_topics = true
properties = { ${SERVICE_PROPERTIES:-} }

[auth]
allow_anonymous = true

[[app]]
name = "bench"
members = { anonymous = "manager" }
devices = [ { name = "device1" } ]
EOF
"$SERVICE" check-config "$WORK/service.toml" >/dev/null
say "starting the service: MQTT 127.0.0.1:$MQTT_PORT, HTTP 127.0.0.1:$HTTP_PORT, Kafka $BOOTSTRAP"
RUST_LOG="${RUST_LOG:-info}" "$SERVICE" --config "$WORK/service.toml" >"$WORK/service.log" 2>&1 &
SERVICE_PID=$!
for _ in $(seq 1 300); do
    kill -0 "$SERVICE_PID" 2>/dev/null || { tail -20 "$WORK/service.log" >&2; die "the service exited"; }
    curl -fs "http://127.0.0.1:$HTTP_PORT/readyz" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fs "http://127.0.0.1:$HTTP_PORT/readyz" >/dev/null || die "the service is not ready after 30 s"

COMMON=(kafka --bootstrap "$BOOTSTRAP" --mqtt "127.0.0.1:$MQTT_PORT" --app bench --payload 256
        --subscribers 1 --mqtt-version 5 --timeout 60)
if [ -z "$ONLY" ]; then
    say "run (a): max throughput, $EVENTS records, QoS 0, binary mode"
    "$LOADTEST" "${COMMON[@]}" --events "$EVENTS" --qos 0 --mode binary | tee "$WORK/a.txt"
fi
: >"$WORK/a2.txt"
[ "$ONLY" = subscriptions ] && REPEAT=0
for i in $(seq 1 "$REPEAT"); do
    say "run (a') $i/$REPEAT: the same, phase B reading a backlog"
    PERF_PID=""
    if [ -n "${PERF:-}" ]; then
        case "$PERF" in
            all) target=(-g -a) ;;
            dwarf) target=(--call-graph dwarf,16384 -F 999 -p "$SERVICE_PID") ;;
            sched) target=(-a -e sched:sched_switch -e sched:sched_wakeup -e sched:sched_wakeup_new -e sched:sched_migrate_task) ;;
            *) target=(-g -p "$SERVICE_PID") ;;
        esac
        perf record -q "${target[@]}" -o "$WORK/perf-$i.data" >/dev/null 2>&1 &
        PERF_PID=$!
    fi
    "$LOADTEST" "${COMMON[@]}" --events "$EVENTS" --qos 0 --mode binary --backlog | tee -a "$WORK/a2.txt"
    if [ -n "$PERF_PID" ]; then kill -INT "$PERF_PID"; wait "$PERF_PID" || true; fi
done
if [ -z "$ONLY" ]; then
    say "run (b): latency at 10,000 records/s for 10 s, QoS 1, structured mode"
    "$LOADTEST" "${COMMON[@]}" --events 100000 --rate 10000 --qos 1 --mode structured --linger-ms 1 --bare-live \
        | tee "$WORK/b.txt"
fi

: >"$WORK/c.txt"
if [ -z "$ONLY" ] || [ "$ONLY" = subscriptions ]; then
    say "run (c): the cost of one subscription"
    for ids in "" durable-; do
        n=1000; [ -n "$ids" ] && n=50
        python3 loadtest/subscription_cost.py --mqtt "127.0.0.1:$MQTT_PORT" --app bench \
            --pid "$SERVICE_PID" --clients "$n" --client-ids "$ids" | tee -a "$WORK/c.txt"
    done
fi

{
    echo "date:    $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "commit:  $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (modified)')${SERVICE_BIN:+, service $SERVICE_BIN}"
    echo "machine: $(nproc) cores, $(uname -sr)"
    echo
    if [ -z "$ONLY" ]; then
        echo "(a) max throughput, QoS 0, 1 subscriber, binary, $EVENTS × 256 B"
        grep -v '^{' "$WORK/a.txt"
        echo
    fi
    if [ "$ONLY" != subscriptions ]; then
        echo "(a') the same, phase B reading a backlog (--backlog), $REPEAT run(s)"
        grep -v '^{' "$WORK/a2.txt"
        echo
    fi
    if [ -z "$ONLY" ]; then
        echo "(b) latency, --rate 10000 for 10 s, QoS 1, 1 subscriber, structured"
        grep -v '^{' "$WORK/b.txt"
        echo
    fi
    if [ -s "$WORK/c.txt" ]; then
        echo "(c) the cost of one subscription (threads, RSS, open files of the service)"
        cat "$WORK/c.txt"
        echo
    fi
    if [ -z "$ONLY" ]; then
        grep '^{' "$WORK/a.txt"
    fi
    grep '^{' "$WORK/a2.txt" || true
    [ -n "$ONLY" ] || grep '^{' "$WORK/b.txt"
} >"$WORK/results.txt"
echo
echo "==================== results (target/kafka-bench/results.txt) ===================="
cat "$WORK/results.txt"
