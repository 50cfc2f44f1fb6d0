#!/usr/bin/env bash
# Builds the helm command-line tool from its Go module, because release binaries cannot be
# downloaded in every environment sdfleet is developed in. The version is the one go.mod pins for
# the chart tests' Go SDK, so `helm lint` and the tests judge the chart with the same code.
#
#   hack/build-helm.sh
#
# Output: bin/helm/<HELM_VERSION>/helm. A binary that already exists for the pinned version is
# not rebuilt.
set -euo pipefail

HELM_VERSION=${HELM_VERSION:-v3.22.0}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${HELM_DIR:-$ROOT/bin/helm/$HELM_VERSION}
WORK=${HELM_WORKDIR:-$ROOT/bin/.build/helm-$HELM_VERSION}

log() { printf '[build-helm] %s\n' "$*" >&2; }

if [ -x "$OUT/helm" ]; then
  log "helm $HELM_VERSION already built in $OUT"
  exit 0
fi
mkdir -p "$OUT" "$WORK"

# A throw-away module pins helm alone: building it inside sdfleet's module would let helm's
# requirements move sdfleet's own dependency versions.
if [ ! -f "$WORK/.ready" ]; then
  (
    cd "$WORK"
    cat > go.mod <<MOD
module sdfleet.io/hack/helm

go 1.26
MOD
    cat > tools.go <<'GO'
//go:build tools

package tools

import _ "helm.sh/helm/v3/cmd/helm"
GO
    go mod edit -require="helm.sh/helm/v3@$HELM_VERSION"
    GOFLAGS=-mod=mod go mod tidy >/dev/null 2>&1 || GOFLAGS=-mod=mod go mod tidy
  ) >&2
  touch "$WORK/.ready"
fi

log "building helm $HELM_VERSION from source (about two minutes on 2 cores the first time)"
# helm reports its version from these variables, and renders and lints for the Kubernetes
# version of the client-go it was built with; without them it says v3.x-dev and assumes
# Kubernetes 1.20, which charts requiring a newer cluster refuse.
kube_minor=$(cd "$WORK" && go list -m -f '{{.Version}}' k8s.io/client-go | cut -d. -f2)
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$kube_minor"
done
(cd "$WORK" && CGO_ENABLED=0 go build -trimpath -ldflags="$ldflags" -o "$OUT/helm.tmp" helm.sh/helm/v3/cmd/helm)
mv "$OUT/helm.tmp" "$OUT/helm"
log "helm in $OUT"
