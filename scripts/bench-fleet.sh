#!/usr/bin/env bash
# Measures a fleet run as a whole: N images (default 1000; sparse copies of every Windows
# fixture in turn, each a file of its own) checked against three targets and then fixed in
# place for one, at -j 1 and at -j 2, each from fresh copies:
#   images per second and the speed-up from one core to two (goal: 1.8x or more), peak RSS
#   of the whole process (/usr/bin/time), bytes read per image (median and max, from each
#   image's JSON line); then dissect.target's `target-query -f osinfo` beside `rehost
#   check` on a sample of 20 of the same images, one process per image, medians and ratio.
# Needs: zstd, python3, GNU time (/usr/bin/time), and for the last part dissect.target.
# Usage: scripts/bench-fleet.sh [N]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-1000}
cd "$root"
cargo build --release -q
rehost="$root/target/release/rehost"
bench="$root/target/bench/fleet-scale"
mkdir -p "$bench/src"
for z in testdata/windows/*.zst testdata/sample/sample.vhd; do
  case "$z" in
    *.zst) out="$bench/src/$(basename "${z%.zst}")"; [ -f "$out" ] || zstd -q -d "$z" -o "$out" ;;
    *) cp -f "$z" "$bench/src/" ;;
  esac
done
mapfile -t sources < <(ls "$bench"/src/*)
targets=(-t kvm-sata -t hyperv-gen1 -t vmware-pvscsi)

fresh() { # the fleet again, from the sources (not timed)
  rm -rf "$bench/fleet"
  mkdir -p "$bench/fleet"
  for i in $(seq 0 $((n - 1))); do
    src=${sources[$((i % ${#sources[@]}))]}
    ext=${src##*.}
    cp --sparse=always "$src" "$bench/fleet/$(printf '%05d' "$i")-$(basename "${src%.*}").$ext"
  done
  sync
}

measure() { # NAME JOBS ARGS...: one whole run; prints images/s, peak RSS, bytes read
  local name=$1 jobs=$2
  shift 2
  local log="$bench/$name-j$jobs"
  local start end
  start=$(date +%s.%N)
  /usr/bin/time -f '%M' -o "$log.rss" "$rehost" "$@" -q --jsonl -j "$jobs" "$bench/fleet" \
    > "$log.jsonl" 2> "$log.err" || true
  end=$(date +%s.%N)
  python3 - "$log.jsonl" "$start" "$end" "$(tail -n 1 "$log.rss")" "$name" "$jobs" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
wall = float(sys.argv[3]) - float(sys.argv[2])
read = sorted(r.get("bytes_read", 0) for r in rows)
failed = sum(1 for r in rows if r.get("errors"))
print(f"  {sys.argv[5]:<6} -j {sys.argv[6]}: {len(rows)} images in {wall:6.2f} s = {len(rows) / wall:6.1f} images/s;"
      f" peak RSS {int(sys.argv[4]) / 1024:6.1f} MiB; read per image median {statistics.median(read) / 2**20:.2f} MiB,"
      f" max {read[-1] / 2**20:.2f} MiB; {failed} with errors")
open(sys.argv[1] + ".rate", "w").write(f"{len(rows) / wall}")
EOF
}

echo "== $n images (${#sources[@]} fixtures in turn), check against 3 targets, fix in place for kvm-sata"
for jobs in 1 2; do
  fresh
  measure check "$jobs" check "${targets[@]}"
  measure fix "$jobs" fix -t kvm-sata --in-place
done
python3 - "$bench" <<'EOF'
import sys
b = sys.argv[1]
rate = lambda name, j: float(open(f"{b}/{name}-j{j}.jsonl.rate").read())
for name in ("check", "fix"):
    print(f"  {name}: -j 2 / -j 1 = {rate(name, 2) / rate(name, 1):.2f}x")
EOF

if ! command -v target-query > /dev/null; then
  echo "== dissect.target not installed (pip install dissect.target): the peer comparison did not run"
  exit 0
fi
echo "== rehost check and dissect.target on 20 of the same images, one process per image"
fresh
sample=$(ls "$bench"/fleet/* | awk -v step=$((n / 20 > 0 ? n / 20 : 1)) 'NR % step == 1' | head -20)
python3 - "$rehost" $sample <<'EOF'
import statistics, subprocess, sys, time
rehost, images = sys.argv[1], sys.argv[2:]
def each(cmd):
    times = []
    for img in images:
        t = time.perf_counter()
        subprocess.run(cmd + [img], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t)
    return statistics.median(times)
r = each([rehost, "check", "-t", "kvm-sata", "-t", "hyperv-gen1", "-t", "vmware-pvscsi", "--json"])
d = each(["target-query", "-s", "-f", "osinfo"])
print(f"  rehost check (3 targets) median {r * 1000:8.1f} ms per image")
print(f"  target-query osinfo      median {d * 1000:8.1f} ms per image (reads the OS facts only)")
print(f"  ratio dissect / rehost: {d / r:.0f}x")
EOF
rm -rf "$bench/fleet"
