package vulkan

// memoryUsage is the device-local memory a device holds now and at most,
// pooled buffers included: what the image's pod needs of the GPU.
type memoryUsage struct {
	now, peak int64
}

func (u *memoryUsage) add(n int64) {
	u.now += n
	u.peak = max(u.peak, u.now)
}

// PeakMemoryBytes is the most device-local memory the device has held at
// once since it was opened: weights, activations and pooled buffers.
func (d *Device) PeakMemoryBytes() int64 { return d.usage.peak }

// PeakMemoryBytes is the device's peak memory (see Device.PeakMemoryBytes).
func (b *Backend) PeakMemoryBytes() int64 { return b.d.PeakMemoryBytes() }
