# Multi-stage build of sdfleet's four binaries, one image target each:
#   docker build --target manager      -t sdfleet/manager .
#   docker build --target deviceplugin -t sdfleet/deviceplugin .
#   docker build --target sdgen        -t sdfleet/sdgen .
#   docker build --target gateway      -t sdfleet/gateway .
# manager and gateway are static (CGO_ENABLED=0) on distroless static, non-root; sdgen is built
# without cgo too but needs glibc and the Vulkan loader (see its stage). The device plugin needs
# cgo: go-nvml opens libnvidia-ml with dlopen at run time (the NVIDIA container toolkit mounts
# it), so it is linked with lazy binding on a glibc base.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY controllers/ controllers/
COPY deviceplugin/ deviceplugin/
COPY dashboard/ dashboard/
COPY gateway/ gateway/
COPY inference/ inference/
COPY internal/ internal/
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X github.com/sdfleet/sdfleet/internal/version.Version=${VERSION}" -o /out/manager ./cmd/manager
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X github.com/sdfleet/sdfleet/internal/version.Version=${VERSION}" -o /out/sdgen ./cmd/sdgen
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X github.com/sdfleet/sdfleet/internal/version.Version=${VERSION}" -o /out/gateway ./cmd/gateway
RUN CGO_ENABLED=1 go build -trimpath -ldflags="-s -w -X github.com/sdfleet/sdfleet/internal/version.Version=${VERSION} -extldflags=-Wl,-z,lazy" -o /out/deviceplugin ./cmd/deviceplugin

FROM gcr.io/distroless/static-debian12:nonroot AS manager
COPY --from=build /out/manager /manager
USER 65532:65532
ENTRYPOINT ["/manager"]

# sdgen opens the Vulkan loader at run time (purego, which links the binary to glibc): its image
# carries the loader and Mesa's drivers, lavapipe for simulated GPUs and RADV for AMD ones; on
# NVIDIA nodes the container toolkit mounts the driver's Vulkan ICD.
FROM debian:12-slim AS sdgen
RUN apt-get update && apt-get install -y --no-install-recommends libvulkan1 mesa-vulkan-drivers && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/sdgen /sdgen
USER 65532:65532
ENTRYPOINT ["/sdgen"]

FROM gcr.io/distroless/static-debian12:nonroot AS gateway
COPY --from=build /out/gateway /gateway
USER 65532:65532
ENTRYPOINT ["/gateway"]

# The device plugin runs as root: it creates sockets in the kubelet's device-plugins folder.
FROM gcr.io/distroless/base-debian12 AS deviceplugin
COPY --from=build /out/deviceplugin /deviceplugin
ENTRYPOINT ["/deviceplugin"]
