#!/usr/bin/env bash
# Runs every fuzz target briefly under libFuzzer, as CI does: each seeded from its committed
# corpus (the .zst inputs decompressed), with debug assertions and overflow checks on (-a),
# a fixed seed and a fixed number of executions, so that a run is the same each time (a
# crash it finds is a bug, never a fluke). The campaign itself is longer: README, Fuzzing.
#
# Usage: scripts/fuzz-brief.sh [RUNS]     (executions per target past its corpus; default 3000)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/fuzz-lib.sh
runs=${1:-3000}
if ! command -v cargo-fuzz >/dev/null; then
  cargo install cargo-fuzz --locked --quiet
fi
# cargo-fuzz asks for nightly features (the sanitizer); a stable toolchain allows them so.
export RUSTC_BOOTSTRAP=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo fuzz build -a --fuzz-dir fuzz
for dir in fuzz/corpus/*/; do
  target=$(basename "$dir")
  seeds="$work/$target"
  fuzz_seed "$target" "$seeds"
  fuzz_limits "$target"
  start=$(date +%s)
  total=$(( $(ls "$seeds" | wc -l) + runs ))
  cargo fuzz run -a --fuzz-dir fuzz "$target" "$seeds" -- \
    -runs="$total" -seed=1 -max_len="$max" -timeout=20 -rss_limit_mb=1024 \
    -print_final_stats=1 >"$work/$target.log" 2>&1 || {
      tail -40 "$work/$target.log"
      echo "fuzz-brief: $target failed (its log above)" >&2
      exit 1
    }
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/$target.log" | grep -o '[0-9]*$' || echo "?")
  echo "fuzz-brief: $target: $execs executions in $(( $(date +%s) - start )) s, no crash"
done
