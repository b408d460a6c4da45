#!/usr/bin/env bash
# A fuzzing campaign: every target in turn for SECONDS, one process at a time, seeded from
# its committed corpus (the .zst inputs decompressed), with debug assertions and overflow
# checks on (-a). Prints one line per target: the process's CPU seconds, libFuzzer's
# executions, and whether it crashed (the crashing input is left in fuzz/artifacts/). New
# inputs go to a scratch corpus under WORK; `cargo fuzz cmin` them into fuzz/corpus/ when
# they are worth keeping (README, Fuzzing).
#
# Usage: scripts/fuzz-campaign.sh SECONDS [WORK] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/fuzz-lib.sh
seconds=${1:?usage: fuzz-campaign.sh SECONDS [WORK] [TARGET...]}
work=${2:-$(mktemp -d)}
shift $(( $# >= 2 ? 2 : 1 ))
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for d in fuzz/corpus/*/; do targets+=("$(basename "$d")"); done
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --quiet
export RUSTC_BOOTSTRAP=1
cargo fuzz build -a --fuzz-dir fuzz
for target in "${targets[@]}"; do
  seeds="$work/$target"
  [ -d "$seeds" ] || fuzz_seed "$target" "$seeds"
  fuzz_limits "$target"
  log="$work/$target.log"
  status=0
  /usr/bin/time -f "%U %S" -o "$work/$target.time" \
    cargo fuzz run -a --fuzz-dir fuzz "$target" "$seeds" -- \
      -max_total_time="$seconds" -max_len="$max" -timeout=20 -rss_limit_mb="$rss" -malloc_limit_mb=1024 \
      -print_final_stats=1 >"$log" 2>&1 || status=$?
  # (time(1) writes "Command exited with non-zero status N" above its figures on a crash)
  cpu=$(awk 'END {printf "%.0f", $1 + $2}' "$work/$target.time")
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  verdict=$([ "$status" = 0 ] && echo "no crash" || echo "CRASH (exit $status, see $log)")
  echo "$target	cpu ${cpu}s	executions ${execs}	${verdict}"
done
