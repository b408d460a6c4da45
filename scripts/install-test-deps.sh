#!/usr/bin/env bash
# Installs the Debian packages the tests use as fixtures builders and outside oracles.
set -euo pipefail
pkgs=(ntfs-3g wimtools libhivex-bin libwin-hivex-perl fdisk gdisk dosfstools mtools
      gcc-mingw-w64-i686 gcc-mingw-w64-x86-64 binutils-mingw-w64 gcab cabextract
      sleuthkit zstd xz-utils qemu-utils libvshadow-utils slurm-wlm munge
      groff-base zsh fish bsdutils chromium)
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

# Python oracles: libvhdi (VHD and VHDX differencing chains), dissect.target (inspect).
if ! python3 -c "import pyvhdi" 2>/dev/null; then
  python3 -m pip install --quiet libvhdi-python==20260901
fi
if ! python3 -c "import dissect.target" 2>/dev/null; then
  python3 -m pip install --quiet dissect.target==3.25.1
fi
