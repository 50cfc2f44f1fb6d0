package gpu_test

import (
	"context"
	"errors"
	"testing"

	"github.com/sdfleet/sdfleet/deviceplugin/gpu"
)

// fixed is a Source with fixed GPUs that raises one event per GPU, then waits.
type fixed struct {
	infos     []gpu.Info
	simulated bool
	closed    bool
}

func (f *fixed) Devices() []gpu.Info { return f.infos }
func (f *fixed) Sample() []gpu.Sample {
	out := make([]gpu.Sample, len(f.infos))
	for i, info := range f.infos {
		out[i] = gpu.Sample{Index: info.Index, MemoryUsedBytes: uint64(100 + info.Index)}
	}
	return out
}
func (f *fixed) WatchEvents(ctx context.Context, handle func(gpu.Event)) error {
	for _, info := range f.infos {
		handle(gpu.Event{Index: info.Index, Kind: gpu.EventLost})
	}
	<-ctx.Done()
	return nil
}
func (f *fixed) Simulated() bool { return f.simulated }
func (f *fixed) Close() error {
	f.closed = true
	return errors.New("closed " + string(f.infos[0].Vendor))
}

func TestCombineRenumbersAfterTheSourceBefore(t *testing.T) {
	nv := &fixed{infos: []gpu.Info{{Index: 0, UUID: "GPU-n0", Vendor: gpu.VendorNVIDIA}, {Index: 1, UUID: "GPU-n1", Vendor: gpu.VendorNVIDIA}}}
	amd := &fixed{infos: []gpu.Info{{Index: 1, UUID: "GPU-a1", Vendor: gpu.VendorAMD}}} // GPU 0 not visible
	c := gpu.Combine(nv, amd)
	devs := c.Devices()
	if len(devs) != 3 || devs[2].UUID != "GPU-a1" || devs[2].Index != 2 || devs[1].Index != 1 {
		t.Fatalf("devices: %+v", devs)
	}
	samples := c.Sample()
	if len(samples) != 3 || samples[2].Index != 2 || samples[2].MemoryUsedBytes != 101 {
		t.Fatalf("samples: %+v", samples)
	}
	ctx, cancel := context.WithCancel(context.Background())
	seen := make(chan int, 3)
	done := make(chan error)
	go func() { done <- c.WatchEvents(ctx, func(ev gpu.Event) { seen <- ev.Index }) }()
	got := map[int]bool{}
	for range 3 {
		got[<-seen] = true
	}
	cancel()
	if err := <-done; err != nil || !got[0] || !got[1] || !got[2] {
		t.Fatalf("events on GPUs %v, error %v", got, err)
	}
	if c.Simulated() {
		t.Error("no source is simulated")
	}
	if err := c.Close(); !nv.closed || !amd.closed || err == nil || err.Error() != "closed NVIDIA\nclosed AMD" {
		t.Errorf("close: %v", err)
	}
}
