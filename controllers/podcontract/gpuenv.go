package podcontract

// Environment variables the node agent's Allocate sets in a container it gives a GPU; sdgen
// and its backends read them to use exactly that GPU.
const (
	// EnvGPUUUID is the GPU's UUID (GPU-... as NVML spells it), on every vendor; for NVIDIA
	// GPUs it equals the Vulkan device UUID, which is how sdgen finds the GPU and refuses any
	// other.
	EnvGPUUUID = "SDFLEET_GPU_UUID"
	// EnvGPUIndex is the GPU's index on its node.
	EnvGPUIndex = "SDFLEET_GPU_INDEX"
	// EnvGPUPCIBusID is the GPU's PCI address (0000:03:00.0) where the agent knows it (AMD
	// GPUs): the Vulkan backend matches it against VK_EXT_pci_bus_info.
	EnvGPUPCIBusID = "SDFLEET_GPU_PCI_BUS_ID"
	// EnvGPUSimulated is "true" when the GPU is simulated (no hardware): sdgen runs on the
	// software Vulkan device and skips the UUID check.
	EnvGPUSimulated = "SDFLEET_GPU_SIMULATED"
	// EnvNvidiaDriverCapabilities tells the NVIDIA container toolkit what to mount: graphics
	// brings the driver's Vulkan ICD, which sdgen's Vulkan backend needs.
	EnvNvidiaDriverCapabilities = "NVIDIA_DRIVER_CAPABILITIES"
	// EnvNvidiaVisibleDevices tells the NVIDIA container runtime which GPU to expose.
	EnvNvidiaVisibleDevices = "NVIDIA_VISIBLE_DEVICES"
	// EnvROCRVisibleDevices and EnvHIPVisibleDevices select the GPU for ROCm.
	EnvROCRVisibleDevices = "ROCR_VISIBLE_DEVICES"
	EnvHIPVisibleDevices  = "HIP_VISIBLE_DEVICES"
)

// NvidiaDriverCapabilities is the value of EnvNvidiaDriverCapabilities.
const NvidiaDriverCapabilities = "compute,utility,graphics"

// KFDDevice is ROCm's compute device node, which every container given an AMD GPU needs
// besides the GPU's render node.
const KFDDevice = "/dev/kfd"
