// Package vk is the small set of Vulkan bindings the Vulkan compute backend
// needs, reached without cgo: libvulkan.so.1 is opened with purego and every
// entry point is called through purego.SyscallN.
//
// Structures are declared as Go structs whose field order, types and
// padding match the C layout on 64-bit Linux; dispatchable handles
// (instance, physical device, device, queue, command buffer) are pointers
// and non-dispatchable handles are 64-bit integers, as in vulkan_core.h.
// Only compute, transfer and the debug-utils messenger are covered; the
// package grows when the backend needs another entry point, never ahead of
// it.
package vk
