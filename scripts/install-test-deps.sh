#!/usr/bin/env bash
# Installs the Debian packages the tests use as fixtures builders and outside oracles.
set -euo pipefail
pkgs=(ntfs-3g wimtools libhivex-bin libwin-hivex-perl fdisk gdisk dosfstools mtools
      gcc-mingw-w64-i686 gcc-mingw-w64-x86-64 binutils-mingw-w64 gcab cabextract
      sleuthkit zstd xz-utils qemu-utils libvshadow-utils slurm-wlm munge
      groff-base zsh fish bsdutils chromium ovmf seabios ewf-tools)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# QEMU's PC emulator, which boots converted images under OVMF (tests/ovmf_boot.rs). A
# qemu-utils newer than the release's (a backport) breaks the release's qemu-system-common,
# and installing it would remove qemu-img: then the release's qemu-system-x86 is unpacked
# under /opt/rehost-qemu instead, its libraries installed, and a qemu-system-x86_64 in
# /usr/local/bin runs it.
if ! command -v qemu-system-x86_64 >/dev/null; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  plan=$(apt-get install -s -qq --no-install-recommends qemu-system-x86)
  if ! grep -q '^Remv' <<<"$plan"; then
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends qemu-system-x86 >/dev/null
  else
    debs=$(mktemp -d)
    (cd "$debs" && apt-get download -qq qemu-system-x86 qemu-system-common qemu-system-data 2>/dev/null)
    libs=$(for d in "$debs"/qemu-system-x86_*.deb "$debs"/qemu-system-common_*.deb; do
        dpkg-deb -f "$d" Depends; echo ,; done | tr ',' '\n' \
      | sed -e 's/([^)]*)//g' -e 's/|.*//' -e 's/ //g' \
      | grep -v -e '^$' -e '^qemu-' -e '^seabios$' -e '^ipxe-qemu$' -e '^adduser$' | sort -u)
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends --no-remove --no-upgrade $libs >/dev/null
    $sudo mkdir -p /opt/rehost-qemu
    for d in "$debs"/*.deb; do $sudo dpkg-deb -x "$d" /opt/rehost-qemu; done
    printf '%s\n' '#!/bin/sh' \
      'QEMU_MODULE_DIR=/opt/rehost-qemu/usr/lib/x86_64-linux-gnu/qemu; export QEMU_MODULE_DIR' \
      'exec /opt/rehost-qemu/usr/bin/qemu-system-x86_64 -L /opt/rehost-qemu/usr/share/qemu "$@"' \
      | $sudo tee /usr/local/bin/qemu-system-x86_64 >/dev/null
    $sudo chmod 755 /usr/local/bin/qemu-system-x86_64
    rm -rf "$debs"
  fi
fi

# Python oracles: libvhdi (VHD and VHDX differencing chains), dissect.target (inspect).
if ! python3 -c "import pyvhdi" 2>/dev/null; then
  python3 -m pip install --quiet libvhdi-python==20260901
fi
if ! python3 -c "import dissect.target" 2>/dev/null; then
  python3 -m pip install --quiet dissect.target==3.25.1
fi
