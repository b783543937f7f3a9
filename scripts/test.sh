#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit/property/integration/doc tests, and every
# benchmark run once in test mode (so benches compile and run, without measuring).
# Services that later tests need are installed and started from here, so a fresh clone needs
# nothing but a Rust toolchain. Long runs (benchmarks that print figures, soaks, fuzzing) are
# separate commands: see README.md.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --release -- -D warnings
echo "== PostgreSQL for the storage conformance tests (started here, or reused if running)"
DRIFTWATCH_TEST_PG="$(scripts/pg.sh start)"
export DRIFTWATCH_TEST_PG
echo "== Kafka-protocol broker (tansu, in memory) for the Kafka source tests"
DRIFTWATCH_TEST_KAFKA="$(scripts/kafka.sh start)"
export DRIFTWATCH_TEST_KAFKA
# Each stops only a server this script started.
trap 'scripts/pg.sh stop >/dev/null 2>&1 || true; scripts/kafka.sh stop >/dev/null 2>&1 || true' EXIT
echo "== promtool (Debian's prometheus package) for the metrics test"
if ! command -v promtool >/dev/null 2>&1; then
  (apt-get update -q && apt-get install -y -q --no-install-recommends prometheus) >&2
fi
echo "== cargo test (unit, property, integration, doc)"
cargo test --workspace --release
echo "== benches in test mode"
cargo test --workspace --release --benches
