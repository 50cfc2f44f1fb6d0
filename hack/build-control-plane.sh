#!/usr/bin/env bash
# Builds the Kubernetes control-plane binaries sdfleet's tests run on, from their Go modules,
# because release binaries cannot be downloaded in every environment sdfleet is developed in.
#
#   hack/build-control-plane.sh [component...]
#
# Components: kube-apiserver etcd kubectl (default: kube-apiserver etcd kubectl).
# Output: bin/k8s/<KUBE_VERSION>/ (kube binaries) and bin/k8s/<KUBE_VERSION>/etcd.
# A binary that already exists for the pinned version is not rebuilt.
set -euo pipefail

KUBE_VERSION=${KUBE_VERSION:-v1.37.2}
ETCD_VERSION=${ETCD_VERSION:-v3.6.8}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${ASSETS_DIR:-$ROOT/bin/k8s/$KUBE_VERSION}
WORK=${CONTROL_PLANE_WORKDIR:-$ROOT/bin/.build}
mkdir -p "$OUT" "$WORK"

components=("$@")
[ ${#components[@]} -gt 0 ] || components=(kube-apiserver etcd kubectl)

log() { printf '[build-control-plane] %s\n' "$*" >&2; }

# staging_module writes a throw-away module that requires k8s.io/kubernetes at KUBE_VERSION and
# replaces every staging repository it names (k8s.io/api, k8s.io/apiserver, ...) with the
# published v0.X.Y of the same version: k8s.io/kubernetes' own go.mod points them at ./staging.
staging_module() {
  local dir=$WORK/kubernetes-$KUBE_VERSION
  if [ -f "$dir/.ready" ]; then echo "$dir"; return; fi
  mkdir -p "$dir"
  local staging=v0.${KUBE_VERSION#v1.}
  (
    cd "$dir"
    cat > go.mod <<MOD
module sdfleet.io/hack/kubernetes

go 1.26
MOD
    cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
    GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" > kube.json
    local gomod
    gomod=$(sed -n 's/.*"GoMod": "\(.*\)".*/\1/p' kube.json)
    local replaces=()
    while read -r mod; do
      replaces+=("-replace=$mod=$mod@$staging")
    done < <(sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$gomod")
    [ ${#replaces[@]} -gt 0 ] || { log "no staging replaces found in $gomod"; exit 1; }
    go mod edit -require="k8s.io/kubernetes@$KUBE_VERSION" "${replaces[@]}"
    GOFLAGS=-mod=mod go mod tidy >/dev/null 2>&1 || GOFLAGS=-mod=mod go mod tidy
  ) >&2
  touch "$dir/.ready"
  echo "$dir"
}

etcd_module() {
  local dir=$WORK/etcd-$ETCD_VERSION
  if [ -f "$dir/.ready" ]; then echo "$dir"; return; fi
  mkdir -p "$dir"
  (
    cd "$dir"
    cat > go.mod <<MOD
module sdfleet.io/hack/etcd

go 1.26
MOD
    cat > tools.go <<'GO'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
GO
    go mod edit -require="go.etcd.io/etcd/server/v3@$ETCD_VERSION"
    for m in api client/pkg client/v3 pkg; do
      go mod edit -replace="go.etcd.io/etcd/$m/v3=go.etcd.io/etcd/$m/v3@$ETCD_VERSION"
    done
    GOFLAGS=-mod=mod go mod tidy >/dev/null 2>&1 || GOFLAGS=-mod=mod go mod tidy
  ) >&2
  touch "$dir/.ready"
  echo "$dir"
}

version_ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(echo "$KUBE_VERSION" | cut -d. -f2) -X k8s.io/client-go/pkg/version.gitVersion=$KUBE_VERSION"

kube=()
for c in "${components[@]}"; do
  case "$c" in
    kube-apiserver|kube-scheduler|kube-controller-manager|kubelet|kubectl)
      if [ -x "$OUT/$c" ]; then log "$c $KUBE_VERSION already built"; else kube+=("$c"); fi ;;
    etcd)
      if [ -x "$OUT/etcd" ]; then log "etcd $ETCD_VERSION already built"; else
        log "building etcd $ETCD_VERSION (about a minute)"
        dir=$(etcd_module)
        (cd "$dir" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$OUT/etcd.tmp" go.etcd.io/etcd/server/v3)
        mv "$OUT/etcd.tmp" "$OUT/etcd"
      fi ;;
    *) log "unknown component $c (expected kube-apiserver, kube-scheduler, kube-controller-manager, kubelet, kubectl or etcd)"; exit 2 ;;
  esac
done

if [ ${#kube[@]} -gt 0 ]; then
  log "building ${kube[*]} $KUBE_VERSION from source (kube-apiserver takes about 8 minutes on 2 cores the first time)"
  dir=$(staging_module)
  pkgs=()
  for c in "${kube[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
  tmp=$(mktemp -d "$WORK/out.XXXXXX")
  # One go build for all commands shares the compile work between them.
  (cd "$dir" && CGO_ENABLED=0 go build -trimpath -ldflags="$version_ldflags" -o "$tmp/" "${pkgs[@]}")
  for c in "${kube[@]}"; do mv "$tmp/$c" "$OUT/$c"; done
  rmdir "$tmp"
fi
log "control plane binaries in $OUT"
