#!/usr/bin/env bash
# Builds KWOK (Kubernetes WithOut Kubelet), which plays the kubelet of many fake nodes for the
# scale run (hack/scale-kwok), from its Go module, as hack/build-control-plane.sh builds the
# control plane: release binaries are not downloaded.
#
#   hack/build-kwok.sh
#
# Output: bin/kwok/<KWOK_VERSION>/kwok. A binary that already exists is not rebuilt.
set -euo pipefail

KWOK_VERSION=${KWOK_VERSION:-v0.8.0}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${KWOK_DIR:-$ROOT/bin/kwok/$KWOK_VERSION}
WORK=${CONTROL_PLANE_WORKDIR:-$ROOT/bin/.build}/kwok-$KWOK_VERSION

log() { printf '[build-kwok] %s\n' "$*" >&2; }

if [ -x "$OUT/kwok" ]; then
  log "kwok $KWOK_VERSION already built"
  exit 0
fi
mkdir -p "$OUT" "$WORK"
log "building kwok $KWOK_VERSION from source (a few minutes on 2 cores the first time)"
(
  cd "$WORK"
  if [ ! -f .ready ]; then
    cat > go.mod <<MOD
module sdfleet.io/hack/kwok

go 1.26
MOD
    cat > tools.go <<'GO'
//go:build tools

package tools

import _ "sigs.k8s.io/kwok/cmd/kwok"
GO
    go mod edit -require="sigs.k8s.io/kwok@$KWOK_VERSION"
    GOFLAGS=-mod=mod go mod tidy >/dev/null 2>&1 || GOFLAGS=-mod=mod go mod tidy
    touch .ready
  fi
  CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" -o "$OUT/kwok.tmp" sigs.k8s.io/kwok/cmd/kwok
)
mv "$OUT/kwok.tmp" "$OUT/kwok"
log "kwok in $OUT"
