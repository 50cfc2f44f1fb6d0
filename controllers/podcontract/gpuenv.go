package podcontract

// Environment variables the node agent's Allocate sets in a container it gives a GPU; sdgen
// and its backends read them to use exactly that GPU.
const (
	// EnvGPUUUID is the GPU's UUID (GPU-...), on every vendor.
	EnvGPUUUID = "SDFLEET_GPU_UUID"
	// EnvGPUIndex is the GPU's index on its node.
	EnvGPUIndex = "SDFLEET_GPU_INDEX"
	// EnvGPUPCIBusID is the GPU's PCI address (0000:03:00.0) where the agent knows it (AMD
	// GPUs): the Vulkan backend matches it against VK_EXT_pci_bus_info.
	EnvGPUPCIBusID = "SDFLEET_GPU_PCI_BUS_ID"
	// EnvNvidiaVisibleDevices tells the NVIDIA container runtime which GPU to expose.
	EnvNvidiaVisibleDevices = "NVIDIA_VISIBLE_DEVICES"
	// EnvROCRVisibleDevices and EnvHIPVisibleDevices select the GPU for ROCm.
	EnvROCRVisibleDevices = "ROCR_VISIBLE_DEVICES"
	EnvHIPVisibleDevices  = "HIP_VISIBLE_DEVICES"
)

// KFDDevice is ROCm's compute device node, which every container given an AMD GPU needs
// besides the GPU's render node.
const KFDDevice = "/dev/kfd"
