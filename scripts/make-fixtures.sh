#!/usr/bin/env bash
# Builds the disk images under testdata/disks with Debian's tools (no FUSE, no loop
# devices): one NTFS volume with the cases the readers must handle, laid out as a bare
# volume, an MBR disk (with extended/logical partitions and a FAT16 volume) and a GPT disk
# (FAT32 EFI system partition, MSR, NTFS), each converted by qemu-img to fixed/dynamic VHD
# and fixed/dynamic VHDX. Images are stored as zstd files; all but the bare volume are
# stored as zstd patches against another image, which keeps the repository small.
#
# Usage: scripts/make-fixtures.sh          (rewrites testdata/disks)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/testdata/disks"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for t in mkntfs wimcapture wimapply ntfscp ntfsfallocate ntfstruncate ntfsinfo ntfsls \
         sfdisk sgdisk mkfs.vfat mmd mcopy qemu-img zstd python3 fls mmls ntfsfix; do
  command -v "$t" >/dev/null || { echo "missing tool: $t (scripts/install-test-deps.sh)" >&2; exit 1; }
done

# Deterministic pseudo-random bytes: gen SIZE SEED > file
gen() { python3 -c "import random,sys; sys.stdout.buffer.write(random.Random($2).randbytes($1))"; }

stage="$work/stage"
mkdir -p "$stage"
cd "$stage"
# A Windows-shaped tree.
mkdir -p Windows/System32/config Windows/System32/drivers
gen 65536 1 > Windows/System32/config/SYSTEM
gen 30000 2 > Windows/System32/hal.dll
for d in atapi intelide msahci storahci stornvme viostor; do gen 4096 "$((${#d} + 3))" > "Windows/System32/drivers/$d.sys"; done
# A deep tree.
deep=deep
for i in $(seq 1 12); do deep="$deep/level-$i"; done
mkdir -p "$deep"
echo "at the bottom" > "$deep/leaf.txt"
# A directory large enough for a multi-level $I30 B+ tree.
mkdir many
for i in $(seq 1 800); do
  printf 'entry %d\n' "$i" > "many/file-$(printf %04d "$i")-with-a-long-name-to-fill-the-index-blocks.txt"
done
# Names beyond ASCII, and two names differing only in case in different directories.
mkdir -p "names/Données" "names/日本語" case/A case/B
echo "accents" > "names/Données/été.txt"
echo "kanji" > "names/日本語/ファイル.txt"
echo "emoji" > "names/emoji-😀.txt"
echo "upper" > case/A/ReadMe.TXT
echo "lower" > case/B/README.txt
# Sizes around the resident limit and cluster boundaries.
mkdir sizes
: > sizes/0.bin
for n in 1 700 4095 4096 4097; do gen "$n" "$n" > "sizes/$n.bin"; done
gen 307200 300 > sizes/300k.bin
gen 1572864 1500 > sizes/1m5.bin
find . -exec touch -h -d '2024-01-02 03:04:05 UTC' {} +

# The NTFS volume.
vol="$work/vol.ntfs"
truncate -s 40M "$vol"
mkntfs -F -Q -q -s 512 -c 4096 -p 2048 -H 255 -S 63 -L REHOST "$vol" 2>/dev/null
wimcapture "$stage" "$work/s.wim" fixture --compress=none >/dev/null
wimapply "$work/s.wim" 1 "$vol" >/dev/null

# A fragmented file: grow it and a spacer in turn, write the content over it, then empty
# the spacer (ntfstruncate wants its inode).
frag_size=$((512 * 1024))
gen "$frag_size" 77 > "$work/frag.bin"
: > "$work/empty"
ntfscp -q "$vol" "$work/empty" /frag.bin
ntfscp -q "$vol" "$work/empty" /spacer.bin
chunk=$((32 * 1024))
for ((off = 0; off < frag_size; off += chunk)); do
  ntfsfallocate -o "$off" -l "$chunk" "$vol" /frag.bin >/dev/null 2>&1
  ntfsfallocate -o "$off" -l "$chunk" "$vol" /spacer.bin >/dev/null 2>&1
done
ntfscp -q "$vol" "$work/frag.bin" /frag.bin
spacer=$(ntfsls -i "$vol" | awk '$2 == "spacer.bin" {print $1}')
ntfstruncate "$vol" "$spacer" 0
frag_runs=$(ntfsinfo -v -F /frag.bin "$vol" | awk '/Total runs/ {print $3}')
[ "$frag_runs" -ge 10 ] || { echo "frag.bin has only $frag_runs runs" >&2; exit 1; }

# A sparse file: a hole of 1 MiB, then 64 KiB allocated but never written.
ntfscp -q "$vol" "$work/empty" /sparse.bin
ntfsfallocate -o 1048576 -l 65536 "$vol" /sparse.bin >/dev/null 2>&1
# Named streams (alternate data streams).
echo "the main stream" > "$work/main"
printf '[ZoneTransfer]\r\nZoneId=3\r\n' > "$work/zone"
gen 10000 9 > "$work/secret"
ntfscp -q "$vol" "$work/main" /ads.txt
ntfscp -q -N Zone.Identifier "$vol" "$work/zone" /ads.txt
ntfscp -q -N secret "$vol" "$work/secret" /ads.txt
ntfsfix -n "$vol" >/dev/null

# FAT volumes: a FAT32 EFI system partition and a FAT16 data volume.
efi="$work/efi.fat"
truncate -s 34M "$efi"
mkfs.vfat -F 32 -s 1 -n ESP -i 0e5f0e5f "$efi" >/dev/null
mmd -i "$efi" ::/EFI ::/EFI/Microsoft ::/EFI/Microsoft/Boot ::/EFI/Boot
gen 16384 11 > "$work/BCD"; gen 102400 12 > "$work/bootmgfw.efi"
mcopy -i "$efi" "$work/BCD" "$work/bootmgfw.efi" ::/EFI/Microsoft/Boot/
mcopy -i "$efi" "$work/bootmgfw.efi" ::/EFI/Boot/bootx64.efi
fat16="$work/data.fat"
truncate -s 8M "$fat16"
mkfs.vfat -F 16 -s 1 -n DATA -i 16161616 "$fat16" >/dev/null
echo "a long file name" > "$work/lfn"
mcopy -i "$fat16" "$work/lfn" "::/Long File Name Test.txt"
mcopy -i "$fat16" "$work/secret" ::/SECRET.BIN

# Disks.
mkdir -p "$work/disks"
cp "$vol" "$work/disks/bare.raw"

mbr="$work/disks/mbr.raw"
truncate -s 64M "$mbr"
sfdisk -q "$mbr" <<EOF
label: dos
label-id: 0x5cbea03e
unit: sectors
start=2048, size=81920, type=7, bootable
start=86016, size=40960, type=5
EOF
# Logical partitions by hand: an EBR chain with a FAT16 volume and an empty FAT12 one.
sfdisk -q --append "$mbr" <<EOF
start=88064, size=16384, type=6
start=106496, size=8192, type=1
EOF
dd if="$vol" of="$mbr" bs=512 seek=2048 conv=notrunc,sparse status=none
dd if="$fat16" of="$mbr" bs=512 seek=88064 conv=notrunc,sparse status=none
truncate -s 4M "$work/small.fat"
mkfs.vfat -F 12 -n SMALL "$work/small.fat" >/dev/null
dd if="$work/small.fat" of="$mbr" bs=512 seek=106496 conv=notrunc,sparse status=none

gpt="$work/disks/gpt.raw"
truncate -s 88M "$gpt"
sgdisk -o -U 5f3e1c2a-8b7d-4e6f-9a0b-1c2d3e4f5a6b \
  -n 1:2048:+34M -t 1:ef00 -u 1:aa11aa11-0000-4000-8000-000000000001 -c 1:"EFI system partition" \
  -n 2:0:+1M -t 2:0c01 -u 2:aa11aa11-0000-4000-8000-000000000002 -c 2:"Microsoft reserved partition" \
  -n 3:0:+40M -t 3:0700 -u 3:aa11aa11-0000-4000-8000-000000000003 -c 3:"Basic data partition" \
  "$gpt" >/dev/null
start() { sgdisk -i "$1" "$gpt" | awk '/First sector/ {print $3}'; }
dd if="$efi" of="$gpt" bs=512 seek="$(start 1)" conv=notrunc,sparse status=none
dd if="$vol" of="$gpt" bs=512 seek="$(start 3)" conv=notrunc,sparse status=none

# Containers.
for d in bare mbr gpt; do
  raw="$work/disks/$d.raw"
  qemu-img convert -f raw -O vpc -o subformat=fixed,force_size=on "$raw" "$work/disks/$d.fixed.vhd"
  qemu-img convert -f raw -O vpc -o subformat=dynamic,force_size=on "$raw" "$work/disks/$d.dynamic.vhd"
  qemu-img convert -f raw -O vhdx -o subformat=fixed "$raw" "$work/disks/$d.fixed.vhdx"
  qemu-img convert -f raw -O vhdx -o subformat=dynamic,block_size=1M "$raw" "$work/disks/$d.dynamic-1m.vhdx"
  qemu-img convert -f raw -O vhdx -o subformat=dynamic,block_size=32M "$raw" "$work/disks/$d.dynamic-32m.vhdx"
done

# Verify with independent tools before storing anything.
for d in bare mbr gpt; do
  for c in fixed.vhd dynamic.vhd fixed.vhdx dynamic-1m.vhdx dynamic-32m.vhdx; do
    fmt=vpc; [[ $c == *vhdx ]] && fmt=vhdx
    qemu-img compare -q -f raw -F "$fmt" "$work/disks/$d.raw" "$work/disks/$d.$c"
  done
done
# (Captured first: grep -q would close the pipe early and fail the pipeline.)
listing=$(mmls "$mbr"); grep -q "NTFS" <<<"$listing"
listing=$(mmls "$gpt"); grep -q "Basic data" <<<"$listing"
listing=$(fls -r -o 2048 "$mbr"); grep -q "frag.bin" <<<"$listing"

# Store: the bare volume whole, everything else as a patch against a similar image.
rm -rf "$out"
mkdir -p "$out"
# (zstd prints tuning advice for patches on stderr; real failures still stop the script.)
z() { zstd -q -19 --long=27 "$@" 2>/dev/null; }
z "$work/disks/bare.raw" -o "$out/bare.raw.zst"
for d in mbr gpt; do
  z --patch-from="$work/disks/bare.raw" "$work/disks/$d.raw" -o "$out/$d.raw.zpatch"
done
for d in bare mbr gpt; do
  for c in fixed.vhd dynamic.vhd fixed.vhdx dynamic-1m.vhdx dynamic-32m.vhdx; do
    z --patch-from="$work/disks/$d.raw" "$work/disks/$d.$c" -o "$out/$d.$c.zpatch"
  done
done

# The manifest: how to rebuild each image, its hash, and what was planted where.
{
  echo "# image base sha256 (of the decompressed image)"
  for f in "$work"/disks/*; do
    name=$(basename "$f")
    case "$name" in
      bare.raw) base=-;;
      *.raw) base=bare.raw;;
      *) base="${name%%.*}.raw";;
    esac
    echo "image $name $base $(sha256sum "$f" | cut -c1-64)"
  done
  echo "# volumes: disk index offset content"
  echo "volume bare.raw 1 0 ntfs"
  echo "volume mbr.raw 1 $((2048 * 512)) ntfs"
  echo "volume mbr.raw 5 $((88064 * 512)) fat16"
  echo "volume mbr.raw 6 $((106496 * 512)) fat12"
  echo "volume gpt.raw 1 $(($(start 1) * 512)) fat32"
  echo "volume gpt.raw 3 $(($(start 3) * 512)) ntfs"
  echo "# planted files on the NTFS volume"
  echo "fragmented /frag.bin runs=$frag_runs"
  echo "sparse /sparse.bin"
  echo "streams /ads.txt Zone.Identifier secret"
} > "$out/MANIFEST"
du -sh "$out"
