#!/usr/bin/env bash
# The full fault runs (not part of scripts/test.sh, which runs the same tests at a short size):
# 64 series x 4,000 points; SIGKILL of the service mid-HTTP-ingest (twice) and restart; a 15 s
# PostgreSQL outage mid-stream; the broker frozen with SIGSTOP for 30 s; the embedded store's
# quota reached mid-stream, then space freed. Each ends compared with an uninterrupted run
# (points, intervals, score blocks) and prints one "fault ..." line with its figures.
#
#   scripts/faults.sh            PostgreSQL and tansu are started (or reused) like scripts/test.sh does
set -euo pipefail
cd "$(dirname "$0")/.."
stop_on_exit=()
trap 'for s in "${stop_on_exit[@]}"; do "$s" stop >/dev/null 2>&1 || true; done' EXIT
pg_was_up=0
pg_isready -q -h 127.0.0.1 -p "${DRIFTWATCH_PG_PORT:-55432}" >/dev/null 2>&1 && pg_was_up=1
DRIFTWATCH_TEST_PG="$(scripts/pg.sh start)"
export DRIFTWATCH_TEST_PG
((pg_was_up)) || stop_on_exit+=(scripts/pg.sh)
kafka_was_up=0
(exec 5<>"/dev/tcp/127.0.0.1/${DRIFTWATCH_KAFKA_PORT:-59092}") 2>/dev/null && kafka_was_up=1
DRIFTWATCH_TEST_KAFKA="$(scripts/kafka.sh start)"
export DRIFTWATCH_TEST_KAFKA
((kafka_was_up)) || stop_on_exit+=(scripts/kafka.sh)
export DRIFTWATCH_FAULTS=full
# One fault at a time, so each one's timings are its own.
cargo test --release --test faults -- --nocapture --test-threads=1 2>&1 | tee target/faults.log | grep -E '^(fault|test )'
echo "== full output in target/faults.log"
