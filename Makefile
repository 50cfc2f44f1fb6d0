# sdfleet's build, generation and test entry points. `make help` lists them.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

KUBE_VERSION ?= v1.37.2
ETCD_VERSION ?= v3.6.8
HELM_VERSION ?= v3.22.0
KWOK_VERSION ?= v0.8.0
ASSETS_DIR   ?= $(CURDIR)/bin/k8s/$(KUBE_VERSION)
export KUBEBUILDER_ASSETS := $(ASSETS_DIR)

GO          ?= go
GO_TEST_FLAGS ?= -count=1 -timeout=30m
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS     := -s -w -X github.com/sdfleet/sdfleet/internal/version.Version=$(VERSION)

CONTROLLER_GEN := $(GO) tool controller-gen

##@ General

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: generate
generate: ## Generate deepcopy code from the API types.
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=./api/...

.PHONY: manifests
manifests: ## Generate CRDs and RBAC roles from the code's markers.
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:artifacts:config=config/crd/bases
	$(CONTROLLER_GEN) rbac:roleName=manager-role paths=./controllers/... output:rbac:artifacts:config=config/rbac
	@if ls deviceplugin/*/rbac.go >/dev/null 2>&1 || grep -rqs '+kubebuilder:rbac' deviceplugin; then \
	  $(CONTROLLER_GEN) rbac:roleName=deviceplugin-role paths=./deviceplugin/... output:rbac:artifacts:config=config/rbac/deviceplugin; fi
	$(CONTROLLER_GEN) rbac:roleName=gateway-role paths=./gateway/... output:rbac:artifacts:config=config/rbac/gateway
	charts/sync-generated.sh

.PHONY: verify
verify: ## Fail when generated files are stale or code is not gofmt'ed.
	hack/verify-generated.sh
	@out=$$(gofmt -l $$(git ls-files --cached --others --exclude-standard '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

.PHONY: vet
vet: ## Run go vet (the end-to-end suite included).
	$(GO) vet -tags e2e ./...

.PHONY: lint
lint: ## Run staticcheck (the end-to-end suite included).
	$(GO) tool staticcheck -tags e2e ./...

##@ Build

.PHONY: control-plane
control-plane: ## Build kube-apiserver and etcd from source into bin/k8s/<version> (cached).
	KUBE_VERSION=$(KUBE_VERSION) ETCD_VERSION=$(ETCD_VERSION) ASSETS_DIR=$(ASSETS_DIR) hack/build-control-plane.sh kube-apiserver etcd

.PHONY: scale-binaries
scale-binaries: ## Build kube-scheduler, kube-controller-manager and KWOK for the scale run (hack/scale-kwok; cached).
	KUBE_VERSION=$(KUBE_VERSION) ETCD_VERSION=$(ETCD_VERSION) ASSETS_DIR=$(ASSETS_DIR) hack/build-control-plane.sh kube-scheduler kube-controller-manager
	KWOK_VERSION=$(KWOK_VERSION) hack/build-kwok.sh

.PHONY: helm
helm: ## Build helm from source into bin/helm/<version> (cached).
	HELM_VERSION=$(HELM_VERSION) hack/build-helm.sh

.PHONY: build
build: ## Build the binaries of the images into bin/ (the kubectl plugin, a client, is made by dist).
	@mkdir -p bin
	@for cmd in $$(ls cmd); do \
	  if [ "$$cmd" = kubectl-sdfleet ]; then continue; fi; \
	  if [ "$$cmd" = deviceplugin ]; then \
	    echo "go build (cgo, lazy binding) ./cmd/$$cmd"; \
	    CGO_ENABLED=1 CGO_CFLAGS='-O2 -g -Wno-deprecated-declarations' $(GO) build -trimpath -ldflags='$(LDFLAGS) -extldflags=-Wl,-z,lazy' -o bin/$$cmd ./cmd/$$cmd; \
	  else \
	    echo "go build ./cmd/$$cmd"; \
	    CGO_ENABLED=0 $(GO) build -trimpath -ldflags='$(LDFLAGS)' -o bin/$$cmd ./cmd/$$cmd; \
	  fi; done

.PHONY: dist
dist: ## Build the kubectl sdfleet release archives and their Krew manifest into dist/.
	VERSION=$(VERSION) GO=$(GO) hack/dist.sh

.PHONY: images
images: build ## Pack the binaries into OCI image archives in bin/images (for the local cluster).
	hack/build-images.sh

TAG ?= dev
.PHONY: push
push: build ## Push the four images to REGISTRY=host:port/path (INSECURE=1: plain HTTP); prints the helm install line.
	@test -n "$(REGISTRY)" || { echo "make push: set REGISTRY=host:port/path, for example REGISTRY=registry.example.com/sdfleet" >&2; exit 1; }
	IMAGE_REGISTRY=$(REGISTRY) PUSH=1 INSECURE_REGISTRY=$(INSECURE) hack/build-images.sh $(TAG)
	@echo "helm install sdfleet charts/sdfleet -n sdfleet-system --create-namespace \\"
	@echo "  --set manager.image.repository=$(REGISTRY)/manager,manager.image.tag=$(TAG) \\"
	@echo "  --set devicePlugin.image.repository=$(REGISTRY)/deviceplugin,devicePlugin.image.tag=$(TAG) \\"
	@echo "  --set gateway.image.repository=$(REGISTRY)/gateway,gateway.image.tag=$(TAG) \\"
	@echo "  --set manager.defaultInferenceImage=$(REGISTRY)/sdgen:$(TAG)"

.PHONY: registry
registry: ## Build the local registry (CNCF Distribution, hack/registry) into bin/registry.
	hack/build-registry.sh

##@ Demo and local cluster

.PHONY: demo
demo: ## Run sdfleet end to end on this machine: local cluster, 4 simulated GPUs, an 8-image job.
	hack/demo.sh

.PHONY: demo-down
demo-down: ## Stop the demo's cluster and leave the host as it was.
	hack/cluster/down.sh

.PHONY: cluster-up
cluster-up: ## Start a real single-node Kubernetes on this machine (prints its KUBECONFIG).
	hack/install-prerequisites.sh --cluster
	hack/cluster/up.sh

.PHONY: cluster-down
cluster-down: ## Stop the local cluster and leave the host as it was.
	hack/cluster/down.sh

##@ Test

.PHONY: test
test: verify vet lint control-plane helm scale-binaries ## Run every check and test (what CI runs), the end-to-end suite included.
	$(GO) test $(GO_TEST_FLAGS) ./...
	cd hack/registry && $(GO) vet ./... && $(GO) test $(GO_TEST_FLAGS) ./...
	$(GO) test $(GO_TEST_FLAGS) -race ./inference/backend/cpu/workpool/ ./controllers/ledger/
	$(GO) test $(GO_TEST_FLAGS) -tags sdfleet_purego ./inference/backend/...
	$(MAKE) --no-print-directory test-e2e

.PHONY: test-e2e
test-e2e: control-plane ## Run the end-to-end suite on a local cluster (root; hack/install-prerequisites.sh --cluster).
	hack/install-prerequisites.sh --cluster
	$(GO) test -tags e2e -count=1 -timeout 40m -v ./test/e2e/

.PHONY: test-unit
test-unit: control-plane helm scale-binaries ## Run the Go tests only.
	$(GO) test $(GO_TEST_FLAGS) ./...
	cd hack/registry && $(GO) test $(GO_TEST_FLAGS) ./...
