#!/usr/bin/env bash
# Installs the system packages sdfleet's build and tests need and a fresh Debian machine may
# lack. Go itself (1.26) must already be installed. Safe to run again: it installs only what is
# missing.
#
#   hack/install-prerequisites.sh            # build and unit/envtest tests
#   hack/install-prerequisites.sh --cluster  # also the local cluster (containerd, runc, CNI)
set -euo pipefail

cluster=false
for arg in "$@"; do
  case "$arg" in
    --cluster) cluster=true ;;
    *) echo "install-prerequisites: unknown argument $arg (expected --cluster)" >&2; exit 2 ;;
  esac
done

need=()
command -v make >/dev/null || need+=(make)
command -v git >/dev/null || need+=(git)
command -v gcc >/dev/null || need+=(gcc libc6-dev) # cgo: the device plugin loads NVML through it
command -v prometheus >/dev/null || need+=(prometheus) # the dashboard test evaluates every query in a real Prometheus
# The Vulkan backend's tests run on Mesa's software device (lavapipe) with the validation layers;
# glslc regenerates the committed SPIR-V shaders (make verify) and vulkaninfo reports the devices.
# (grep without -q: it reads all of ldconfig's output, which pipefail would otherwise see die of SIGPIPE)
ldconfig -p | grep 'libvulkan\.so\.1 ' >/dev/null || need+=(libvulkan1)
[ -e /usr/share/vulkan/icd.d/lvp_icd.x86_64.json ] || need+=(mesa-vulkan-drivers)
[ -e /usr/share/vulkan/explicit_layer.d/VkLayer_khronos_validation.json ] || need+=(vulkan-validationlayers)
command -v glslc >/dev/null || need+=(glslc)
command -v vulkaninfo >/dev/null || need+=(vulkan-tools)
command -v chromium >/dev/null || need+=(chromium) # the web dashboard's tests drive a real browser
if $cluster; then
  command -v containerd >/dev/null || need+=(containerd)
  command -v runc >/dev/null || need+=(runc)
  [ -x /usr/lib/cni/loopback ] || need+=(containernetworking-plugins)
  command -v openssl >/dev/null || need+=(openssl)
  command -v nsenter >/dev/null || need+=(util-linux)
  command -v curl >/dev/null || need+=(curl)       # the gateway's end-to-end test drives it as clients do
  command -v node >/dev/null || need+=(nodejs)     # ... and runs the official OpenAI client on Node
  command -v npm >/dev/null || need+=(npm)
fi

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
