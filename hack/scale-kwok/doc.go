// Command scale-kwok runs sdfleet at fleet scale with the real Kubernetes scheduler: it starts
// kube-apiserver and etcd (test/envtest), kube-scheduler and kube-controller-manager (from
// bin/k8s/<version>), KWOK (bin/kwok/<version>, built by hack/build-kwok.sh) playing the
// kubelet of many fake nodes whose capacity carries sdfleet.io/gpu-N, a fake node agent per
// node publishing simulated GPUs through the agent's own publisher package, and the real
// manager (cmd/manager) as its own process. It submits the images across several jobs in
// several namespaces; KWOK's stages run each bound pod and end it with the result an image pod
// writes.
//
// It prints pods created per second, scheduler placements that disagree with the controller's
// (a pod bound to another node than the one the controller chose; must be 0), pods the
// scheduler could not place, images that succeeded more than once, API writes per image (the
// manager's), the manager's CPU seconds and peak memory, and the largest job status.
//
//	go run ./hack/scale-kwok                                 # 100 nodes x 8 GPUs, 10000 images, 20 jobs
//	go run ./hack/scale-kwok --nodes 10 --images 500 --jobs 4
package main
