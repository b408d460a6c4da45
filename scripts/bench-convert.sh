#!/usr/bin/env bash
# Measures conversion as whole processes (hyperfine, medians, all in the same run):
#
# 1. Convert and fix in one pass: the Windows 7 fixture in a 4 GiB monolithicSparse VMDK
#    that holds DATA_MIB (default 1536) MiB of data besides the install (random bytes in
#    the unpartitioned space from 1 GiB on, which every tool must copy), fixed for
#    hyperv-gen1 into a new dynamic VHDX: `rehost fix --output NEW.vhdx`, against
#    `qemu-img convert` of the same VMDK to VHDX alone, and against `qemu-img convert`
#    followed by `rehost fix --in-place` of its result. `qemu-img convert` writes its
#    output with the cache mode `unsafe` by default (nothing flushed: the data may still
#    be in the page cache when it exits), where rehost flushes the new image before it
#    reads it back and renames it; `qemu-img convert -t writeback` (which flushes at the
#    end) is timed too.
# 2. Convert alone: the Windows 7 fixture in a 40 GiB dynamic VHDX (12 MB of data) to
#    qcow2 and to VMDK: `rehost convert` against `qemu-img convert`.
#
# Every run starts from a synced page cache (no dirty pages left by the run before).
# Prints each median, the ratios, hyperfine's spread and the CPU time each command took
# (user and system, which a busy machine inflates less than the elapsed time).
# Needs: cargo, zstd, qemu-img, hyperfine, python3.
# Usage: scripts/bench-convert.sh [DATA_MIB (default 1536)] [runs (default 5)]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
data_mib=${1:-1536}
runs=${2:-5}
disk_gib=4
if [ "$data_mib" -gt $(((disk_gib - 1) * 1024)) ]; then
  echo "DATA_MIB must leave the disk's first GiB to the install: at most $(((disk_gib - 1) * 1024))" >&2
  exit 2
fi
cd "$root"
target=${CARGO_TARGET_DIR:-$root/target}
bench="$target/bench/convert"
mkdir -p "$bench"
cargo build --release -q
rehost="$target/release/rehost"
target_machine=hyperv-gen1

# The 4 GiB VMDK: the install, then the data from 1 GiB on.
zstd -q -d -f testdata/windows/win7.vhd.zst -o "$bench/win7.vhd"
src="$bench/win7-${disk_gib}g-${data_mib}m.vmdk"
if [ ! -f "$src" ]; then
  qemu-img convert -q -f vpc -O raw "$bench/win7.vhd" "$bench/src.raw"
  truncate -s "${disk_gib}G" "$bench/src.raw"
  head -c "$((data_mib << 20))" /dev/urandom |
    dd of="$bench/src.raw" bs=1M seek=1024 conv=notrunc,sparse iflag=fullblock status=none
  qemu-img convert -q -f raw -O vmdk "$bench/src.raw" "$src"
  rm -f "$bench/src.raw"
fi
one="$bench/one.vhdx"
alone="$bench/alone.vhdx"
two="$bench/two.vhdx"
clean="rm -f $one $alone $two $two.rehost-undo $one.rehost-partial $alone.rehost-partial"

# Each command must do the work once before it is timed (exit 0: the fix was written).
sh -c "$clean"
"$rehost" fix "$src" -t "$target_machine" --output "$one" > /dev/null
qemu-img convert -f vmdk -O vhdx -o subformat=dynamic "$src" "$two"
"$rehost" fix "$two" -t "$target_machine" --in-place > /dev/null
qemu-img compare -q -f vhdx -F vhdx "$one" "$two"
sh -c "$clean"

echo "== convert and fix: $(basename "$src") ($(du -h "$src" | cut -f1) on disk) to VHDX, $runs runs each"
hyperfine -N -w 1 -r "$runs" --export-json "$bench/fix.json" \
  --prepare "sh -c '$clean; sync'" \
  -n rehost "$rehost fix $src -t $target_machine --output $one" \
  -n qemu "qemu-img convert -f vmdk -O vhdx -o subformat=dynamic $src $alone" \
  -n qemu-flushed "qemu-img convert -t writeback -f vmdk -O vhdx -o subformat=dynamic $src $alone" \
  -n qemu+rehost "sh -c 'qemu-img convert -f vmdk -O vhdx -o subformat=dynamic $src $two && $rehost fix $two -t $target_machine --in-place > /dev/null'" \
  > /dev/null
sh -c "$clean"
python3 - "$bench/fix.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
m = {k: v["median"] for k, v in r.items()}
for k, v in r.items():
    print(f"  {k:<13} median {v['median']:7.2f} s  (min {v['min']:.2f}, max {v['max']:.2f});"
          f" CPU {v['user'] + v['system']:.2f} s (mean user + system)")
print(f"  rehost / qemu-img convert alone: {m['rehost'] / m['qemu']:.2f}x"
      f" (flushed: {m['rehost'] / m['qemu-flushed']:.2f}x);"
      f" rehost / (qemu-img convert + rehost fix): {m['rehost'] / m['qemu+rehost']:.2f}x")
PY

# The 40 GiB sparse VHDX, to qcow2 and VMDK.
big="$bench/win7-40g.vhdx"
if [ ! -f "$big" ]; then
  qemu-img convert -q -f vpc -O raw "$bench/win7.vhd" "$bench/win7.raw"
  truncate -s 40G "$bench/win7.raw"
  qemu-img convert -q -f raw -O vhdx -o subformat=dynamic "$bench/win7.raw" "$big"
  rm -f "$bench/win7.raw"
fi
for fmt in qcow2 vmdk; do
  ours="$bench/ours.$fmt"
  theirs="$bench/theirs.$fmt"
  echo "== convert $(basename "$big") to $fmt, $runs runs each"
  hyperfine -N -w 1 -r "$runs" --export-json "$bench/$fmt.json" \
    --prepare "sh -c 'rm -f $ours $theirs; sync'" \
    -n rehost "$rehost convert $big $ours" \
    -n qemu "qemu-img convert -f vhdx -O $fmt $big $theirs" \
    > /dev/null
  "$rehost" convert "$big" "$ours" > /dev/null 2>&1 || true
  qemu-img convert -f vhdx -O "$fmt" "$big" "$theirs"
  qemu-img compare -q "$ours" "$theirs"
  python3 - "$bench/$fmt.json" "$(du -k "$ours" | cut -f1)" "$(du -k "$theirs" | cut -f1)" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
for k, v in r.items():
    print(f"  {k:<8} median {v['median'] * 1000:8.1f} ms  (min {v['min'] * 1000:.1f}, max {v['max'] * 1000:.1f});"
          f" CPU {(v['user'] + v['system']) * 1000:.1f} ms")
print(f"  rehost / qemu-img: {r['rehost']['median'] / r['qemu']['median']:.2f}x;"
      f" on disk: rehost {int(sys.argv[2]) / 1024:.1f} MiB, qemu-img {int(sys.argv[3]) / 1024:.1f} MiB")
PY
  rm -f "$ours" "$theirs"
done
