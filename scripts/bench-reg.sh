#!/usr/bin/env bash
# Measures the registry engine as whole commands, beside hivex in the same run:
#   1. a whole-hive export of the real Windows 7 SYSTEM hive (11.7 MB, 30,000 keys):
#      `rehost reg export SYSTEM '\'` against `hivexregedit --export SYSTEM '\'`, medians
#      and their ratio;
#   2. one key queried (`rehost reg query`) against `hivexget` of the same key.
# In-process figures (query of one path, 1,000 edits + save) are `cargo bench --bench regf`.
# Needs: hivexregedit, hivexget (libhivex-bin, libwin-hivex-perl), xz, hyperfine.
# Usage: scripts/bench-reg.sh [runs]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-10}
bench="$root/target/bench/reg"
mkdir -p "$bench"
cd "$root"
cargo build --release -q
rehost="$root/target/release/rehost"
hive="$bench/SYSTEM"
[ -f "$hive" ] || xz -dc testdata/hives/regipy/SYSTEM.xz > "$hive"

echo "== whole-hive export, $runs runs"
hyperfine -N -w 1 -r "$runs" --export-json "$bench/export.json" \
  "$rehost reg export $hive '\\'" \
  "hivexregedit --export $hive '\\'" > /dev/null
echo "== one key: ControlSet001\\Services\\Tcpip\\Parameters"
hyperfine -N -w 1 -r "$runs" --export-json "$bench/query.json" \
  "$rehost reg query $hive 'ControlSet001\\Services\\Tcpip\\Parameters'" \
  "hivexget $hive '\\ControlSet001\\Services\\Tcpip\\Parameters'" > /dev/null
python3 - "$bench/export.json" "$bench/query.json" <<'PY'
import json, sys
for f in sys.argv[1:]:
    r = json.load(open(f))["results"]
    a, b = r[0]["median"], r[1]["median"]
    print(f"  rehost {a * 1000:.1f} ms, {r[1]['command'].split()[0]} {b * 1000:.1f} ms: {b / a:.1f}x")
PY
