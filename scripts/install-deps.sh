#!/usr/bin/env bash
# Installs the Debian packages moecap needs to build and test, only when some are missing.
# Safe to run repeatedly; runs as root (or through sudo when available).
set -euo pipefail
pkgs=(build-essential pkg-config libopenblas-dev libcjson-dev libcmocka-dev libunwind-dev
      libpapi-dev libcurl4-openssl-dev python3 python3-numpy python3-torch)
# Extra packages a caller may ask for (e.g. chromium for HTML screenshots): scripts/install-deps.sh chromium
pkgs+=("$@")
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >&2
