// Command bench-controller measures the ImageGenerationJob controller end to end against the
// source-built API server: it starts kube-apiserver and etcd (test/envtest), publishes
// simulated GPUNodes, runs the real manager binary (cmd/manager) as a separate process, creates
// one large job and completes each image pod as soon as it appears, playing the kubelet.
//
// It prints pods created per second, the controller's API writes per image (pods, status,
// events, everything), the controller's CPU seconds and its peak resident memory.
//
//	go run ./hack/bench-controller                       # 2000 images, 100 nodes x 8 GPUs
//	go run ./hack/bench-controller --images 500 --nodes 10
package main
