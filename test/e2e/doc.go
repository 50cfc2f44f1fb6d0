// Package e2e proves the chain a user relies on, on real Kubernetes components: kubectl apply
// of an ImageGenerationJob, placement on live GPU load, the real kubelet handing each pod
// exactly the chosen GPU through sdfleet's device plugin, sdgen writing a real PNG, and the job
// reporting Complete.
//
// The suite brings up the local single-node cluster of hack/cluster (etcd, kube-apiserver,
// kube-scheduler, kube-controller-manager, kubelet, containerd, runc), installs sdfleet with
// its Helm chart and four simulated GPUs, runs the tests and takes the cluster down again. It
// needs root and the packages hack/install-prerequisites.sh --cluster installs, so it is
// behind the e2e build tag: `make test-e2e` (part of `make test`) runs it.
package e2e
