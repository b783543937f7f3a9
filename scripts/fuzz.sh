#!/usr/bin/env bash
# Fuzzing (not part of scripts/test.sh): runs every cargo-fuzz target in fuzz/ for SECONDS each
# (default 60), one after the other, growing the corpus in fuzz/corpus/<target>/. A crash stops
# the run with the reproducer in fuzz/artifacts/<target>/ (turn it into a test before fixing it;
# see README.md, "Fuzzing").
#
#   scripts/fuzz.sh [SECONDS]        FUZZ_JOBS=N for parallel jobs per target (default 1)
#   scripts/fuzz.sh --cmin           minimise every corpus instead (before committing it)
#
# cargo-fuzz needs nightly compiler flags (-Zsanitizer, sancov); RUSTC_BOOTSTRAP=1 lets the
# stable toolchain accept them. Targets are built without a sanitizer by default: the code under
# test is safe Rust, and ASan halves the rate (FUZZ_SANITIZER=address to turn it on). Debug
# assertions and overflow checks are on.
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked >&2
fi
sanitizer="${FUZZ_SANITIZER:-none}"
targets=$(cargo fuzz list)
if [ "${1:-}" = "--cmin" ]; then
  for t in $targets; do
    echo "== cmin $t"
    nice -n 10 cargo fuzz cmin -s "$sanitizer" "$t" "fuzz/corpus/$t"
  done
  exit 0
fi
seconds="${1:-60}"
extra=()
if [ "${FUZZ_JOBS:-1}" -gt 1 ]; then
  extra=(-jobs="$FUZZ_JOBS" -workers="$FUZZ_JOBS")
fi
for t in $targets; do
  echo "== $t for ${seconds}s"
  mkdir -p "fuzz/corpus/$t"
  nice -n 10 cargo fuzz run -s "$sanitizer" "$t" "fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -print_final_stats=1 "${extra[@]}"
done
