#!/usr/bin/env bash
# Measures the reading layers, whole commands, beside peers measured in the same run:
#   1. `rehost cat` of a 1 GiB file in 64 fragments, from the page cache, against the
#      Sleuth Kit's icat and ntfs-3g's ntfscat on the same volume: medians and ratios;
#   2. `rehost ls` of \Windows\System32 (3,000 entries) on a 100 GiB dynamic VHDX: bytes
#      read (--stats) and time, beside fls listing the same directory on the raw volume.
# Needs: mkntfs, ntfscp, ntfsfallocate, ntfstruncate, ntfsls, wimlib, qemu-img, icat, fls,
# ntfscat, hyperfine. The images are built once under target/bench (about 1.1 GiB of disk).
# Usage: scripts/bench-read.sh [runs]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-10}
bench="$root/target/bench"
mkdir -p "$bench"
cd "$root"
cargo build --release -q
rehost="$root/target/release/rehost"

# 1. A 1 GiB file in 64 fragments.
vol="$bench/frag.ntfs"
if [ ! -f "$vol" ]; then
  truncate -s 1200M "$vol.tmp"
  mkntfs -F -Q -q -c 4096 "$vol.tmp" 2>/dev/null
  : > "$bench/empty"
  ntfscp -q "$vol.tmp" "$bench/empty" /big.bin
  ntfscp -q "$vol.tmp" "$bench/empty" /spacer.bin
  chunk=$((16 << 20))
  for ((i = 0; i < 64; i++)); do
    ntfsfallocate -o $((i * chunk)) -l "$chunk" "$vol.tmp" /big.bin >/dev/null 2>&1
    ntfsfallocate -o $((i * 4096)) -l 4096 "$vol.tmp" /spacer.bin >/dev/null 2>&1
  done
  head -c $((1 << 30)) /dev/urandom > "$bench/big.bin"
  ntfscp -q "$vol.tmp" "$bench/big.bin" /big.bin
  rm "$bench/big.bin"
  mv "$vol.tmp" "$vol"
fi
inode=$(ntfsls -i "$vol" | awk '$2 == "big.bin" {print $1}')
runs_in_file=$(ntfsinfo -v -i "$inode" "$vol" | awk '/Total runs/ {print $3}')
echo "== rehost cat of a 1 GiB file in $runs_in_file runs (page cache warm)"
cat "$vol" > /dev/null
hyperfine -N -w 2 -r "$runs" --export-json "$bench/cat.json" \
  -n rehost "$rehost cat $vol /big.bin --volume 1" \
  -n icat "icat $vol $inode" \
  -n ntfscat "ntfscat $vol /big.bin" --output=null >/dev/null
python3 - "$bench/cat.json" <<'EOF'
import json, sys
r = {x["command"]: sorted(x["times"])[len(x["times"]) // 2] for x in json.load(open(sys.argv[1]))["results"]}
gib = 1.0
for name, t in r.items():
    print(f"  {name:8s} median {t*1000:8.1f} ms  {gib/t:6.2f} GiB/s")
for peer in ("icat", "ntfscat"):
    print(f"  rehost is {r[peer]/r['rehost']:.1f}x faster than {peer}")
EOF

# 2. \Windows\System32 with 3,000 entries on a 100 GiB volume, as a dynamic VHDX.
big="$bench/system32.vhdx"
raw="$bench/system32.ntfs"
if [ ! -f "$big" ]; then
  stage="$bench/stage"
  rm -rf "$stage"
  mkdir -p "$stage/Windows/System32"
  for i in $(seq 1 3000); do
    printf 'x' > "$stage/Windows/System32/file$(printf %04d "$i").dll"
  done
  truncate -s 100G "$raw"
  mkntfs -F -Q -q -c 4096 "$raw" 2>/dev/null
  wimcapture "$stage" "$bench/s.wim" s --compress=none >/dev/null
  wimapply "$bench/s.wim" 1 "$raw" >/dev/null
  qemu-img convert -f raw -O vhdx -o subformat=dynamic,block_size=32M "$raw" "$big"
  rm -rf "$stage" "$bench/s.wim"
fi
echo "== rehost ls \\Windows\\System32 (3,000 entries) on a 100 GiB dynamic VHDX"
echo "  image file: $(du -h --apparent-size "$big" | cut -f1) ($(du -h "$big" | cut -f1) on disk)"
"$rehost" ls "$big" /Windows/System32 --stats 2>&1 >/dev/null | sed 's/^/  /'
dir_inode=$(ntfsls -i "$raw" -p /Windows | awk '$2 == "System32" {print $1}')
hyperfine -N -w 2 -r "$runs" --export-json "$bench/ls.json" \
  -n rehost "$rehost ls $big /Windows/System32" \
  -n fls "fls $raw $dir_inode" --output=null >/dev/null
python3 - "$bench/ls.json" <<'EOF'
import json, sys
r = {x["command"]: sorted(x["times"])[len(x["times"]) // 2] for x in json.load(open(sys.argv[1]))["results"]}
for name, t in r.items():
    print(f"  {name:8s} median {t*1000:8.2f} ms")
print(f"  rehost on the VHDX is {r['fls']/r['rehost']:.1f}x faster than fls on the raw volume")
EOF
