package vulkan

import (
	"fmt"

	"github.com/sdfleet/sdfleet/inference/backend/vulkan/vk"
)

// recorder accumulates one command buffer: every operation between two
// waits is recorded, with the barriers the data dependencies need, and
// submitted once.
type recorder struct {
	d     *Device
	pool  vk.CommandPool
	cb    vk.CommandBuffer
	fence vk.Fence
	open  bool

	// Buffers written and read since the last barrier: a new command that
	// reads or writes a written buffer, or writes a read one, needs a
	// barrier first.
	written map[vk.Buffer]bool
	read    map[vk.Buffer]bool

	// Work for after the fence: staging buffers to recycle and downloads
	// to copy out.
	after []func()

	staged uint64

	dispatches, barriers, submits int
}

func (d *Device) recorder() (*recorder, error) {
	if d.rec != nil {
		return d.rec, nil
	}
	r := &recorder{d: d, written: map[vk.Buffer]bool{}, read: map[vk.Buffer]bool{}}
	var err error
	if r.pool, err = d.dev.CreateCommandPool(&vk.CommandPoolCreateInfo{SType: vk.StructureTypeCommandPoolCreateInfo, Flags: vk.CommandPoolCreateResetCommandBuffer, QueueFamilyIndex: d.family}); err != nil {
		return nil, err
	}
	if r.cb, err = d.dev.AllocateCommandBuffer(r.pool); err != nil {
		d.dev.DestroyCommandPool(r.pool)
		return nil, err
	}
	if r.fence, err = d.dev.CreateFence(); err != nil {
		d.dev.DestroyCommandPool(r.pool)
		return nil, err
	}
	d.rec = r
	return r, nil
}

func (r *recorder) begin() error {
	if r.open {
		return nil
	}
	if err := r.d.dev.BeginCommandBuffer(r.cb); err != nil {
		return err
	}
	r.open = true
	return nil
}

// hazard records a barrier when the command about to be recorded depends
// on an earlier one of this command buffer.
func (r *recorder) hazard(reads, writes []*Buffer) {
	need := false
	for _, b := range reads {
		need = need || r.written[b.buf]
	}
	for _, b := range writes {
		need = need || r.written[b.buf] || r.read[b.buf]
	}
	if need {
		const stages = vk.PipelineStageComputeShader | vk.PipelineStageTransfer
		r.d.dev.CmdMemoryBarrier(r.cb, stages, stages,
			vk.AccessShaderWrite|vk.AccessTransferWrite,
			vk.AccessShaderRead|vk.AccessShaderWrite|vk.AccessTransferRead|vk.AccessTransferWrite)
		clear(r.written)
		clear(r.read)
		r.barriers++
	}
	for _, b := range reads {
		r.read[b.buf] = true
	}
	for _, b := range writes {
		r.written[b.buf] = true
	}
}

// dispatch records one compute dispatch.
func (r *recorder) dispatch(k *kernel, reads, writes []*Buffer, push []uint32, groups [3]uint32) error {
	if err := r.begin(); err != nil {
		return err
	}
	if len(reads)+len(writes) != k.bindings {
		return fmt.Errorf("kernel %s takes %d buffers, got %d", k.name, k.bindings, len(reads)+len(writes))
	}
	if len(push) > k.pushWords {
		return fmt.Errorf("kernel %s takes %d push-constant words, got %d", k.name, k.pushWords, len(push))
	}
	for i, g := range groups {
		if g == 0 {
			return nil
		}
		if g > r.d.props.MaxComputeWorkGroupCount[i] {
			return fmt.Errorf("kernel %s: %d workgroups in dimension %d exceed the device's limit of %d", k.name, g, i, r.d.props.MaxComputeWorkGroupCount[i])
		}
	}
	buffers := append(append([]*Buffer(nil), reads...), writes...)
	var words []uint32
	if k.variant.bda {
		// The buffers' device addresses, then the kernel's own words.
		words = make([]uint32, 2*k.bindings+k.pushWords)
		for i, b := range buffers {
			if b.addr == 0 {
				return fmt.Errorf("kernel %s: buffer %d has no device address", k.name, i)
			}
			words[2*i], words[2*i+1] = uint32(b.addr), uint32(b.addr>>32)
		}
		copy(words[2*k.bindings:], push)
	} else {
		words = make([]uint32, k.pushWords)
		copy(words, push)
	}
	r.hazard(reads, writes)
	r.d.dev.CmdBindPipeline(r.cb, k.pipeline)
	if !k.variant.bda {
		infos := make([]vk.DescriptorBufferInfo, 0, k.bindings)
		for _, b := range buffers {
			infos = append(infos, vk.DescriptorBufferInfo{Buffer: b.buf, Range: b.size})
		}
		r.d.dev.CmdPushStorageBuffers(r.cb, k.layout, infos)
	}
	r.d.dev.CmdPushConstants(r.cb, k.layout, words)
	r.d.dev.CmdDispatch(r.cb, groups[0], groups[1], groups[2])
	r.dispatches++
	if k.variant.bda {
		r.d.addressed++
	}
	return nil
}

// copyBuffer records a copy of size bytes.
func (r *recorder) copyBuffer(dst, src *Buffer, dstOff, srcOff, size uint64) error {
	if err := r.begin(); err != nil {
		return err
	}
	r.hazard([]*Buffer{src}, []*Buffer{dst})
	r.d.dev.CmdCopyBuffer(r.cb, src.buf, dst.buf, vk.BufferCopy{SrcOffset: srcOff, DstOffset: dstOff, Size: size})
	return nil
}

// submit ends the command buffer, submits it and waits: the one place the
// host waits for the device.
func (r *recorder) submit() error {
	if !r.open {
		return nil
	}
	r.open = false
	const stages = vk.PipelineStageComputeShader | vk.PipelineStageTransfer
	r.d.dev.CmdMemoryBarrier(r.cb, stages, vk.PipelineStageHost, vk.AccessShaderWrite|vk.AccessTransferWrite, vk.AccessHostRead)
	clear(r.written)
	clear(r.read)
	if err := r.d.dev.EndCommandBuffer(r.cb); err != nil {
		return err
	}
	err := r.d.dev.QueueSubmit(r.cb, r.fence)
	if err == nil {
		err = r.d.dev.WaitFence(r.fence)
	}
	r.submits++
	after := r.after
	r.after = nil
	if err != nil {
		if vk.IsDeviceLost(err) {
			return fmt.Errorf("the Vulkan device %s was lost: %w", r.d.props.DeviceName, err)
		}
		return err
	}
	for _, f := range after {
		f()
	}
	return r.d.dev.ResetCommandBuffer(r.cb)
}

func (r *recorder) destroy() {
	r.d.dev.DestroyFence(r.fence)
	r.d.dev.DestroyCommandPool(r.pool)
}
