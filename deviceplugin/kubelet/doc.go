// Package kubelet serves the kubelet device-plugin API: one extended resource per physical GPU
// (sdfleet.io/gpu-<index>), each on its own gRPC server and unix socket, with R device IDs
// <UUID>::<k> (R = images allowed on the GPU at once). Because a resource names exactly one GPU,
// a pod that requests sdfleet.io/gpu-2 can only ever be bound to GPU 2: Allocate needs no
// pending-pod lookup, node lock or annotation matching.
//
// The Manager registers every resource with the kubelet, streams health changes through
// ListAndWatch, re-registers within a poll interval when kubelet.sock is re-created (the kubelet
// restarted), replaces stale sockets of a crashed run and removes its sockets on shutdown.
package kubelet
