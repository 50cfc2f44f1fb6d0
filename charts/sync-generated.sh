#!/usr/bin/env bash
# Copies what `make manifests` generates from the code's markers into the Helm chart, which
# renders it from there: the CRDs (config/crd/bases) and the ClusterRoles of the operator
# (config/rbac/role.yaml), the node agent (config/rbac/deviceplugin/role.yaml) and the gateway
# (config/rbac/gateway/role.yaml), and the job policy's ValidatingAdmissionPolicy (config/policy),
# whose CEL is written once. The chart's copies are never edited by hand; test/packaging fails
# when they differ from config/.
#
#   charts/sync-generated.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CHART=$ROOT/charts/sdfleet

copy() {
  local from=$1 to=$2
  if [ ! -f "$from" ]; then
    echo "sync-generated: $from is missing; run \`make manifests\` first" >&2
    exit 1
  fi
  cp "$from" "$to"
}

mkdir -p "$CHART/files/crds" "$CHART/files/rbac" "$CHART/files/policy"
# Remove CRDs the API no longer has before copying the current ones.
rm -f "$CHART"/files/crds/*.yaml
for crd in "$ROOT"/config/crd/bases/*.yaml; do
  copy "$crd" "$CHART/files/crds/$(basename "$crd")"
done
copy "$ROOT/config/rbac/role.yaml" "$CHART/files/rbac/manager-role.yaml"
copy "$ROOT/config/rbac/deviceplugin/role.yaml" "$CHART/files/rbac/deviceplugin-role.yaml"
copy "$ROOT/config/rbac/gateway/role.yaml" "$CHART/files/rbac/gateway-role.yaml"
copy "$ROOT/config/policy/validating_admission_policy.yaml" "$CHART/files/policy/validating_admission_policy.yaml"
