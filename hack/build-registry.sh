#!/usr/bin/env bash
# Builds the local registry of hack/registry (CNCF Distribution with filesystem storage) into
# bin/registry. It is a module of its own, pinned by hack/registry/go.mod, so that building it
# never changes sdfleet's dependency versions. Go's build cache makes a rebuild a link.
#
#   hack/build-registry.sh        # then: bin/registry -addr 127.0.0.1:5000 -root /tmp/registry
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$ROOT/bin"
cd "$ROOT/hack/registry"
CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$ROOT/bin/registry" .
echo "[build-registry] $ROOT/bin/registry" >&2
