// Package vulkan is the Vulkan compute backend: the same operations as the
// CPU backend, as GLSL compute shaders (shaders/, compiled to the SPIR-V
// committed beside them) run on NVIDIA GPUs, AMD GPUs through Mesa's RADV
// and Mesa's software device lavapipe, which is how make test proves it
// on machines without a GPU.
//
// Memory: weights are fp16 in long-lived device-local buffers (fp16
// checkpoints upload as stored, fp32 and bf16 are rounded once);
// activations are fp16 buffers (fp32 for a phase that asks through
// backend.F32Activations) from a pool keyed by size class, so a denoising
// step reuses the previous step's memory. Every kernel loads into fp32
// and accumulates in fp32, norm and softmax statistics included; only
// storage is fp16. Buffers within maxStorageBufferRange are bound as
// descriptors; a dispatch touching a larger one (a 512×512 VAE decode on
// lavapipe, whose range is 128 MiB) reaches its buffers through device
// addresses instead, so one tensor is limited only by
// maxMemoryAllocationSize.
//
// Execution: operations are recorded into one command buffer, with a
// barrier only where a command reads or overwrites what an earlier one
// wrote (or overwrites what it read), and submitted when the host needs a
// result (Read) or calls Sync: a whole UNet evaluation is one submit.
// Buffers are bound with push descriptors, so there are no descriptor
// pools to size, and each pipeline is created once on first use.
//
// Devices are chosen by the UUID the device plugin gives the pod (equal
// to NVML's for NVIDIA GPUs), by PCI bus address (VK_EXT_pci_bus_info, as
// AMD GPUs are named) or by index (vulkan:N).
package vulkan
