#!/usr/bin/env bash
# Measures this tree's rehost against the binary of an earlier commit, in the same run, as
# whole processes (hyperfine, medians): inspect, check against every target, reg export,
# ls, and fix (dry run and in place) of the Windows 7 fixture (its real 11.7 MB SYSTEM hive)
# moved into a 40 GiB dynamic VHDX; and the bytes each binary reads for that fix
# (--stats). Prints each median, the ratio new/base, and hyperfine's spread.
# Needs: git, zstd, qemu-img, hyperfine, python3.
# Usage: scripts/bench-against.sh [REV (default HEAD~1)] [runs (default 20)]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rev=${1:-HEAD~1}
runs=${2:-20}
cd "$root"
bench="$root/target/bench/against"
mkdir -p "$bench"
cargo build --release -q
new="$root/target/release/rehost"

# The base binary, built from REV in a worktree of its own.
sha=$(git rev-parse --short "$rev")
src="$bench/src-$sha"
if [ ! -d "$src" ]; then
  git worktree add -q --detach "$src" "$sha"
fi
CARGO_TARGET_DIR="$bench/target-$sha" cargo build --release -q --manifest-path "$src/Cargo.toml"
base="$bench/target-$sha/release/rehost"

# The images: the sample, the Windows 7 fixture, and that fixture in a 40 GiB VHDX.
zstd -q -d -f testdata/windows/win7.vhd.zst -o "$bench/win7.vhd"
big="$bench/win7-40g.vhdx"
if [ ! -f "$big" ]; then
  qemu-img convert -q -f vpc -O raw "$bench/win7.vhd" "$bench/win7.raw"
  truncate -s 40G "$bench/win7.raw"
  qemu-img convert -q -f raw -O vhdx -o subformat=dynamic "$bench/win7.raw" "$big"
  rm -f "$bench/win7.raw"
fi
for b in "$new" "$base"; do "$b" undo "$big" > /dev/null 2>&1 || true; done
sample="$root/testdata/sample/sample.vhd"

compare() { # NAME ARGS... (each binary runs the same arguments, split as a shell splits them)
  local name=$1
  shift
  # Each binary must do the work, not fail fast: exit 0, or 3 for a check that finds an
  # install that does not boot (hyperfine -i below ignores exit codes).
  for b in "$new" "$base"; do
    rc=0
    sh -c "$b $* > /dev/null 2>&1" || rc=$?
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 3 ]; then
      echo "$name: $b $* exits $rc: not a measure of the work" >&2
      exit 1
    fi
  done
  hyperfine -N -i -w 2 -r "$runs" --export-json "$bench/$name.json" \
    --prepare "sh -c 'for b in $new $base; do \$b undo $big > /dev/null 2>&1 || true; done'" \
    -n base "$base $*" -n new "$new $*" > /dev/null
  python3 - "$bench/$name.json" "$name" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
b, n = r["base"], r["new"]
spread = lambda x: (x["max"] - x["min"]) * 1000
print(f"  {sys.argv[2]:<14} base {b['median'] * 1000:7.2f} ms  new {n['median'] * 1000:7.2f} ms"
      f"  new/base {n['median'] / b['median']:.2f}  (spread base {spread(b):.1f} ms, new {spread(n):.1f} ms)")
PY
}

echo "== $new against $base ($sha), $runs runs each"
compare inspect inspect "$sample"
compare check-all check "$bench/win7.vhd" --target all
compare reg-export reg export "$bench/win7.vhd" 'HKLM\\SYSTEM\\Select'
compare ls ls "$bench/win7.vhd" '/Windows/System32/config'
compare fix-dry-run fix "$big" -t kvm-sata --dry-run
compare fix-in-place fix "$big" -t kvm-sata --in-place

echo "== bytes read by one fix of $(basename "$big") (--stats)"
for b in base new; do
  bin=$([ "$b" = new ] && echo "$new" || echo "$base")
  "$bin" undo "$big" > /dev/null 2>&1 || true
  read=$("$bin" fix "$big" -t kvm-sata --dry-run --stats 2>&1 >/dev/null | sed -n 's/^stats: read \([0-9]*\) bytes.*/\1/p')
  echo "  $b: $read bytes"
done
"$new" undo "$big" > /dev/null 2>&1 || true
