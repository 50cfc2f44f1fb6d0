#!/usr/bin/env bash
# Installs the system packages sdfleet's build and tests need and a fresh Debian machine may
# lack. Go itself (1.26) must already be installed. Safe to run again: it installs only what is
# missing.
set -euo pipefail

need=()
command -v make >/dev/null || need+=(make)
command -v git >/dev/null || need+=(git)
command -v gcc >/dev/null || need+=(gcc libc6-dev) # cgo: the device plugin loads NVML through it

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "install-prerequisites: missing ${need[*]}; run this script as root or install them" >&2
    exit 1
  fi
  echo "install-prerequisites: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

if ! command -v go >/dev/null; then
  echo "install-prerequisites: Go 1.26 is required and not on PATH" >&2
  exit 1
fi
echo "install-prerequisites: ok ($(go version))" >&2
