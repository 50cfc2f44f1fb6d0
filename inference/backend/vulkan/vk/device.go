package vk

import "unsafe"

// DeviceCommands are the entry points resolved against one logical device.
type DeviceCommands struct {
	Device Device
	Queue  Queue

	destroyDevice               uintptr
	deviceWaitIdle              uintptr
	getDeviceQueue              uintptr
	createBuffer                uintptr
	destroyBuffer               uintptr
	getBufferMemoryRequirements uintptr
	allocateMemory              uintptr
	freeMemory                  uintptr
	bindBufferMemory            uintptr
	mapMemory                   uintptr
	unmapMemory                 uintptr
	createShaderModule          uintptr
	destroyShaderModule         uintptr
	createDescriptorSetLayout   uintptr
	destroyDescriptorSetLayout  uintptr
	createPipelineLayout        uintptr
	destroyPipelineLayout       uintptr
	createComputePipelines      uintptr
	destroyPipeline             uintptr
	createCommandPool           uintptr
	destroyCommandPool          uintptr
	allocateCommandBuffers      uintptr
	beginCommandBuffer          uintptr
	endCommandBuffer            uintptr
	resetCommandBuffer          uintptr
	cmdBindPipeline             uintptr
	cmdPushConstants            uintptr
	cmdPushDescriptorSet        uintptr
	cmdDispatch                 uintptr
	cmdPipelineBarrier          uintptr
	cmdCopyBuffer               uintptr
	cmdFillBuffer               uintptr
	queueSubmit                 uintptr
	createFence                 uintptr
	destroyFence                uintptr
	waitForFences               uintptr
	resetFences                 uintptr
	getBufferDeviceAddress      uintptr
}

func newDeviceCommands(dev Device, family uint32) *DeviceCommands {
	p := func(name string) uintptr { return deviceProcAddr(dev, name) }
	c := &DeviceCommands{Device: dev}
	c.destroyDevice = p("vkDestroyDevice")
	c.deviceWaitIdle = p("vkDeviceWaitIdle")
	c.getDeviceQueue = p("vkGetDeviceQueue")
	c.createBuffer = p("vkCreateBuffer")
	c.destroyBuffer = p("vkDestroyBuffer")
	c.getBufferMemoryRequirements = p("vkGetBufferMemoryRequirements")
	c.allocateMemory = p("vkAllocateMemory")
	c.freeMemory = p("vkFreeMemory")
	c.bindBufferMemory = p("vkBindBufferMemory")
	c.mapMemory = p("vkMapMemory")
	c.unmapMemory = p("vkUnmapMemory")
	c.createShaderModule = p("vkCreateShaderModule")
	c.destroyShaderModule = p("vkDestroyShaderModule")
	c.createDescriptorSetLayout = p("vkCreateDescriptorSetLayout")
	c.destroyDescriptorSetLayout = p("vkDestroyDescriptorSetLayout")
	c.createPipelineLayout = p("vkCreatePipelineLayout")
	c.destroyPipelineLayout = p("vkDestroyPipelineLayout")
	c.createComputePipelines = p("vkCreateComputePipelines")
	c.destroyPipeline = p("vkDestroyPipeline")
	c.createCommandPool = p("vkCreateCommandPool")
	c.destroyCommandPool = p("vkDestroyCommandPool")
	c.allocateCommandBuffers = p("vkAllocateCommandBuffers")
	c.beginCommandBuffer = p("vkBeginCommandBuffer")
	c.endCommandBuffer = p("vkEndCommandBuffer")
	c.resetCommandBuffer = p("vkResetCommandBuffer")
	c.cmdBindPipeline = p("vkCmdBindPipeline")
	c.cmdPushConstants = p("vkCmdPushConstants")
	c.cmdPushDescriptorSet = p("vkCmdPushDescriptorSetKHR")
	c.cmdDispatch = p("vkCmdDispatch")
	c.cmdPipelineBarrier = p("vkCmdPipelineBarrier")
	c.cmdCopyBuffer = p("vkCmdCopyBuffer")
	c.cmdFillBuffer = p("vkCmdFillBuffer")
	c.queueSubmit = p("vkQueueSubmit")
	c.createFence = p("vkCreateFence")
	c.destroyFence = p("vkDestroyFence")
	c.waitForFences = p("vkWaitForFences")
	c.resetFences = p("vkResetFences")
	c.getBufferDeviceAddress = p("vkGetBufferDeviceAddress")
	call(c.getDeviceQueue, uintptr(dev), uintptr(family), 0, uintptr(unsafe.Pointer(&c.Queue)))
	return c
}

// Destroy destroys the device.
func (c *DeviceCommands) Destroy() { call(c.destroyDevice, uintptr(c.Device), 0) }

// WaitIdle waits until the device has finished all work.
func (c *DeviceCommands) WaitIdle() error {
	return check("vkDeviceWaitIdle", callResult(c.deviceWaitIdle, uintptr(c.Device)))
}

func (c *DeviceCommands) CreateBuffer(info *BufferCreateInfo) (Buffer, error) {
	var b Buffer
	err := check("vkCreateBuffer", callResult(c.createBuffer, uintptr(c.Device), uintptr(unsafe.Pointer(info)), 0, uintptr(unsafe.Pointer(&b))))
	return b, err
}

func (c *DeviceCommands) DestroyBuffer(b Buffer) {
	call(c.destroyBuffer, uintptr(c.Device), uintptr(b), 0)
}

func (c *DeviceCommands) BufferMemoryRequirements(b Buffer) MemoryRequirements {
	var r MemoryRequirements
	call(c.getBufferMemoryRequirements, uintptr(c.Device), uintptr(b), uintptr(unsafe.Pointer(&r)))
	return r
}

func (c *DeviceCommands) AllocateMemory(info *MemoryAllocateInfo) (DeviceMemory, error) {
	var m DeviceMemory
	err := check("vkAllocateMemory", callResult(c.allocateMemory, uintptr(c.Device), uintptr(unsafe.Pointer(info)), 0, uintptr(unsafe.Pointer(&m))))
	return m, err
}

func (c *DeviceCommands) FreeMemory(m DeviceMemory) {
	call(c.freeMemory, uintptr(c.Device), uintptr(m), 0)
}

func (c *DeviceCommands) BindBufferMemory(b Buffer, m DeviceMemory, offset uint64) error {
	return check("vkBindBufferMemory", callResult(c.bindBufferMemory, uintptr(c.Device), uintptr(b), uintptr(m), uintptr(offset)))
}

// BufferDeviceAddress is the address shaders reach b at; b needs
// BufferUsageShaderDeviceAddress and memory allocated with
// MemoryAllocateDeviceAddress.
func (c *DeviceCommands) BufferDeviceAddress(b Buffer) uint64 {
	info := BufferDeviceAddressInfo{SType: StructureTypeBufferDeviceAddressInfo, Buffer: b}
	return uint64(call(c.getBufferDeviceAddress, uintptr(c.Device), uintptr(unsafe.Pointer(&info))))
}

// MapMemory maps size bytes of host-visible memory.
func (c *DeviceCommands) MapMemory(m DeviceMemory, offset, size uint64) ([]byte, error) {
	var p unsafe.Pointer
	if err := check("vkMapMemory", callResult(c.mapMemory, uintptr(c.Device), uintptr(m), uintptr(offset), uintptr(size), 0, uintptr(unsafe.Pointer(&p)))); err != nil {
		return nil, err
	}
	return unsafe.Slice((*byte)(p), size), nil
}

func (c *DeviceCommands) UnmapMemory(m DeviceMemory) {
	call(c.unmapMemory, uintptr(c.Device), uintptr(m))
}

// CreateShaderModule wraps SPIR-V words.
func (c *DeviceCommands) CreateShaderModule(code []uint32) (ShaderModule, error) {
	info := ShaderModuleCreateInfo{SType: StructureTypeShaderModuleCreateInfo, CodeSize: uintptr(4 * len(code)), PCode: &code[0]}
	var m ShaderModule
	err := check("vkCreateShaderModule", callResult(c.createShaderModule, uintptr(c.Device), uintptr(unsafe.Pointer(&info)), 0, uintptr(unsafe.Pointer(&m))))
	return m, err
}

func (c *DeviceCommands) DestroyShaderModule(m ShaderModule) {
	call(c.destroyShaderModule, uintptr(c.Device), uintptr(m), 0)
}

func (c *DeviceCommands) CreateDescriptorSetLayout(info *DescriptorSetLayoutCreateInfo) (DescriptorSetLayout, error) {
	var l DescriptorSetLayout
	err := check("vkCreateDescriptorSetLayout", callResult(c.createDescriptorSetLayout, uintptr(c.Device), uintptr(unsafe.Pointer(info)), 0, uintptr(unsafe.Pointer(&l))))
	return l, err
}

func (c *DeviceCommands) DestroyDescriptorSetLayout(l DescriptorSetLayout) {
	call(c.destroyDescriptorSetLayout, uintptr(c.Device), uintptr(l), 0)
}

func (c *DeviceCommands) CreatePipelineLayout(info *PipelineLayoutCreateInfo) (PipelineLayout, error) {
	var l PipelineLayout
	err := check("vkCreatePipelineLayout", callResult(c.createPipelineLayout, uintptr(c.Device), uintptr(unsafe.Pointer(info)), 0, uintptr(unsafe.Pointer(&l))))
	return l, err
}

func (c *DeviceCommands) DestroyPipelineLayout(l PipelineLayout) {
	call(c.destroyPipelineLayout, uintptr(c.Device), uintptr(l), 0)
}

func (c *DeviceCommands) CreateComputePipeline(info *ComputePipelineCreateInfo) (Pipeline, error) {
	var p Pipeline
	err := check("vkCreateComputePipelines", callResult(c.createComputePipelines, uintptr(c.Device), 0, 1, uintptr(unsafe.Pointer(info)), 0, uintptr(unsafe.Pointer(&p))))
	return p, err
}

func (c *DeviceCommands) DestroyPipeline(p Pipeline) {
	call(c.destroyPipeline, uintptr(c.Device), uintptr(p), 0)
}

func (c *DeviceCommands) CreateCommandPool(info *CommandPoolCreateInfo) (CommandPool, error) {
	var p CommandPool
	err := check("vkCreateCommandPool", callResult(c.createCommandPool, uintptr(c.Device), uintptr(unsafe.Pointer(info)), 0, uintptr(unsafe.Pointer(&p))))
	return p, err
}

func (c *DeviceCommands) DestroyCommandPool(p CommandPool) {
	call(c.destroyCommandPool, uintptr(c.Device), uintptr(p), 0)
}

func (c *DeviceCommands) AllocateCommandBuffer(pool CommandPool) (CommandBuffer, error) {
	info := CommandBufferAllocateInfo{SType: StructureTypeCommandBufferAllocateInfo, CommandPool: pool, Level: CommandBufferLevelPrimary, CommandBufferCount: 1}
	var cb CommandBuffer
	err := check("vkAllocateCommandBuffers", callResult(c.allocateCommandBuffers, uintptr(c.Device), uintptr(unsafe.Pointer(&info)), uintptr(unsafe.Pointer(&cb))))
	return cb, err
}

func (c *DeviceCommands) BeginCommandBuffer(cb CommandBuffer) error {
	info := CommandBufferBeginInfo{SType: StructureTypeCommandBufferBeginInfo, Flags: CommandBufferUsageOneTimeSubmit}
	return check("vkBeginCommandBuffer", callResult(c.beginCommandBuffer, uintptr(cb), uintptr(unsafe.Pointer(&info))))
}

func (c *DeviceCommands) EndCommandBuffer(cb CommandBuffer) error {
	return check("vkEndCommandBuffer", callResult(c.endCommandBuffer, uintptr(cb)))
}

func (c *DeviceCommands) ResetCommandBuffer(cb CommandBuffer) error {
	return check("vkResetCommandBuffer", callResult(c.resetCommandBuffer, uintptr(cb), 0))
}

func (c *DeviceCommands) CmdBindPipeline(cb CommandBuffer, p Pipeline) {
	call(c.cmdBindPipeline, uintptr(cb), PipelineBindPointCompute, uintptr(p))
}

func (c *DeviceCommands) CmdPushConstants(cb CommandBuffer, layout PipelineLayout, data []uint32) {
	if len(data) == 0 {
		return
	}
	call(c.cmdPushConstants, uintptr(cb), uintptr(layout), ShaderStageCompute, 0, uintptr(4*len(data)), uintptr(unsafe.Pointer(&data[0])))
}

// CmdPushStorageBuffers binds buffers to bindings 0..n-1 of set 0.
func (c *DeviceCommands) CmdPushStorageBuffers(cb CommandBuffer, layout PipelineLayout, infos []DescriptorBufferInfo) {
	writes := make([]WriteDescriptorSet, len(infos))
	for i := range infos {
		writes[i] = WriteDescriptorSet{
			SType:           StructureTypeWriteDescriptorSet,
			DstBinding:      uint32(i),
			DescriptorCount: 1,
			DescriptorType:  DescriptorTypeStorageBuffer,
			PBufferInfo:     &infos[i],
		}
	}
	call(c.cmdPushDescriptorSet, uintptr(cb), PipelineBindPointCompute, uintptr(layout), 0, uintptr(len(writes)), uintptr(unsafe.Pointer(&writes[0])))
}

func (c *DeviceCommands) CmdDispatch(cb CommandBuffer, x, y, z uint32) {
	call(c.cmdDispatch, uintptr(cb), uintptr(x), uintptr(y), uintptr(z))
}

// CmdMemoryBarrier records a global memory barrier.
func (c *DeviceCommands) CmdMemoryBarrier(cb CommandBuffer, srcStage, dstStage, srcAccess, dstAccess uint32) {
	b := MemoryBarrier{SType: StructureTypeMemoryBarrier, SrcAccessMask: srcAccess, DstAccessMask: dstAccess}
	call(c.cmdPipelineBarrier, uintptr(cb), uintptr(srcStage), uintptr(dstStage), 0, 1, uintptr(unsafe.Pointer(&b)), 0, 0, 0, 0)
}

func (c *DeviceCommands) CmdCopyBuffer(cb CommandBuffer, src, dst Buffer, region BufferCopy) {
	call(c.cmdCopyBuffer, uintptr(cb), uintptr(src), uintptr(dst), 1, uintptr(unsafe.Pointer(&region)))
}

func (c *DeviceCommands) CmdFillBuffer(cb CommandBuffer, dst Buffer, offset, size uint64, value uint32) {
	call(c.cmdFillBuffer, uintptr(cb), uintptr(dst), uintptr(offset), uintptr(size), uintptr(value))
}

// QueueSubmit submits one command buffer, signalling fence.
func (c *DeviceCommands) QueueSubmit(cb CommandBuffer, fence Fence) error {
	info := SubmitInfo{SType: StructureTypeSubmitInfo, CommandBufferCount: 1, PCommandBuffers: &cb}
	return check("vkQueueSubmit", callResult(c.queueSubmit, uintptr(c.Queue), 1, uintptr(unsafe.Pointer(&info)), uintptr(fence)))
}

func (c *DeviceCommands) CreateFence() (Fence, error) {
	info := FenceCreateInfo{SType: StructureTypeFenceCreateInfo}
	var f Fence
	err := check("vkCreateFence", callResult(c.createFence, uintptr(c.Device), uintptr(unsafe.Pointer(&info)), 0, uintptr(unsafe.Pointer(&f))))
	return f, err
}

func (c *DeviceCommands) DestroyFence(f Fence) {
	call(c.destroyFence, uintptr(c.Device), uintptr(f), 0)
}

// WaitFence waits for fence without a time limit and resets it.
func (c *DeviceCommands) WaitFence(f Fence) error {
	if err := check("vkWaitForFences", callResult(c.waitForFences, uintptr(c.Device), 1, uintptr(unsafe.Pointer(&f)), 1, ^uintptr(0))); err != nil {
		return err
	}
	return check("vkResetFences", callResult(c.resetFences, uintptr(c.Device), 1, uintptr(unsafe.Pointer(&f))))
}
