package gpu

import (
	"context"
	"fmt"
)

// Info is what does not change while the agent runs: which GPU it is.
type Info struct {
	// Index is the GPU's index as NVML numbers it on this node.
	Index int
	// UUID is NVML's GPU-... identifier.
	UUID string
	// Product is the model name, for example "NVIDIA H100 80GB HBM3".
	Product string
	// MemoryTotalBytes is the GPU's memory as NVML reported it at start.
	MemoryTotalBytes uint64
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
)

func (k EventKind) String() string {
	switch k {
	case EventXID:
		return "XID"
	case EventDoubleBitECC:
		return "double-bit ECC error"
	case EventLost:
		return "GPU lost"
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
