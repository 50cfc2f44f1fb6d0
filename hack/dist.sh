#!/usr/bin/env bash
# Builds the kubectl sdfleet release: one archive per platform and a Krew plugin manifest
# naming each archive's SHA-256, into dist/.
#
#   VERSION=v0.1.0 hack/dist.sh                         # every platform
#   PLATFORMS="linux/amd64" hack/dist.sh                # some of them
#   DOWNLOAD_URL=https://github.com/sdfleet/sdfleet/releases/download/v0.1.0 hack/dist.sh
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
PLATFORMS=${PLATFORMS:-linux/amd64 linux/arm64 darwin/amd64 darwin/arm64}
DOWNLOAD_URL=${DOWNLOAD_URL:-https://github.com/sdfleet/sdfleet/releases/download/$VERSION}
GO=${GO:-go}
if ! [[ $VERSION =~ ^v[0-9]+\.[0-9]+\.[0-9]+ ]]; then
  echo "dist: version $VERSION is not vMAJOR.MINOR.PATCH; Krew accepts only such versions (set VERSION)" >&2
fi
out=dist
rm -rf "$out"
mkdir -p "$out"

platforms_yaml=""
for platform in $PLATFORMS; do
  os=${platform%/*}
  arch=${platform#*/}
  name="kubectl-sdfleet_${VERSION}_${os}_${arch}"
  stage="$out/$name"
  mkdir -p "$stage"
  echo "dist: go build kubectl-sdfleet for $os/$arch" >&2
  CGO_ENABLED=0 GOOS=$os GOARCH=$arch "$GO" build -trimpath \
    -ldflags="-s -w -X github.com/sdfleet/sdfleet/internal/version.Version=$VERSION" \
    -o "$stage/kubectl-sdfleet" ./cmd/kubectl-sdfleet
  cp README.md "$stage/README.md"
  # Reproducible archives: fixed owner, order and times.
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$stage" -czf "$out/$name.tar.gz" kubectl-sdfleet README.md
  rm -rf "$stage"
  sum=$(sha256sum "$out/$name.tar.gz" | cut -d' ' -f1)
  platforms_yaml+="  - selector:
      matchLabels:
        os: $os
        arch: $arch
    uri: $DOWNLOAD_URL/$name.tar.gz
    sha256: $sum
    bin: kubectl-sdfleet
    files:
    - from: kubectl-sdfleet
      to: .
    - from: README.md
      to: .
"
done

cat >"$out/sdfleet.yaml" <<YAML
apiVersion: krew.googlecontainertools.github.com/v1alpha2
kind: Plugin
metadata:
  name: sdfleet
spec:
  version: $VERSION
  homepage: https://github.com/sdfleet/sdfleet
  shortDescription: Look at sdfleet's GPUs and generate images
  description: |
    kubectl sdfleet shows every GPU of a cluster running sdfleet (load, health, learned
    speed, images running and waiting), submits Stable Diffusion jobs through the sdfleet
    gateway and downloads their images, and explains where each image was placed.
  platforms:
$platforms_yaml
YAML
echo "dist: $(ls "$out" | tr '\n' ' ')" >&2
