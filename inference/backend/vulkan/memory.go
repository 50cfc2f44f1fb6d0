package vulkan

import (
	"fmt"
	"unsafe"

	"github.com/sdfleet/sdfleet/inference/backend"

	"github.com/sdfleet/sdfleet/inference/backend/vulkan/vk"
)

// Buffer is one VkBuffer with its own memory. Device-local buffers hold
// weights and activations; host-visible ones stage uploads and downloads.
type Buffer struct {
	buf    vk.Buffer
	mem    vk.DeviceMemory
	addr   uint64 // device address of a device-local buffer
	size   uint64 // bytes usable by the caller
	class  uint64 // allocation size class in the pool
	host   []byte // mapped memory of a staging buffer
	pooled bool
	// counted is the device-local memory this buffer adds to the
	// device's usage (0 for staging buffers).
	counted int64
}

// Size is the buffer's usable size in bytes.
func (b *Buffer) Size() uint64 { return b.size }

func (d *Device) findMemoryType(bits uint32, want uint32) (uint32, bool) {
	for i := uint32(0); i < d.mem.MemoryTypeCount; i++ {
		if bits&(1<<i) != 0 && d.mem.MemoryTypes[i].PropertyFlags&want == want {
			return i, true
		}
	}
	return 0, false
}

// allocate creates a buffer of size bytes; staging buffers are
// host-visible and mapped, the others device-local. what names the
// allocation in errors.
func (d *Device) allocate(what string, size uint64, staging bool) (*Buffer, error) {
	if size == 0 {
		size = 4
	}
	// Buffers above maxStorageBufferRange are reached through device
	// addresses (see run), so one allocation is the limit.
	if limit := d.props.MaxMemoryAllocationSize; limit > 0 && size > limit {
		return nil, fmt.Errorf("%s needs %d bytes, more than this device's maxMemoryAllocationSize of %d bytes", what, size, limit)
	}
	usage := uint32(vk.BufferUsageStorageBuffer | vk.BufferUsageTransferSrc | vk.BufferUsageTransferDst)
	if !staging {
		usage |= vk.BufferUsageShaderDeviceAddress
	}
	b := &Buffer{size: size}
	var err error
	if b.buf, err = d.dev.CreateBuffer(&vk.BufferCreateInfo{SType: vk.StructureTypeBufferCreateInfo, Size: size, Usage: usage, SharingMode: vk.SharingModeExclusive}); err != nil {
		return nil, d.allocError(what, size, err)
	}
	req := d.dev.BufferMemoryRequirements(b.buf)
	want := uint32(vk.MemoryPropertyDeviceLocal)
	if staging {
		want = vk.MemoryPropertyHostVisible | vk.MemoryPropertyHostCoherent
	}
	typ, ok := d.findMemoryType(req.MemoryTypeBits, want)
	if !ok && !staging {
		typ, ok = d.findMemoryType(req.MemoryTypeBits, 0)
	}
	if !ok {
		d.dev.DestroyBuffer(b.buf)
		return nil, fmt.Errorf("%s: no memory type with properties %#x", what, want)
	}
	info := vk.MemoryAllocateInfo{SType: vk.StructureTypeMemoryAllocateInfo, AllocationSize: req.Size, MemoryTypeIndex: typ}
	flags := vk.MemoryAllocateFlagsInfo{SType: vk.StructureTypeMemoryAllocateFlagsInfo, Flags: vk.MemoryAllocateDeviceAddress}
	if !staging {
		info.PNext = unsafe.Pointer(&flags)
	}
	if b.mem, err = d.dev.AllocateMemory(&info); err != nil {
		d.dev.DestroyBuffer(b.buf)
		return nil, d.allocError(what, req.Size, err)
	}
	if err = d.dev.BindBufferMemory(b.buf, b.mem, 0); err != nil {
		d.free(b)
		return nil, err
	}
	if staging {
		if b.host, err = d.dev.MapMemory(b.mem, 0, size); err != nil {
			d.free(b)
			return nil, err
		}
	} else {
		b.addr = d.dev.BufferDeviceAddress(b.buf)
		b.counted = int64(req.Size)
		d.usage.add(b.counted)
	}
	d.allocations++
	return b, nil
}

func (d *Device) allocError(what string, size uint64, err error) error {
	if vk.IsOutOfMemory(err) {
		return &backend.OutOfMemoryError{What: what, Bytes: int64(size), Device: d.props.DeviceName, Err: err}
	}
	return fmt.Errorf("allocating %d bytes for %s: %w", size, what, err)
}

func (d *Device) free(b *Buffer) {
	if b.host != nil {
		d.dev.UnmapMemory(b.mem)
		b.host = nil
	}
	d.dev.DestroyBuffer(b.buf)
	d.dev.FreeMemory(b.mem)
	d.usage.add(-b.counted)
	b.counted = 0
}

// bufferPool recycles buffers by size class so that a UNet evaluation's
// activations reuse the previous step's memory instead of allocating.
type bufferPool struct {
	d    *Device
	free map[poolKey][]*Buffer
	// Live counts buffers handed out and not yet returned, so tests can
	// prove that a step returns everything it takes.
	live int
}

type poolKey struct {
	class   uint64
	staging bool
}

func (p *bufferPool) init(d *Device) { p.d, p.free = d, map[poolKey][]*Buffer{} }

// sizeClass rounds up to a multiple of 4 KiB below 1 MiB and to 1/8 of the
// power of two above, bounding waste at 12.5%.
func sizeClass(n uint64) uint64 {
	if n <= 1<<20 {
		return (n + 4095) &^ 4095
	}
	step := uint64(1)
	for step*16 <= n {
		step <<= 1
	}
	return (n + step - 1) / step * step
}

func (p *bufferPool) get(what string, size uint64, staging bool) (*Buffer, error) {
	class := sizeClass(size)
	key := poolKey{class, staging}
	if list := p.free[key]; len(list) > 0 {
		b := list[len(list)-1]
		p.free[key] = list[:len(list)-1]
		b.size = size
		if staging {
			b.host = b.host[:cap(b.host)][:size]
		}
		p.live++
		return b, nil
	}
	if limit := p.d.props.MaxMemoryAllocationSize; class > limit && size <= limit {
		class = size
	}
	b, err := p.d.allocate(what, class, staging)
	if err != nil {
		return nil, err
	}
	b.class, b.pooled, b.size = class, true, size
	if staging {
		b.host = b.host[:size]
	}
	p.live++
	return b, nil
}

func (p *bufferPool) put(b *Buffer) {
	p.live--
	key := poolKey{b.class, b.host != nil}
	p.free[key] = append(p.free[key], b)
}

func (p *bufferPool) destroy() {
	for _, list := range p.free {
		for _, b := range list {
			p.d.free(b)
		}
	}
	p.free = map[poolKey][]*Buffer{}
}
