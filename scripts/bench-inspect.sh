#!/usr/bin/env bash
# Measures `rehost inspect` on a fleet and beside dissect.target:
#   1. a fleet of 200 images (the ten phony installs of testdata/windows, twenty paths each)
#      inspected with -j 2: images per second, median per-image latency, bytes read per
#      image against the size of the hives it had to read;
#   2. the same 20 images (two of each install), one at a time, by rehost and by
#      dissect.target's `target-query -f osinfo`: medians per image and their ratio.
# Needs: zstd, python3 with dissect.target (pip install dissect.target).
# Usage: scripts/bench-inspect.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo build --release -q
rehost="$root/target/release/rehost"
bench="$root/target/bench/fleet"
mkdir -p "$bench/src" "$bench/fleet"
for z in testdata/windows/*.zst; do
  out="$bench/src/$(basename "${z%.zst}")"
  [ -f "$out" ] || zstd -q -d --long=27 "$z" -o "$out"
done
rm -f "$bench"/fleet/*
n=0
for img in "$bench"/src/*; do
  ext=${img##*.}
  for i in $(seq -w 1 20); do
    ln "$img" "$bench/fleet/$(basename "${img%.*}")-$i.$ext"
    n=$((n + 1))
  done
done
echo "== fleet: $n images, -j 2"
cat "$bench"/src/* > /dev/null
start=$(date +%s.%N)
"$rehost" inspect --jsonl -j 2 "$bench"/fleet/* > "$bench/fleet.jsonl"
end=$(date +%s.%N)
python3 - "$bench/fleet.jsonl" "$start" "$end" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
wall = float(sys.argv[3]) - float(sys.argv[2])
ok = [r for r in rows if "installs" in r]
lat = sorted(r["elapsed_ms"] for r in ok)
read = [r["bytes_read"] for r in ok]
hives = [sum(h["size"] for i in r["installs"] for h in i["hives"]) for r in ok]
over = [b - h for b, h in zip(read, hives)]
print(f"  {len(ok)} of {len(rows)} images read in {wall:.2f} s: {len(rows) / wall:.0f} images/s")
print(f"  per-image latency: median {statistics.median(lat):.1f} ms, max {lat[-1]:.1f} ms")
print(f"  bytes read per image: median {statistics.median(read) / 2**20:.2f} MiB, max {max(read) / 2**20:.2f} MiB")
print(f"  beyond the hives' sizes: median {statistics.median(over) / 2**20:.2f} MiB, max {max(over) / 2**20:.2f} MiB (target: under 4 MiB)")
EOF

echo "== rehost and dissect.target on the same 20 images, one at a time"
sample=$(ls "$bench"/fleet/* | awk 'NR % 10 == 1 || NR % 10 == 2' | head -20)
python3 - "$rehost" $sample <<'EOF'
import statistics, subprocess, sys, time
rehost, images = sys.argv[1], sys.argv[2:]
def each(cmd):
    times = []
    for img in images:
        t = time.perf_counter()
        subprocess.run(cmd + [img], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t)
    return statistics.median(times)
r = each([rehost, "inspect", "--json"])
d = each(["target-query", "-s", "-f", "osinfo"])
print(f"  rehost inspect       median {r * 1000:8.1f} ms per image")
print(f"  target-query osinfo  median {d * 1000:8.1f} ms per image")
print(f"  rehost is {d / r:.0f}x faster per image")
EOF
