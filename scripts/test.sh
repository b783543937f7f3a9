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
echo "== aarch64: the pure crates (where the SIMD code lives) cross-checked for ARM servers"
# Libraries only, and only the pure crates: the service's C dependencies (librdkafka, SQLite,
# ...) and criterion's in every test target (alloca) need a C cross compiler, which this does
# not install. Type-checking the engine is what proves the x86-only kernels are cfg'd out and
# the portable level compiles. Skipped with a message when the target cannot be installed
# (offline, or a toolchain without rustup).
aarch64=aarch64-unknown-linux-gnu
if command -v rustup >/dev/null 2>&1 \
  && { rustup target list --installed 2>/dev/null | grep -qx "$aarch64" \
    || timeout 300 rustup target add "$aarch64" >/dev/null 2>&1; }; then
  cargo clippy -p driftwatch-icid -p driftwatch-leiad -p driftwatch-eval --target "$aarch64" \
    --features driftwatch-icid/serde,driftwatch-icid/parallel -- -D warnings
else
  echo "   SKIPPED: the Rust standard library for $aarch64 is not installed and could not be" \
    "downloaded (offline?); to run this check: rustup target add $aarch64"
fi
echo "== layers of src/ (ARCHITECTURE.md, \"Layers\"): no upward path, no import circle"
python3 scripts/layers.py
# Servers already running are reused and left running; servers started here are stopped at exit.
stop_on_exit=()
trap 'for s in "${stop_on_exit[@]}"; do "$s" stop >/dev/null 2>&1 || true; done' EXIT
echo "== PostgreSQL for the storage conformance tests (started here, or reused if running)"
pg_was_up=0
pg_isready -q -h 127.0.0.1 -p "${DRIFTWATCH_PG_PORT:-55432}" >/dev/null 2>&1 && pg_was_up=1
DRIFTWATCH_TEST_PG="$(scripts/pg.sh start)"
export DRIFTWATCH_TEST_PG
((pg_was_up)) || stop_on_exit+=(scripts/pg.sh)
echo "== Kafka-protocol broker (tansu, in memory) for the Kafka source tests"
kafka_was_up=0
(exec 5<>"/dev/tcp/127.0.0.1/${DRIFTWATCH_KAFKA_PORT:-59092}") 2>/dev/null && kafka_was_up=1
DRIFTWATCH_TEST_KAFKA="$(scripts/kafka.sh start)"
export DRIFTWATCH_TEST_KAFKA
((kafka_was_up)) || stop_on_exit+=(scripts/kafka.sh)
echo "== promtool (Debian's prometheus package) for the metrics test"
if ! command -v promtool >/dev/null 2>&1; then
  (apt-get update -q && apt-get install -y -q --no-install-recommends prometheus) >&2
fi
echo "== Chromium (Debian's package) and playwright-core for the browser test of the web page"
if ! command -v chromium >/dev/null 2>&1; then
  (apt-get update -q && apt-get install -y -q --no-install-recommends chromium) >&2
fi
if [ ! -d tests/browser/node_modules/playwright-core ]; then
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error) >&2
fi
echo "== cargo test (unit, property, integration, doc)"
cargo test --workspace --release
echo "== benches in test mode"
cargo test --workspace --release --benches
