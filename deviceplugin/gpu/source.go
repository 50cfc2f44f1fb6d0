package gpu

import (
	"context"
	"fmt"
)

// Vendor is who made a GPU, as the GPUNode status spells it.
type Vendor string

// Vendors of the GPUs the agent manages.
const (
	VendorNVIDIA Vendor = "NVIDIA"
	VendorAMD    Vendor = "AMD"
)

// Info is what does not change while the agent runs: which GPU it is.
type Info struct {
	// Index is the GPU's index on this node: NVML's numbering for NVIDIA GPUs, the order of PCI
	// addresses for AMD GPUs, AMD after NVIDIA on a node with both.
	Index int
	// UUID is the GPU-... identifier: NVML's, or for AMD GPUs the one ROCm shows.
	UUID string
	// Vendor is NVIDIA or AMD.
	Vendor Vendor
	// Product is the model name, for example "NVIDIA H100 80GB HBM3".
	Product string
	// MemoryTotalBytes is the GPU's memory as the driver reported it at start.
	MemoryTotalBytes uint64
	// PCIBusID is the GPU's PCI address in 0000:03:00.0 form, where the source knows it.
	PCIBusID string
	// RenderNode is the GPU's DRM render node on the host (/dev/dri/renderD128), which a
	// container must be given to compute on an AMD GPU; empty for NVIDIA and simulated GPUs.
	RenderNode string
}

// ResourceName is the extended resource that carries this GPU, for example sdfleet.io/gpu-2.
func (i Info) ResourceName(prefix string) string { return fmt.Sprintf("%s%d", prefix, i.Index) }

// Sample is one reading of a GPU's live load.
type Sample struct {
	Index              int
	MemoryUsedBytes    uint64
	MemoryTotalBytes   uint64
	UtilizationPercent uint32
	TemperatureCelsius uint32
	PowerMilliwatts    uint32
	// Err is set when a query the agent relies on failed; the rest of the sample is then not to
	// be trusted. Unsupported optional queries (temperature on some boards) are not errors.
	// Its text is the health reason, so it names the source: "NVML query failed: ...".
	Err error
}

// EventKind is the kind of error event NVML delivered.
type EventKind int

const (
	// EventXID is an Xid critical error; Event.XID carries its code.
	EventXID EventKind = iota
	// EventDoubleBitECC is an uncorrectable memory error.
	EventDoubleBitECC
	// EventLost means the GPU fell off the bus or the event loop lost it.
	EventLost
	// EventUncorrectableRAS is a rise of an AMD GPU's uncorrectable RAS error counter;
	// Event.Detail names the block and the counts.
	EventUncorrectableRAS
)

func (k EventKind) String() string {
	switch k {
	case EventXID:
		return "XID"
	case EventDoubleBitECC:
		return "double-bit ECC error"
	case EventLost:
		return "GPU lost"
	case EventUncorrectableRAS:
		return "uncorrectable RAS errors"
	default:
		return fmt.Sprintf("event kind %d", int(k))
	}
}

// Event is one error event for one GPU.
type Event struct {
	Index int
	Kind  EventKind
	// XID is the Xid code when Kind is EventXID.
	XID uint64
	// Detail adds to the kind in the health reason, for example "umc 0 -> 2".
	Detail string
}

// Source is where the agent's GPU facts come from.
type Source interface {
	// Devices lists the managed GPUs, ordered by index. It is empty on a node without GPUs.
	Devices() []Info
	// Sample reads every managed GPU once, in the order of Devices.
	Sample() []Sample
	// WatchEvents delivers error events to handle until ctx ends. It returns nil when ctx ends
	// and an error only when events cannot be watched at all.
	WatchEvents(ctx context.Context, handle func(Event)) error
	// Simulated says whether the GPUs are simulated.
	Simulated() bool
	// Close releases the library.
	Close() error
}

// None is the Source of a node without GPUs (or without a usable NVML library): the agent keeps
// publishing, with zero GPUs, so the cluster knows the node is CPU-only.
type None struct{}

var _ Source = None{}

// Devices returns no GPUs.
func (None) Devices() []Info { return nil }

// Sample returns no samples.
func (None) Sample() []Sample { return nil }

// WatchEvents waits for ctx to end: there is nothing to watch.
func (None) WatchEvents(ctx context.Context, _ func(Event)) error {
	<-ctx.Done()
	return nil
}

// Simulated is false.
func (None) Simulated() bool { return false }

// Close does nothing.
func (None) Close() error { return nil }
