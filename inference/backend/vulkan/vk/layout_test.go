package vk

import (
	"errors"
	"strings"
	"testing"
	"unsafe"
)

// The Go structs must have the size vulkan_core.h gives their C
// counterparts on 64-bit Linux: a field out of place would pass garbage
// to the driver (the validation layers catch some of it, not all).
func TestStructSizesMatchC(t *testing.T) {
	for _, tc := range []struct {
		name      string
		got, want uintptr
	}{
		{"VkApplicationInfo", unsafe.Sizeof(ApplicationInfo{}), 48},
		{"VkInstanceCreateInfo", unsafe.Sizeof(InstanceCreateInfo{}), 64},
		{"VkDebugUtilsMessengerCreateInfoEXT", unsafe.Sizeof(DebugUtilsMessengerCreateInfo{}), 48},
		{"VkExtensionProperties", unsafe.Sizeof(ExtensionProperties{}), 260},
		{"VkLayerProperties", unsafe.Sizeof(LayerProperties{}), 520},
		{"VkPhysicalDeviceProperties2", unsafe.Sizeof(PhysicalDeviceProperties2{}), 840},
		{"VkPhysicalDeviceIDProperties", unsafe.Sizeof(PhysicalDeviceIDProperties{}), 64},
		{"VkPhysicalDevicePCIBusInfoPropertiesEXT", unsafe.Sizeof(PhysicalDevicePCIBusInfoProperties{}), 32},
		{"VkPhysicalDeviceFeatures2", unsafe.Sizeof(PhysicalDeviceFeatures2{}), 240},
		{"VkPhysicalDevice16BitStorageFeatures", unsafe.Sizeof(PhysicalDevice16BitStorageFeatures{}), 32},
		{"VkPhysicalDeviceBufferDeviceAddressFeatures", unsafe.Sizeof(PhysicalDeviceBufferDeviceAddressFeatures{}), 32},
		{"VkPhysicalDeviceMaintenance3Properties", unsafe.Sizeof(PhysicalDeviceMaintenance3Properties{}), 32},
		{"VkMemoryAllocateFlagsInfo", unsafe.Sizeof(MemoryAllocateFlagsInfo{}), 24},
		{"VkBufferDeviceAddressInfo", unsafe.Sizeof(BufferDeviceAddressInfo{}), 24},
		{"VkPhysicalDeviceMemoryProperties", unsafe.Sizeof(PhysicalDeviceMemoryProperties{}), 520},
		{"VkQueueFamilyProperties", unsafe.Sizeof(QueueFamilyProperties{}), 24},
		{"VkDeviceQueueCreateInfo", unsafe.Sizeof(DeviceQueueCreateInfo{}), 40},
		{"VkDeviceCreateInfo", unsafe.Sizeof(DeviceCreateInfo{}), 72},
		{"VkBufferCreateInfo", unsafe.Sizeof(BufferCreateInfo{}), 56},
		{"VkMemoryRequirements", unsafe.Sizeof(MemoryRequirements{}), 24},
		{"VkMemoryAllocateInfo", unsafe.Sizeof(MemoryAllocateInfo{}), 32},
		{"VkShaderModuleCreateInfo", unsafe.Sizeof(ShaderModuleCreateInfo{}), 40},
		{"VkDescriptorSetLayoutBinding", unsafe.Sizeof(DescriptorSetLayoutBinding{}), 24},
		{"VkDescriptorSetLayoutCreateInfo", unsafe.Sizeof(DescriptorSetLayoutCreateInfo{}), 32},
		{"VkPushConstantRange", unsafe.Sizeof(PushConstantRange{}), 12},
		{"VkPipelineLayoutCreateInfo", unsafe.Sizeof(PipelineLayoutCreateInfo{}), 48},
		{"VkPipelineShaderStageCreateInfo", unsafe.Sizeof(PipelineShaderStageCreateInfo{}), 48},
		{"VkComputePipelineCreateInfo", unsafe.Sizeof(ComputePipelineCreateInfo{}), 96},
		{"VkDescriptorBufferInfo", unsafe.Sizeof(DescriptorBufferInfo{}), 24},
		{"VkWriteDescriptorSet", unsafe.Sizeof(WriteDescriptorSet{}), 64},
		{"VkCommandPoolCreateInfo", unsafe.Sizeof(CommandPoolCreateInfo{}), 24},
		{"VkCommandBufferAllocateInfo", unsafe.Sizeof(CommandBufferAllocateInfo{}), 32},
		{"VkCommandBufferBeginInfo", unsafe.Sizeof(CommandBufferBeginInfo{}), 32},
		{"VkMemoryBarrier", unsafe.Sizeof(MemoryBarrier{}), 24},
		{"VkBufferCopy", unsafe.Sizeof(BufferCopy{}), 24},
		{"VkSubmitInfo", unsafe.Sizeof(SubmitInfo{}), 72},
		{"VkFenceCreateInfo", unsafe.Sizeof(FenceCreateInfo{}), 24},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: %d bytes, C has %d", tc.name, tc.got, tc.want)
		}
	}
}

func TestStrings(t *testing.T) {
	if got := GoString(CString("llvmpipe")); got != "llvmpipe" {
		t.Errorf("C string round trip: %q", got)
	}
	if got := FixedString([]byte{'a', 'b', 0, 'c'}); got != "ab" {
		t.Errorf("fixed string: %q", got)
	}
	if got := Result(-2).String(); got != "VK_ERROR_OUT_OF_DEVICE_MEMORY" {
		t.Errorf("result: %s", got)
	}
	if !IsOutOfMemory(&Error{Call: "vkAllocateMemory", Result: ErrorOutOfDeviceMemory}) || IsDeviceLost(&Error{Result: ErrorOutOfDeviceMemory}) {
		t.Error("error classification")
	}
}

// A missing loader is ErrNoLoader, naming the library: sdgen's auto
// device falls back to the CPU on it, and an explicit vulkan:N is a
// device error saying what is missing.
func TestMissingLoader(t *testing.T) {
	_, _, err := open("libvulkan-absent.so.1")
	if !errors.Is(err, ErrNoLoader) || !strings.Contains(err.Error(), LoaderName) || !strings.Contains(err.Error(), "libvulkan-absent.so.1") {
		t.Errorf("error %v, want ErrNoLoader naming the library", err)
	}
}
