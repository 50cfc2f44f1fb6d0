// Package e2e proves the chain a user relies on, on real Kubernetes components: kubectl apply
// of an ImageGenerationJob, placement on live GPU load, the real kubelet handing each pod
// exactly the chosen GPU through sdfleet's device plugin, sdgen writing a real PNG, and the job
// reporting Complete.
//
// The suite pushes sdfleet's images with `make push` to a local CNCF Distribution registry
// (bin/registry, on loopback), brings up the local single-node cluster of hack/cluster (etcd,
// kube-apiserver, kube-scheduler, kube-controller-manager, kubelet, containerd, runc) with its
// containerd pulling from that registry, installs the previous release of sdfleet's Helm chart
// with four simulated GPUs, upgrades it to the current chart while a job runs, runs the tests
// and takes the cluster down again. It needs root and the packages
// hack/install-prerequisites.sh --cluster installs, so it is behind the e2e build tag:
// `make test-e2e` (part of `make test`) runs it.
package e2e
