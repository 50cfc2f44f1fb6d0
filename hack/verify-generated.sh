#!/usr/bin/env bash
# Fails when the generated files (deepcopy, CRDs, RBAC, assembly kernels, SPIR-V shaders) do not match what the generators produce
# from the current sources. It works in a clean clone and in a working tree with uncommitted
# changes alike: it compares the files before and after regeneration, not against git.
set -euo pipefail
cd "$(dirname "$0")/.."
generated=(api/v1alpha1/zz_generated.deepcopy.go config/crd/bases config/rbac charts/sdfleet/files inference/backend/cpu/gemm/kernel_amd64.s inference/backend/vulkan/shaders)
snapshot() { { find "${generated[@]}" -type f 2>/dev/null || true; } | LC_ALL=C sort | xargs -r sha256sum; }
before=$(snapshot)
make --no-print-directory generate manifests >/dev/null
go generate ./inference/backend/cpu/gemm ./inference/backend/vulkan
after=$(snapshot)
if [ "$before" != "$after" ]; then
  echo "Generated files were stale and have been regenerated; review and commit them:" >&2
  diff <(echo "$before") <(echo "$after") >&2 || true
  exit 1
fi
echo "generated files are up to date"
