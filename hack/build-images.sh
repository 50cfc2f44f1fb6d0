#!/usr/bin/env bash
# Packs the binaries `make build` made into OCI image archives in bin/images/, for the local
# cluster (hack/cluster/up.sh imports them), or with PUSH=1 pushes them to IMAGE_REGISTRY
# instead (`make push`; the archives the local cluster imports are left as they are). No Docker engine is involved: each image is one layer holding the binary (and,
# for the device plugin and sdgen, the C libraries they load: glibc, NVML's dlopen, the Vulkan
# loader and Mesa's drivers).
#
#   hack/build-images.sh [TAG]      # default tag: dev
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TAG=${1:-dev}
REGISTRY=${IMAGE_REGISTRY:-ghcr.io/sdfleet}
OUT=$ROOT/bin/images
mkdir -p "$OUT"
cd "$ROOT"

# mkimage NAME ARCHIVE ARGS...: writes the image NAME:TAG to bin/images/ARCHIVE, or with PUSH=1
# pushes it to IMAGE_REGISTRY (INSECURE_REGISTRY=1: over plain HTTP). The reference by digest
# goes to standard error.
mkimage() {
  local name=$1 archive=$2
  shift 2
  if [ -n "${PUSH:-}" ]; then
    go run ./hack/mkimage -name "$REGISTRY/$name:$TAG" -push ${INSECURE_REGISTRY:+-insecure} "$@"
    echo "build-images: pushed $REGISTRY/$name:$TAG" >&2
  else
    go run ./hack/mkimage -name "$REGISTRY/$name:$TAG" -o "$OUT/$archive" "$@"
    echo "build-images: $REGISTRY/$name:$TAG -> $OUT/$archive" >&2
  fi
}

# sharedLibs prints the libraries ldd names for its arguments, one path a line (not the
# "file:" headers ldd prints for several arguments).
sharedLibs() { ldd "$@" 2>/dev/null | grep -v ':$' | grep -oE '/[^ ]+\.so[^ ]*' | sort -u; }

for name in manager sdgen gateway; do
  [ -x "bin/$name" ] || { echo "build-images: bin/$name is missing: run make build" >&2; exit 1; }
  extra=()
  if [ "$name" = sdgen ]; then
    # sdgen opens the Vulkan loader at run time (purego, which links it to glibc). The image
    # carries the loader and Mesa's lavapipe (simulated GPUs) and RADV (AMD) drivers with their
    # ICD files; on NVIDIA nodes the container toolkit mounts the driver's own ICD.
    icds=(/usr/share/vulkan/icd.d/lvp_icd.x86_64.json /usr/share/vulkan/icd.d/radeon_icd.x86_64.json)
    # awk reads all of ldconfig's output: exiting at the first match would kill ldconfig with
    # SIGPIPE, which pipefail turns into a failed build.
    loader=$(ldconfig -p | awk '/libvulkan\.so\.1 .*x86-64/ && !found {print $NF; found = 1}')
    [ -n "$loader" ] && [ -e "${icds[0]}" ] || { echo "build-images: libvulkan1 and mesa-vulkan-drivers are missing: run hack/install-prerequisites.sh" >&2; exit 1; }
    drivers=()
    for icd in "${icds[@]}"; do
      extra+=("$icd=$icd")
      drivers+=("$(sed -n 's/.*"library_path": *"\([^"]*\)".*/\1/p' "$icd")")
    done
    while read -r lib; do
      extra+=("$lib=$lib")
    done < <({ printf '%s\n' "$loader" "${drivers[@]}"; sharedLibs "bin/$name" "$loader" "${drivers[@]}"; } | sort -u)
  fi
  mkimage "$name" "$name.tar" -user 65532:65532 "bin/$name=/$name" ${extra[@]+"${extra[@]}"}
done

if [ -x bin/deviceplugin ]; then
  # The device plugin is linked against glibc (cgo, for NVML's dlopen): ship the loader and the
  # libraries ldd names, at the paths the binary looks for them.
  libs=()
  while read -r lib; do
    [ -n "$lib" ] && libs+=("$lib=$lib")
  done < <(sharedLibs bin/deviceplugin)
  mkimage deviceplugin deviceplugin.tar "bin/deviceplugin=/deviceplugin" "${libs[@]}"
fi
