package vk

import "unsafe"

// Dispatchable handles are pointers in C; non-dispatchable ones 64-bit.
type (
	Instance       uintptr
	PhysicalDevice uintptr
	Device         uintptr
	Queue          uintptr
	CommandBuffer  uintptr

	Buffer              uint64
	DeviceMemory        uint64
	ShaderModule        uint64
	DescriptorSetLayout uint64
	PipelineLayout      uint64
	Pipeline            uint64
	CommandPool         uint64
	Fence               uint64
	DebugUtilsMessenger uint64
)

// Structure types (VkStructureType) the backend uses.
const (
	StructureTypeApplicationInfo                           = 0
	StructureTypeInstanceCreateInfo                        = 1
	StructureTypeDeviceQueueCreateInfo                     = 2
	StructureTypeDeviceCreateInfo                          = 3
	StructureTypeSubmitInfo                                = 4
	StructureTypeMemoryAllocateInfo                        = 5
	StructureTypeFenceCreateInfo                           = 8
	StructureTypeBufferCreateInfo                          = 12
	StructureTypeShaderModuleCreateInfo                    = 16
	StructureTypePipelineShaderStageCreateInfo             = 18
	StructureTypeComputePipelineCreateInfo                 = 29
	StructureTypePipelineLayoutCreateInfo                  = 30
	StructureTypeDescriptorSetLayoutCreateInfo             = 32
	StructureTypeWriteDescriptorSet                        = 35
	StructureTypeCommandPoolCreateInfo                     = 39
	StructureTypeCommandBufferAllocateInfo                 = 40
	StructureTypeCommandBufferBeginInfo                    = 42
	StructureTypeMemoryBarrier                             = 46
	StructureTypePhysicalDeviceFeatures2                   = 1000059000
	StructureTypePhysicalDeviceProperties2                 = 1000059001
	StructureTypePhysicalDeviceIDProperties                = 1000071004
	StructureTypePhysicalDevice16BitStorageFeatures        = 1000083000
	StructureTypeDebugUtilsMessengerCallbackData           = 1000128003
	StructureTypeDebugUtilsMessengerCreateInfo             = 1000128004
	StructureTypePhysicalDevicePCIBusInfoProperties        = 1000212000
	StructureTypePhysicalDeviceShaderFloat16Int8Feats      = 1000082000
	StructureTypeMemoryAllocateFlagsInfo                   = 1000060000
	StructureTypePhysicalDeviceMaintenance3Properties      = 1000168000
	StructureTypeBufferDeviceAddressInfo                   = 1000244001
	StructureTypePhysicalDeviceBufferDeviceAddressFeatures = 1000257000
)

// Result is a VkResult; negative values are errors.
type Result int32

const (
	Success                  Result = 0
	NotReady                 Result = 1
	Timeout                  Result = 2
	Incomplete               Result = 5
	ErrorOutOfHostMemory     Result = -1
	ErrorOutOfDeviceMemory   Result = -2
	ErrorInitializationFail  Result = -3
	ErrorDeviceLost          Result = -4
	ErrorMemoryMapFailed     Result = -5
	ErrorLayerNotPresent     Result = -6
	ErrorExtensionNotPresent Result = -7
	ErrorFeatureNotPresent   Result = -8
	ErrorIncompatibleDriver  Result = -9
	ErrorTooManyObjects      Result = -10
)

// Flags and enumerants.
const (
	APIVersion13 = 1<<22 | 3<<12

	QueueComputeBit  = 0x2
	QueueTransferBit = 0x4

	MemoryPropertyDeviceLocal  = 0x1
	MemoryPropertyHostVisible  = 0x2
	MemoryPropertyHostCoherent = 0x4

	BufferUsageTransferSrc   = 0x1
	BufferUsageTransferDst   = 0x2
	BufferUsageStorageBuffer = 0x20
	// BufferUsageShaderDeviceAddress lets shaders reach the buffer through
	// its device address (Vulkan 1.2 core bufferDeviceAddress).
	BufferUsageShaderDeviceAddress = 0x20000

	// MemoryAllocateDeviceAddress is VK_MEMORY_ALLOCATE_DEVICE_ADDRESS_BIT,
	// required for memory bound to a buffer with a device address.
	MemoryAllocateDeviceAddress = 0x2

	SharingModeExclusive = 0

	ShaderStageCompute = 0x20

	DescriptorTypeStorageBuffer = 7

	DescriptorSetLayoutCreatePushDescriptor = 0x1

	PipelineBindPointCompute = 1

	CommandPoolCreateResetCommandBuffer = 0x2
	CommandBufferLevelPrimary           = 0
	CommandBufferUsageOneTimeSubmit     = 0x1

	PipelineStageTransfer      = 0x1000
	PipelineStageComputeShader = 0x800
	PipelineStageHost          = 0x4000

	AccessShaderRead    = 0x20
	AccessShaderWrite   = 0x40
	AccessTransferRead  = 0x800
	AccessTransferWrite = 0x1000
	AccessHostRead      = 0x2000
	AccessHostWrite     = 0x4000

	DebugSeverityVerbose = 0x1
	DebugSeverityInfo    = 0x10
	DebugSeverityWarning = 0x100
	DebugSeverityError   = 0x1000

	DebugTypeGeneral     = 0x1
	DebugTypeValidation  = 0x2
	DebugTypePerformance = 0x4

	PhysicalDeviceTypeOther         = 0
	PhysicalDeviceTypeIntegratedGPU = 1
	PhysicalDeviceTypeDiscreteGPU   = 2
	PhysicalDeviceTypeVirtualGPU    = 3
	PhysicalDeviceTypeCPU           = 4
)

type ApplicationInfo struct {
	SType              uint32
	PNext              unsafe.Pointer
	PApplicationName   *byte
	ApplicationVersion uint32
	PEngineName        *byte
	EngineVersion      uint32
	APIVersion         uint32
}

type InstanceCreateInfo struct {
	SType                   uint32
	PNext                   unsafe.Pointer
	Flags                   uint32
	PApplicationInfo        *ApplicationInfo
	EnabledLayerCount       uint32
	PPEnabledLayerNames     **byte
	EnabledExtensionCount   uint32
	PPEnabledExtensionNames **byte
}

type DebugUtilsMessengerCreateInfo struct {
	SType           uint32
	PNext           unsafe.Pointer
	Flags           uint32
	MessageSeverity uint32
	MessageType     uint32
	PfnUserCallback uintptr
	PUserData       uintptr
}

// DebugUtilsMessengerCallbackData is the head of
// VkDebugUtilsMessengerCallbackDataEXT up to the message.
type DebugUtilsMessengerCallbackData struct {
	SType           uint32
	PNext           unsafe.Pointer
	Flags           uint32
	PMessageIDName  *byte
	MessageIDNumber int32
	PMessage        *byte
}

type ExtensionProperties struct {
	ExtensionName [256]byte
	SpecVersion   uint32
}

type LayerProperties struct {
	LayerName             [256]byte
	SpecVersion           uint32
	ImplementationVersion uint32
	Description           [256]byte
}

// PhysicalDeviceProperties2 holds VkPhysicalDeviceProperties as raw words;
// the fields the backend reads are decoded by offset (see Properties).
type PhysicalDeviceProperties2 struct {
	SType      uint32
	PNext      unsafe.Pointer
	Properties [824 / 8]uint64
}

type PhysicalDeviceIDProperties struct {
	SType           uint32
	PNext           unsafe.Pointer
	DeviceUUID      [16]byte
	DriverUUID      [16]byte
	DeviceLUID      [8]byte
	DeviceNodeMask  uint32
	DeviceLUIDValid uint32
}

type PhysicalDevicePCIBusInfoProperties struct {
	SType       uint32
	PNext       unsafe.Pointer
	PCIDomain   uint32
	PCIBus      uint32
	PCIDevice   uint32
	PCIFunction uint32
}

type PhysicalDeviceFeatures2 struct {
	SType    uint32
	PNext    unsafe.Pointer
	Features [55]uint32
}

type PhysicalDevice16BitStorageFeatures struct {
	SType                              uint32
	PNext                              unsafe.Pointer
	StorageBuffer16BitAccess           uint32
	UniformAndStorageBuffer16BitAccess uint32
	StoragePushConstant16              uint32
	StorageInputOutput16               uint32
}

type PhysicalDeviceBufferDeviceAddressFeatures struct {
	SType                            uint32
	PNext                            unsafe.Pointer
	BufferDeviceAddress              uint32
	BufferDeviceAddressCaptureReplay uint32
	BufferDeviceAddressMultiDevice   uint32
}

type PhysicalDeviceMaintenance3Properties struct {
	SType                   uint32
	PNext                   unsafe.Pointer
	MaxPerSetDescriptors    uint32
	MaxMemoryAllocationSize uint64
}

type MemoryAllocateFlagsInfo struct {
	SType      uint32
	PNext      unsafe.Pointer
	Flags      uint32
	DeviceMask uint32
}

type BufferDeviceAddressInfo struct {
	SType  uint32
	PNext  unsafe.Pointer
	Buffer Buffer
}

type MemoryType struct {
	PropertyFlags uint32
	HeapIndex     uint32
}

type MemoryHeap struct {
	Size  uint64
	Flags uint32
}

type PhysicalDeviceMemoryProperties struct {
	MemoryTypeCount uint32
	MemoryTypes     [32]MemoryType
	MemoryHeapCount uint32
	MemoryHeaps     [16]MemoryHeap
}

type QueueFamilyProperties struct {
	QueueFlags                  uint32
	QueueCount                  uint32
	TimestampValidBits          uint32
	MinImageTransferGranularity [3]uint32
}

type DeviceQueueCreateInfo struct {
	SType            uint32
	PNext            unsafe.Pointer
	Flags            uint32
	QueueFamilyIndex uint32
	QueueCount       uint32
	PQueuePriorities *float32
}

type DeviceCreateInfo struct {
	SType                   uint32
	PNext                   unsafe.Pointer
	Flags                   uint32
	QueueCreateInfoCount    uint32
	PQueueCreateInfos       *DeviceQueueCreateInfo
	EnabledLayerCount       uint32
	PPEnabledLayerNames     **byte
	EnabledExtensionCount   uint32
	PPEnabledExtensionNames **byte
	PEnabledFeatures        unsafe.Pointer
}

type BufferCreateInfo struct {
	SType                 uint32
	PNext                 unsafe.Pointer
	Flags                 uint32
	Size                  uint64
	Usage                 uint32
	SharingMode           uint32
	QueueFamilyIndexCount uint32
	PQueueFamilyIndices   *uint32
}

type MemoryRequirements struct {
	Size           uint64
	Alignment      uint64
	MemoryTypeBits uint32
}

type MemoryAllocateInfo struct {
	SType           uint32
	PNext           unsafe.Pointer
	AllocationSize  uint64
	MemoryTypeIndex uint32
}

type ShaderModuleCreateInfo struct {
	SType    uint32
	PNext    unsafe.Pointer
	Flags    uint32
	CodeSize uintptr
	PCode    *uint32
}

type DescriptorSetLayoutBinding struct {
	Binding            uint32
	DescriptorType     uint32
	DescriptorCount    uint32
	StageFlags         uint32
	PImmutableSamplers unsafe.Pointer
}

type DescriptorSetLayoutCreateInfo struct {
	SType        uint32
	PNext        unsafe.Pointer
	Flags        uint32
	BindingCount uint32
	PBindings    *DescriptorSetLayoutBinding
}

type PushConstantRange struct {
	StageFlags uint32
	Offset     uint32
	Size       uint32
}

type PipelineLayoutCreateInfo struct {
	SType                  uint32
	PNext                  unsafe.Pointer
	Flags                  uint32
	SetLayoutCount         uint32
	PSetLayouts            *DescriptorSetLayout
	PushConstantRangeCount uint32
	PPushConstantRanges    *PushConstantRange
}

type PipelineShaderStageCreateInfo struct {
	SType               uint32
	PNext               unsafe.Pointer
	Flags               uint32
	Stage               uint32
	Module              ShaderModule
	PName               *byte
	PSpecializationInfo unsafe.Pointer
}

type ComputePipelineCreateInfo struct {
	SType              uint32
	PNext              unsafe.Pointer
	Flags              uint32
	Stage              PipelineShaderStageCreateInfo
	Layout             PipelineLayout
	BasePipelineHandle Pipeline
	BasePipelineIndex  int32
}

type DescriptorBufferInfo struct {
	Buffer Buffer
	Offset uint64
	Range  uint64
}

type WriteDescriptorSet struct {
	SType            uint32
	PNext            unsafe.Pointer
	DstSet           uint64
	DstBinding       uint32
	DstArrayElement  uint32
	DescriptorCount  uint32
	DescriptorType   uint32
	PImageInfo       unsafe.Pointer
	PBufferInfo      *DescriptorBufferInfo
	PTexelBufferView unsafe.Pointer
}

type CommandPoolCreateInfo struct {
	SType            uint32
	PNext            unsafe.Pointer
	Flags            uint32
	QueueFamilyIndex uint32
}

type CommandBufferAllocateInfo struct {
	SType              uint32
	PNext              unsafe.Pointer
	CommandPool        CommandPool
	Level              uint32
	CommandBufferCount uint32
}

type CommandBufferBeginInfo struct {
	SType            uint32
	PNext            unsafe.Pointer
	Flags            uint32
	PInheritanceInfo unsafe.Pointer
}

type MemoryBarrier struct {
	SType         uint32
	PNext         unsafe.Pointer
	SrcAccessMask uint32
	DstAccessMask uint32
}

type BufferCopy struct {
	SrcOffset uint64
	DstOffset uint64
	Size      uint64
}

type SubmitInfo struct {
	SType                uint32
	PNext                unsafe.Pointer
	WaitSemaphoreCount   uint32
	PWaitSemaphores      unsafe.Pointer
	PWaitDstStageMask    unsafe.Pointer
	CommandBufferCount   uint32
	PCommandBuffers      *CommandBuffer
	SignalSemaphoreCount uint32
	PSignalSemaphores    unsafe.Pointer
}

type FenceCreateInfo struct {
	SType uint32
	PNext unsafe.Pointer
	Flags uint32
}
