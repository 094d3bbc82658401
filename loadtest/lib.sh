# Shared by the benchmark scripts (compare, kafka-bench.sh, disk-bench.sh, cold-drain.sh), which
# source it: free loopback ports, and stopping a server they started.

# A free TCP port on 127.0.0.1 (bound and released).
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Sets MQTT_PORT and HTTP_PORT to two different free ports.
pick_ports() {
    MQTT_PORT="$(free_port)"
    HTTP_PORT="$(free_port)"
    while [ "$HTTP_PORT" = "$MQTT_PORT" ]; do HTTP_PORT="$(free_port)"; done
}

# stop_pid PID SECONDS: SIGTERM, up to SECONDS for a graceful exit (commits, fsyncs), then
# SIGKILL; reaps it. Nothing to do when PID is empty or gone.
stop_pid() {
    local pid=$1 tenths=$(($2 * 10))
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 "$tenths"); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
}
