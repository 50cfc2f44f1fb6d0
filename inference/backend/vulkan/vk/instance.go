package vk

import (
	"encoding/binary"
	"fmt"
	"unsafe"
)

// InstanceLayers lists the instance layers the loader can enable.
func InstanceLayers() ([]string, error) {
	if err := Load(); err != nil {
		return nil, err
	}
	fn := procAddr(0, "vkEnumerateInstanceLayerProperties")
	var n uint32
	if err := check("vkEnumerateInstanceLayerProperties", callResult(fn, uintptr(unsafe.Pointer(&n)), 0)); err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, nil
	}
	props := make([]LayerProperties, n)
	if err := check("vkEnumerateInstanceLayerProperties", callResult(fn, uintptr(unsafe.Pointer(&n)), uintptr(unsafe.Pointer(&props[0])))); err != nil {
		return nil, err
	}
	names := make([]string, 0, n)
	for _, p := range props[:n] {
		names = append(names, FixedString(p.LayerName[:]))
	}
	return names, nil
}

// InstanceCommands are the entry points resolved against one instance.
type InstanceCommands struct {
	Instance Instance

	destroyInstance                    uintptr
	enumeratePhysicalDevices           uintptr
	getPhysicalDeviceProperties2       uintptr
	getPhysicalDeviceFeatures2         uintptr
	getPhysicalDeviceMemoryProperties  uintptr
	getPhysicalDeviceQueueFamilyProps  uintptr
	enumerateDeviceExtensionProperties uintptr
	createDevice                       uintptr
	createDebugUtilsMessenger          uintptr
	destroyDebugUtilsMessenger         uintptr
}

// CreateInstance creates a Vulkan 1.3 instance with the given layers and
// extensions, and an optional debug messenger chained so that instance
// creation itself is reported.
func CreateInstance(appName string, layers, extensions []string, messenger *DebugUtilsMessengerCreateInfo) (*InstanceCommands, error) {
	if err := Load(); err != nil {
		return nil, err
	}
	app := ApplicationInfo{
		SType:            StructureTypeApplicationInfo,
		PApplicationName: CString(appName),
		PEngineName:      CString("sdfleet"),
		APIVersion:       APIVersion13,
	}
	info := InstanceCreateInfo{
		SType:                   StructureTypeInstanceCreateInfo,
		PApplicationInfo:        &app,
		EnabledLayerCount:       uint32(len(layers)),
		PPEnabledLayerNames:     CStrings(layers),
		EnabledExtensionCount:   uint32(len(extensions)),
		PPEnabledExtensionNames: CStrings(extensions),
	}
	if messenger != nil {
		info.PNext = unsafe.Pointer(messenger)
	}
	var inst Instance
	if err := check("vkCreateInstance", callResult(procAddr(0, "vkCreateInstance"), uintptr(unsafe.Pointer(&info)), 0, uintptr(unsafe.Pointer(&inst)))); err != nil {
		return nil, err
	}
	c := &InstanceCommands{Instance: inst}
	c.destroyInstance = procAddr(inst, "vkDestroyInstance")
	c.enumeratePhysicalDevices = procAddr(inst, "vkEnumeratePhysicalDevices")
	c.getPhysicalDeviceProperties2 = procAddr(inst, "vkGetPhysicalDeviceProperties2")
	c.getPhysicalDeviceFeatures2 = procAddr(inst, "vkGetPhysicalDeviceFeatures2")
	c.getPhysicalDeviceMemoryProperties = procAddr(inst, "vkGetPhysicalDeviceMemoryProperties")
	c.getPhysicalDeviceQueueFamilyProps = procAddr(inst, "vkGetPhysicalDeviceQueueFamilyProperties")
	c.enumerateDeviceExtensionProperties = procAddr(inst, "vkEnumerateDeviceExtensionProperties")
	c.createDevice = procAddr(inst, "vkCreateDevice")
	if messenger != nil {
		c.createDebugUtilsMessenger = procAddr(inst, "vkCreateDebugUtilsMessengerEXT")
		c.destroyDebugUtilsMessenger = procAddr(inst, "vkDestroyDebugUtilsMessengerEXT")
	}
	return c, nil
}

// Destroy destroys the instance.
func (c *InstanceCommands) Destroy() {
	call(c.destroyInstance, uintptr(c.Instance), 0)
}

// CreateDebugUtilsMessenger installs a messenger on the instance.
func (c *InstanceCommands) CreateDebugUtilsMessenger(info *DebugUtilsMessengerCreateInfo) (DebugUtilsMessenger, error) {
	if c.createDebugUtilsMessenger == 0 {
		return 0, fmt.Errorf("vkCreateDebugUtilsMessengerEXT is not available")
	}
	var m DebugUtilsMessenger
	err := check("vkCreateDebugUtilsMessengerEXT", callResult(c.createDebugUtilsMessenger, uintptr(c.Instance), uintptr(unsafe.Pointer(info)), 0, uintptr(unsafe.Pointer(&m))))
	return m, err
}

// DestroyDebugUtilsMessenger removes a messenger.
func (c *InstanceCommands) DestroyDebugUtilsMessenger(m DebugUtilsMessenger) {
	if c.destroyDebugUtilsMessenger != 0 && m != 0 {
		call(c.destroyDebugUtilsMessenger, uintptr(c.Instance), uintptr(m), 0)
	}
}

// PhysicalDevices lists the instance's physical devices in the loader's order.
func (c *InstanceCommands) PhysicalDevices() ([]PhysicalDevice, error) {
	var n uint32
	if err := check("vkEnumeratePhysicalDevices", callResult(c.enumeratePhysicalDevices, uintptr(c.Instance), uintptr(unsafe.Pointer(&n)), 0)); err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, nil
	}
	devs := make([]PhysicalDevice, n)
	if err := check("vkEnumeratePhysicalDevices", callResult(c.enumeratePhysicalDevices, uintptr(c.Instance), uintptr(unsafe.Pointer(&n)), uintptr(unsafe.Pointer(&devs[0])))); err != nil {
		return nil, err
	}
	return devs[:n], nil
}

// DeviceExtensions lists the extensions a physical device supports.
func (c *InstanceCommands) DeviceExtensions(pd PhysicalDevice) (map[string]bool, error) {
	var n uint32
	if err := check("vkEnumerateDeviceExtensionProperties", callResult(c.enumerateDeviceExtensionProperties, uintptr(pd), 0, uintptr(unsafe.Pointer(&n)), 0)); err != nil {
		return nil, err
	}
	out := map[string]bool{}
	if n == 0 {
		return out, nil
	}
	props := make([]ExtensionProperties, n)
	if err := check("vkEnumerateDeviceExtensionProperties", callResult(c.enumerateDeviceExtensionProperties, uintptr(pd), 0, uintptr(unsafe.Pointer(&n)), uintptr(unsafe.Pointer(&props[0])))); err != nil {
		return nil, err
	}
	for _, p := range props[:n] {
		out[FixedString(p.ExtensionName[:])] = true
	}
	return out, nil
}

// Properties is what the backend reads of a physical device.
type Properties struct {
	APIVersion uint32
	VendorID   uint32
	DeviceID   uint32
	DeviceType uint32
	DeviceName string
	DeviceUUID [16]byte
	// PCIBus is set when the device supports VK_EXT_pci_bus_info.
	PCIBus *PhysicalDevicePCIBusInfoProperties

	MaxStorageBufferRange       uint32
	MaxPushConstantsSize        uint32
	MaxMemoryAllocationCount    uint32
	MaxComputeSharedMemorySize  uint32
	MaxComputeWorkGroupCount    [3]uint32
	MaxComputeWorkGroupInvocs   uint32
	MinStorageBufferOffsetAlign uint64
	// MaxMemoryAllocationSize bounds one allocation, and so one tensor
	// (VkPhysicalDeviceMaintenance3Properties).
	MaxMemoryAllocationSize uint64
}

// Offsets into VkPhysicalDeviceProperties (vulkan_core.h, 64-bit).
const (
	offDeviceName = 20
	offLimits     = 296
	// Offsets within VkPhysicalDeviceLimits.
	limMaxStorageBufferRange      = 28
	limMaxPushConstantsSize       = 32
	limMaxMemoryAllocationCount   = 36
	limMaxComputeSharedMemorySize = 216
	limMaxComputeWorkGroupCount   = 220
	limMaxComputeWorkGroupInvocs  = 232
	limMinStorageBufferOffsetAlig = 328
)

// PhysicalDeviceProperties queries the properties, the device ID
// properties and, when withPCIBus, VK_EXT_pci_bus_info.
func (c *InstanceCommands) PhysicalDeviceProperties(pd PhysicalDevice, withPCIBus bool) Properties {
	var pci PhysicalDevicePCIBusInfoProperties
	m3 := PhysicalDeviceMaintenance3Properties{SType: StructureTypePhysicalDeviceMaintenance3Properties}
	id := PhysicalDeviceIDProperties{SType: StructureTypePhysicalDeviceIDProperties, PNext: unsafe.Pointer(&m3)}
	if withPCIBus {
		pci.SType = StructureTypePhysicalDevicePCIBusInfoProperties
		m3.PNext = unsafe.Pointer(&pci)
	}
	p2 := PhysicalDeviceProperties2{SType: StructureTypePhysicalDeviceProperties2, PNext: unsafe.Pointer(&id)}
	call(c.getPhysicalDeviceProperties2, uintptr(pd), uintptr(unsafe.Pointer(&p2)))
	raw := unsafe.Slice((*byte)(unsafe.Pointer(&p2.Properties[0])), len(p2.Properties)*8)
	u32 := func(off int) uint32 { return binary.LittleEndian.Uint32(raw[off:]) }
	p := Properties{
		APIVersion: u32(0),
		VendorID:   u32(8),
		DeviceID:   u32(12),
		DeviceType: u32(16),
		DeviceName: FixedString(raw[offDeviceName : offDeviceName+256]),
		DeviceUUID: id.DeviceUUID,

		MaxStorageBufferRange:       u32(offLimits + limMaxStorageBufferRange),
		MaxPushConstantsSize:        u32(offLimits + limMaxPushConstantsSize),
		MaxMemoryAllocationCount:    u32(offLimits + limMaxMemoryAllocationCount),
		MaxComputeSharedMemorySize:  u32(offLimits + limMaxComputeSharedMemorySize),
		MaxComputeWorkGroupInvocs:   u32(offLimits + limMaxComputeWorkGroupInvocs),
		MinStorageBufferOffsetAlign: binary.LittleEndian.Uint64(raw[offLimits+limMinStorageBufferOffsetAlig:]),
		MaxMemoryAllocationSize:     m3.MaxMemoryAllocationSize,
	}
	for i := range p.MaxComputeWorkGroupCount {
		p.MaxComputeWorkGroupCount[i] = u32(offLimits + limMaxComputeWorkGroupCount + 4*i)
	}
	if withPCIBus {
		p.PCIBus = &pci
	}
	return p
}

// SupportsStorage16AndDeviceAddress reports storageBuffer16BitAccess and
// bufferDeviceAddress, the two features CreateDevice enables.
func (c *InstanceCommands) SupportsStorage16AndDeviceAddress(pd PhysicalDevice) bool {
	bda := PhysicalDeviceBufferDeviceAddressFeatures{SType: StructureTypePhysicalDeviceBufferDeviceAddressFeatures}
	s16 := PhysicalDevice16BitStorageFeatures{SType: StructureTypePhysicalDevice16BitStorageFeatures, PNext: unsafe.Pointer(&bda)}
	f2 := PhysicalDeviceFeatures2{SType: StructureTypePhysicalDeviceFeatures2, PNext: unsafe.Pointer(&s16)}
	call(c.getPhysicalDeviceFeatures2, uintptr(pd), uintptr(unsafe.Pointer(&f2)))
	return s16.StorageBuffer16BitAccess != 0 && bda.BufferDeviceAddress != 0
}

// MemoryProperties returns the device's memory types and heaps.
func (c *InstanceCommands) MemoryProperties(pd PhysicalDevice) PhysicalDeviceMemoryProperties {
	var m PhysicalDeviceMemoryProperties
	call(c.getPhysicalDeviceMemoryProperties, uintptr(pd), uintptr(unsafe.Pointer(&m)))
	return m
}

// QueueFamilies returns the device's queue families.
func (c *InstanceCommands) QueueFamilies(pd PhysicalDevice) []QueueFamilyProperties {
	var n uint32
	call(c.getPhysicalDeviceQueueFamilyProps, uintptr(pd), uintptr(unsafe.Pointer(&n)), 0)
	if n == 0 {
		return nil
	}
	q := make([]QueueFamilyProperties, n)
	call(c.getPhysicalDeviceQueueFamilyProps, uintptr(pd), uintptr(unsafe.Pointer(&n)), uintptr(unsafe.Pointer(&q[0])))
	return q[:n]
}

// CreateDevice creates a logical device with one queue of family and
// storageBuffer16BitAccess and bufferDeviceAddress enabled.
func (c *InstanceCommands) CreateDevice(pd PhysicalDevice, family uint32, extensions []string) (*DeviceCommands, error) {
	prio := float32(1)
	q := DeviceQueueCreateInfo{SType: StructureTypeDeviceQueueCreateInfo, QueueFamilyIndex: family, QueueCount: 1, PQueuePriorities: &prio}
	bda := PhysicalDeviceBufferDeviceAddressFeatures{SType: StructureTypePhysicalDeviceBufferDeviceAddressFeatures, BufferDeviceAddress: 1}
	s16 := PhysicalDevice16BitStorageFeatures{SType: StructureTypePhysicalDevice16BitStorageFeatures, PNext: unsafe.Pointer(&bda), StorageBuffer16BitAccess: 1}
	info := DeviceCreateInfo{
		SType:                   StructureTypeDeviceCreateInfo,
		PNext:                   unsafe.Pointer(&s16),
		QueueCreateInfoCount:    1,
		PQueueCreateInfos:       &q,
		EnabledExtensionCount:   uint32(len(extensions)),
		PPEnabledExtensionNames: CStrings(extensions),
	}
	var dev Device
	if err := check("vkCreateDevice", callResult(c.createDevice, uintptr(pd), uintptr(unsafe.Pointer(&info)), 0, uintptr(unsafe.Pointer(&dev)))); err != nil {
		return nil, err
	}
	return newDeviceCommands(dev, family), nil
}

// UUIDString formats a 16-byte UUID as NVML does, without its "GPU-" prefix.
func UUIDString(u [16]byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}
