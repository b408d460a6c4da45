#!/usr/bin/env bash
# Builds testdata/sample/sample.vhd: a 4 MiB dynamic VHD holding an MBR disk (signature
# 5cbea03e) with one small NTFS volume shaped like a Windows install. It is the image the
# README's first command runs on; stored uncompressed so that command needs no other tool.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gen() { python3 -c "import random,sys; sys.stdout.buffer.write(random.Random($2).randbytes($1))"; }

s="$work/stage"
mkdir -p "$s/Windows/System32/config" "$s/Windows/System32/drivers/etc"
printf '[boot loader]\r\ntimeout=30\r\ndefault=multi(0)disk(0)rdisk(0)partition(1)\\WINDOWS\r\n[operating systems]\r\nmulti(0)disk(0)rdisk(0)partition(1)\\WINDOWS="Windows Server 2003" /fastdetect\r\n' > "$s/boot.ini"
printf '127.0.0.1       localhost\r\n' > "$s/Windows/System32/drivers/etc/hosts"
gen 8192 1 > "$s/Windows/System32/config/SYSTEM"
n=2
for f in hal.dll ntoskrnl.exe kernel32.dll ntdll.dll drivers/atapi.sys drivers/storahci.sys; do
  gen 3000 "$n" > "$s/Windows/System32/$f"
  n=$((n + 1))
done
find "$s" -exec touch -h -d '2024-01-02 03:04:05 UTC' {} +

vol="$work/vol.ntfs"
truncate -s 3M "$vol"
mkntfs -F -Q -q -c 512 -p 2048 -H 255 -S 63 -L SAMPLE "$vol" 2>/dev/null
wimcapture "$s" "$work/s.wim" sample --compress=none >/dev/null
wimapply "$work/s.wim" 1 "$vol" >/dev/null
printf '[ZoneTransfer]\r\nZoneId=3\r\n' > "$work/zone"
ntfscp -q -N Zone.Identifier "$vol" "$work/zone" /Windows/System32/drivers/etc/hosts

disk="$work/disk.raw"
truncate -s 4M "$disk"
printf 'label: dos\nlabel-id: 0x5cbea03e\nunit: sectors\nstart=2048, size=6144, type=7, bootable\n' | sfdisk -q "$disk"
dd if="$vol" of="$disk" bs=1M seek=1 conv=notrunc status=none
qemu-img convert -f raw -O vpc -o subformat=dynamic "$disk" "$root/testdata/sample/sample.vhd"
qemu-img compare -q -f raw -F vpc "$disk" "$root/testdata/sample/sample.vhd"
ls -l "$root/testdata/sample/sample.vhd"
