// Package kubelet serves the kubelet device-plugin API: one extended resource per physical GPU
// (sdfleet.io/gpu-<index>), each on its own gRPC server and unix socket, with R device IDs
// <UUID>::<k> (R = images allowed on the GPU at once). Because a resource names exactly one GPU,
// a pod that requests sdfleet.io/gpu-2 can only ever be bound to GPU 2: Allocate needs no
// pending-pod lookup, node lock or annotation matching. Allocate binds an NVIDIA GPU through
// the NVIDIA container runtime (NVIDIA_VISIBLE_DEVICES or a CDI device) and an AMD GPU through
// device nodes (/dev/kfd and its render node) with ROCm's visible-device variables.
//
// The Manager registers every resource with the kubelet, streams health changes through
// ListAndWatch, re-registers within a poll interval when kubelet.sock is re-created (the kubelet
// restarted), replaces stale sockets of a crashed run and removes its sockets on shutdown. It
// checks that a plugin answers on its own socket before registering it, and restarts a plugin
// server that dies, within a crash budget (5 an hour by default); past it Run fails, so that the
// agent exits and its pod is restarted.
package kubelet
