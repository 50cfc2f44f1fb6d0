#!/usr/bin/env bash
# Packs the binaries `make build` made into OCI image archives in bin/images/, for the local
# cluster (hack/cluster/up.sh imports them), and with PUSH=1 pushes them to IMAGE_REGISTRY
# (`make push`). No Docker engine is involved: each image is one layer holding the binary (and,
# for the cgo-built device plugin, the C libraries it links to).
#
#   hack/build-images.sh [TAG]      # default tag: dev
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TAG=${1:-dev}
REGISTRY=${IMAGE_REGISTRY:-ghcr.io/sdfleet}
OUT=$ROOT/bin/images
mkdir -p "$OUT"
cd "$ROOT"

# PUSH=1 also pushes each image to IMAGE_REGISTRY (`make push`); INSECURE_REGISTRY=1 over plain HTTP.
mkimage() { go run ./hack/mkimage ${PUSH:+-push} ${INSECURE_REGISTRY:+-insecure} "$@"; }

for name in manager sdgen; do
  [ -x "bin/$name" ] || { echo "build-images: bin/$name is missing: run make build" >&2; exit 1; }
  mkimage -name "$REGISTRY/$name:$TAG" -o "$OUT/$name.tar" -user 65532:65532 "bin/$name=/$name"
  echo "build-images: $REGISTRY/$name:$TAG -> $OUT/$name.tar" >&2
done

if [ -x bin/deviceplugin ]; then
  # The device plugin is linked against glibc (cgo, for NVML's dlopen): ship the loader and the
  # libraries ldd names, at the paths the binary looks for them.
  libs=()
  while read -r lib; do
    [ -n "$lib" ] && libs+=("$lib=$lib")
  done < <(ldd bin/deviceplugin | grep -oE '/[^ ]+\.so[^ ]*' | sort -u)
  mkimage -name "$REGISTRY/deviceplugin:$TAG" -o "$OUT/deviceplugin.tar" "bin/deviceplugin=/deviceplugin" "${libs[@]}"
  echo "build-images: $REGISTRY/deviceplugin:$TAG -> $OUT/deviceplugin.tar" >&2
fi
