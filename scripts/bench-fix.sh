#!/usr/bin/env bash
# Measures `rehost fix` as whole commands:
#   1. one image, the Windows 7 fixture (its real 11.7 MB SYSTEM hive) moved into a 40 GiB
#      dynamic VHDX, fixed for kvm-sata (msahci to boot start in both control sets):
#      --dry-run, and --in-place (the undo journal undone between runs, outside the timing);
#      medians of whole processes, no copy of the image in the figure;
#   2. beside it, hivexregedit --merge of the same two values into a bare copy of the hive;
#   3. a fleet of 200 images (copies of four fault fixtures) fixed in place with -j 2:
#      images per second, median per-image time, and how many boot afterwards.
# Needs: zstd, qemu-img, hyperfine, python3, hivexregedit. Images are built under target/bench/fix.
# Usage: scripts/bench-fix.sh [runs]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-20}
bench="$root/target/bench/fix"
mkdir -p "$bench"
cd "$root"
cargo build --release -q
rehost="$root/target/release/rehost"

big="$bench/win7-40g.vhdx"
if [ ! -f "$big" ]; then
  zstd -q -d -f testdata/windows/win7.vhd.zst -o "$bench/win7.vhd"
  qemu-img convert -q -f vpc -O raw "$bench/win7.vhd" "$bench/win7.raw"
  truncate -s 40G "$bench/win7.raw"
  qemu-img convert -q -f raw -O vhdx -o subformat=dynamic "$bench/win7.raw" "$big"
  rm -f "$bench/win7.raw"
fi
rm -f "$big.rehost-undo"
echo "== one image: $(basename "$big") ($(du -h "$big" | cut -f1) on disk, 40 GiB virtual), kvm-sata"
hyperfine -N -w 2 -r "$runs" --export-json "$bench/one.json" \
  --prepare "sh -c 'test ! -f $big.rehost-undo || $rehost undo $big'" \
  "$rehost fix $big -t kvm-sata --dry-run" \
  "$rehost fix $big -t kvm-sata --in-place" > /dev/null
"$rehost" undo "$big" > /dev/null 2>&1 || true
python3 - "$bench/one.json" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    mode = r["command"].split()[-1]
    print(f"  fix {mode}: median {r['median'] * 1000:.1f} ms (min {r['min'] * 1000:.1f}, max {r['max'] * 1000:.1f})")
PY

# What one fix reads and writes: --stats counts the bytes read from the image file; the
# in-place report gives the bytes written (the undo journal beside them).
read=$("$rehost" fix "$big" -t kvm-sata --dry-run --stats 2>&1 >/dev/null | sed -n 's/^stats: read \([0-9]*\) bytes.*/\1/p')
wrote=$("$rehost" fix "$big" -t kvm-sata --in-place | sed -n 's/.*: \([0-9]*\) host writes, \([0-9]*\) bytes.*/\1 writes, \2 bytes/p')
"$rehost" undo "$big" > /dev/null
echo "  bytes read per fix: $read (the 11.7 MB SYSTEM hive whole, several times: the check, the writer's comparison and read-back, the check of the staged image); written in place: $wrote"

echo "== peer: the same registry change by hivexregedit --merge into a bare copy of the hive"
# The step a hivex-based converter takes once it has the hive in hand (no image opened, no
# NTFS written, no check before or after): a lower bound for it, not its whole cost.
"$rehost" cat "$big" '\Windows\System32\config\SYSTEM' > "$bench/SYSTEM"
cat > "$bench/msahci.reg" <<'REG'
Windows Registry Editor Version 5.00

[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\services\msahci]
"Start"=dword:00000000

[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet002\services\msahci]
"Start"=dword:00000000
REG
hyperfine -N -w 2 -r "$runs" --export-json "$bench/peer.json" \
  --prepare "cp $bench/SYSTEM $bench/SYSTEM.peer" \
  "hivexregedit --merge --prefix 'HKEY_LOCAL_MACHINE\\SYSTEM' $bench/SYSTEM.peer $bench/msahci.reg" > /dev/null
python3 - "$bench/one.json" "$bench/peer.json" <<'PY'
import json, sys
ours = {r["command"].split()[-1]: r["median"] for r in json.load(open(sys.argv[1]))["results"]}
peer = json.load(open(sys.argv[2]))["results"][0]["median"]
print(f"  hivexregedit --merge: median {peer * 1000:.1f} ms: {peer / ours['--in-place']:.2f}x rehost fix --in-place (the peer edits a bare hive only)")
PY

echo "== fleet: 200 images, -j 2, --in-place"
fleet="$bench/fleet"
rm -rf "$fleet"
mkdir -p "$fleet"
for v in win7.vhd ws2019-override.vhdx ws2019-ahci-off.vhdx ws2019-san.vhdx; do
  zstd -q -d -f "testdata/windows/$v.zst" -o "$bench/src-$v"
done
n=0
for i in $(seq -w 1 50); do
  for v in win7.vhd ws2019-override.vhdx ws2019-ahci-off.vhdx ws2019-san.vhdx; do
    cp "$bench/src-$v" "$fleet/$i-$v"
    n=$((n + 1))
  done
done
cat "$fleet"/* > /dev/null
start=$(date +%s.%N)
"$rehost" fix --jsonl -j 2 --in-place -t kvm-sata "$fleet"/* > "$bench/fleet.jsonl" 2> "$bench/fleet.err" || true
end=$(date +%s.%N)
python3 - "$bench/fleet.jsonl" "$start" "$end" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
wall = float(sys.argv[3]) - float(sys.argv[2])
ok = [r for r in rows if "installs" in r]
boots = [r for r in ok if r["installs"] and all(i["after"] in ("boots", "boots-with-warnings") for i in r["installs"])]
lat = sorted(r["elapsed_ms"] for r in ok)
print(f"  {len(rows)} images in {wall:.2f} s: {len(rows) / wall:.0f} images/s; {len(boots)} boot after the fix, {sum(r['committed'] for r in ok)} written")
print(f"  per image: median {statistics.median(lat):.1f} ms, max {lat[-1]:.1f} ms")
PY
tail -1 "$bench/fleet.err"
