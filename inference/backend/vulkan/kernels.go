package vulkan

import (
	"embed"
	"encoding/binary"
	"fmt"

	"github.com/sdfleet/sdfleet/inference/backend/vulkan/vk"
)

//go:generate sh shaders/compile.sh

// The SPIR-V is committed next to its GLSL source so that a build never
// needs glslc; make verify recompiles and compares it.
//
//go:embed shaders/*.spv
var spirv embed.FS

// kernelSpec is a shader's interface: its storage buffers (inputs first,
// outputs last, bindings 0..n-1 of set 0, or as many device addresses at
// the start of the push constants in the _bda variant) and its
// push-constant words after them.
type kernelSpec struct {
	bindings  int
	pushWords int
}

var kernelSpecs = map[string]kernelSpec{
	"matmul":        {bindings: 5, pushWords: 12},
	"conv2d":        {bindings: 5, pushWords: 12},
	"groupnorm":     {bindings: 4, pushWords: 5},
	"layernorm":     {bindings: 4, pushWords: 3},
	"attention":     {bindings: 4, pushWords: 6},
	"elementwise":   {bindings: 3, pushWords: 7},
	"resize":        {bindings: 2, pushWords: 8},
	"embedding":     {bindings: 3, pushWords: 2},
	"embedding_t32": {bindings: 3, pushWords: 2},
}

// variant is one compiled form of a kernel (see shaders/buffers.glsl).
type variant struct {
	// f32 is set for fp32 activations, unset for fp16.
	f32 bool
	// bda reaches buffers through device addresses in the push constants
	// instead of descriptors.
	bda bool
}

func (v variant) suffix() string {
	s := ""
	if v.f32 {
		s += "_f32"
	}
	if v.bda {
		s += "_bda"
	}
	return s
}

type kernel struct {
	name      string
	variant   variant
	bindings  int
	pushWords int
	module    vk.ShaderModule
	setLayout vk.DescriptorSetLayout
	layout    vk.PipelineLayout
	pipeline  vk.Pipeline
}

// kernelCache creates each pipeline on first use and keeps it for the
// device's lifetime.
type kernelCache struct {
	d       *Device
	kernels map[string]*kernel
}

func (c *kernelCache) init(d *Device) { c.d, c.kernels = d, map[string]*kernel{} }

func (c *kernelCache) get(base string, v variant) (*kernel, error) {
	name := base + v.suffix()
	if k := c.kernels[name]; k != nil {
		return k, nil
	}
	spec, ok := kernelSpecs[base]
	if !ok {
		return nil, fmt.Errorf("no kernel %q", base)
	}
	code, err := spirv.ReadFile("shaders/" + name + ".spv")
	if err != nil {
		return nil, fmt.Errorf("kernel %s: %w", name, err)
	}
	words := make([]uint32, len(code)/4)
	for i := range words {
		words[i] = binary.LittleEndian.Uint32(code[4*i:])
	}
	dev := c.d.dev
	k := &kernel{name: name, variant: v, bindings: spec.bindings, pushWords: spec.pushWords}
	if k.module, err = dev.CreateShaderModule(words); err != nil {
		return nil, fmt.Errorf("kernel %s: %w", name, err)
	}
	pli := vk.PipelineLayoutCreateInfo{SType: vk.StructureTypePipelineLayoutCreateInfo}
	pushBytes := uint32(4 * spec.pushWords)
	if v.bda {
		// Addresses, 8 bytes each, come first; no descriptor set.
		pushBytes += uint32(8 * spec.bindings)
	} else {
		binds := make([]vk.DescriptorSetLayoutBinding, spec.bindings)
		for i := range binds {
			binds[i] = vk.DescriptorSetLayoutBinding{Binding: uint32(i), DescriptorType: vk.DescriptorTypeStorageBuffer, DescriptorCount: 1, StageFlags: vk.ShaderStageCompute}
		}
		if k.setLayout, err = dev.CreateDescriptorSetLayout(&vk.DescriptorSetLayoutCreateInfo{
			SType: vk.StructureTypeDescriptorSetLayoutCreateInfo, Flags: vk.DescriptorSetLayoutCreatePushDescriptor,
			BindingCount: uint32(len(binds)), PBindings: &binds[0],
		}); err != nil {
			c.release(k)
			return nil, fmt.Errorf("kernel %s: %w", name, err)
		}
		pli.SetLayoutCount, pli.PSetLayouts = 1, &k.setLayout
	}
	if pushBytes > c.d.props.MaxPushConstantsSize {
		c.release(k)
		return nil, fmt.Errorf("kernel %s needs %d bytes of push constants, the device allows %d", name, pushBytes, c.d.props.MaxPushConstantsSize)
	}
	pcr := vk.PushConstantRange{StageFlags: vk.ShaderStageCompute, Size: pushBytes}
	if pushBytes > 0 {
		pli.PushConstantRangeCount, pli.PPushConstantRanges = 1, &pcr
	}
	if k.layout, err = dev.CreatePipelineLayout(&pli); err != nil {
		c.release(k)
		return nil, fmt.Errorf("kernel %s: %w", name, err)
	}
	if k.pipeline, err = dev.CreateComputePipeline(&vk.ComputePipelineCreateInfo{
		SType: vk.StructureTypeComputePipelineCreateInfo,
		Stage: vk.PipelineShaderStageCreateInfo{
			SType: vk.StructureTypePipelineShaderStageCreateInfo, Stage: vk.ShaderStageCompute,
			Module: k.module, PName: vk.CString("main"),
		},
		Layout: k.layout,
	}); err != nil {
		c.release(k)
		return nil, fmt.Errorf("kernel %s: %w", name, err)
	}
	c.kernels[name] = k
	return k, nil
}

func (c *kernelCache) release(k *kernel) {
	dev := c.d.dev
	if k.pipeline != 0 {
		dev.DestroyPipeline(k.pipeline)
	}
	if k.layout != 0 {
		dev.DestroyPipelineLayout(k.layout)
	}
	if k.setLayout != 0 {
		dev.DestroyDescriptorSetLayout(k.setLayout)
	}
	if k.module != 0 {
		dev.DestroyShaderModule(k.module)
	}
}

func (c *kernelCache) destroy() {
	for _, k := range c.kernels {
		c.release(k)
	}
	c.kernels = map[string]*kernel{}
}
