package gpu_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/gpus"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
	"github.com/go-logr/logr"

	"github.com/sdfleet/sdfleet/deviceplugin/gpu"
	"github.com/sdfleet/sdfleet/deviceplugin/health"
)

const gib = 1 << 30

// newServer returns a dgxh100-style mock with n GPUs whose live queries succeed with fixed values
// that tests then override.
func newServer(n int) (*server.Server, []*server.Device) {
	srv := dgxh100.NewWithGPUs(gpus.Multiple(n, gpus.H100_SXM5_80GB)...)
	devs := make([]*server.Device, n)
	for i, d := range srv.Devices {
		dev := d.(*server.Device)
		devs[i] = dev
		used := uint64(i+1) * gib
		dev.GetMemoryInfo_v2Func = func() (nvml.Memory_v2, nvml.Return) {
			return nvml.Memory_v2{Total: 80 * gib, Used: used, Free: 80*gib - used}, nvml.SUCCESS
		}
		dev.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
			return nvml.Utilization{Gpu: uint32(10 * (i + 1))}, nvml.SUCCESS
		}
		dev.GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) { return 40, nvml.SUCCESS }
		dev.GetPowerUsageFunc = func() (uint32, nvml.Return) { return 250_000, nvml.SUCCESS }
	}
	return srv, devs
}

func open(t *testing.T, srv nvml.Interface, visible ...string) *gpu.NVML {
	t.Helper()
	a, err := gpu.OpenNVML(srv, gpu.NVMLOptions{Visible: visible, EventWait: 20 * time.Millisecond, Log: logr.Discard()})
	if err != nil {
		t.Fatalf("OpenNVML: %v", err)
	}
	return a
}

func TestDevicesAndSample(t *testing.T) {
	srv, devs := newServer(2)
	a := open(t, srv)
	infos := a.Devices()
	if len(infos) != 2 {
		t.Fatalf("got %d devices, want 2", len(infos))
	}
	for i, info := range infos {
		if info.Index != i || info.UUID != devs[i].UUID || info.Product != gpus.H100_SXM5_80GB.Name || info.MemoryTotalBytes != 80*gib {
			t.Errorf("device %d: got %+v", i, info)
		}
		if got, want := info.ResourceName("sdfleet.io/gpu-"), "sdfleet.io/gpu-"+string(rune('0'+i)); got != want {
			t.Errorf("resource name: got %s, want %s", got, want)
		}
	}
	samples := a.Sample()
	for i, s := range samples {
		if s.Err != nil {
			t.Fatalf("sample %d: %v", i, s.Err)
		}
		if s.MemoryUsedBytes != uint64(i+1)*gib || s.UtilizationPercent != uint32(10*(i+1)) || s.TemperatureCelsius != 40 || s.PowerMilliwatts != 250_000 {
			t.Errorf("sample %d: got %+v", i, s)
		}
	}
}

func TestSampleCases(t *testing.T) {
	tests := []struct {
		name     string
		override func(d *server.Device, calls *int)
		check    func(t *testing.T, s gpu.Sample, v2Calls int)
	}{
		{
			name: "memory v2 unsupported falls back to v1 and is not asked again",
			override: func(d *server.Device, calls *int) {
				d.GetMemoryInfo_v2Func = func() (nvml.Memory_v2, nvml.Return) { *calls++; return nvml.Memory_v2{}, nvml.ERROR_NOT_SUPPORTED }
				d.GetMemoryInfoFunc = func() (nvml.Memory, nvml.Return) { return nvml.Memory{Total: 16 * gib, Used: 4 * gib}, nvml.SUCCESS }
			},
			check: func(t *testing.T, s gpu.Sample, v2Calls int) {
				if s.Err != nil || s.MemoryUsedBytes != 4*gib || s.MemoryTotalBytes != 16*gib {
					t.Errorf("got %+v, want 4 GiB of 16 GiB from v1", s)
				}
				if v2Calls != 1 {
					t.Errorf("GetMemoryInfo_v2 called %d times, want once (at start) then never again", v2Calls)
				}
			},
		},
		{
			name: "unsupported utilization, temperature and power are not errors",
			override: func(d *server.Device, _ *int) {
				d.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) { return nvml.Utilization{}, nvml.ERROR_NOT_SUPPORTED }
				d.GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED }
				d.GetPowerUsageFunc = func() (uint32, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED }
			},
			check: func(t *testing.T, s gpu.Sample, _ int) {
				if s.Err != nil || s.UtilizationPercent != 0 || s.TemperatureCelsius != 0 || s.MemoryUsedBytes != gib {
					t.Errorf("got %+v, want memory only and no error", s)
				}
			},
		},
		{
			name: "failed memory query is an error",
			override: func(d *server.Device, calls *int) {
				d.GetMemoryInfo_v2Func = func() (nvml.Memory_v2, nvml.Return) {
					*calls++
					if *calls > 1 { // start-up succeeds, the sample fails
						return nvml.Memory_v2{}, nvml.ERROR_GPU_IS_LOST
					}
					return nvml.Memory_v2{Total: gib}, nvml.SUCCESS
				}
			},
			check: func(t *testing.T, s gpu.Sample, _ int) {
				if !errors.Is(s.Err, nvml.ERROR_GPU_IS_LOST) {
					t.Errorf("got error %v, want ERROR_GPU_IS_LOST", s.Err)
				}
			},
		},
		{
			name: "failed utilization query is an error",
			override: func(d *server.Device, _ *int) {
				d.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) { return nvml.Utilization{}, nvml.ERROR_UNKNOWN }
			},
			check: func(t *testing.T, s gpu.Sample, _ int) {
				if !errors.Is(s.Err, nvml.ERROR_UNKNOWN) || !strings.Contains(s.Err.Error(), "GetUtilizationRates") {
					t.Errorf("got error %v, want GetUtilizationRates: ERROR_UNKNOWN", s.Err)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, devs := newServer(1)
			calls := 0
			tc.override(devs[0], &calls)
			a := open(t, srv)
			a.Sample()
			tc.check(t, a.Sample()[0], calls)
		})
	}
}

func TestVisibleGPUs(t *testing.T) {
	srv, devs := newServer(4)
	tests := []struct {
		visible []string
		want    []int
		wantErr string
	}{
		{visible: nil, want: []int{0, 1, 2, 3}},
		{visible: []string{"all"}, want: []int{0, 1, 2, 3}},
		{visible: []string{"2", strings.ToLower(devs[0].UUID)}, want: []int{0, 2}},
		{visible: []string{"7"}, wantErr: `visible GPU "7" matches no GPU`},
	}
	for _, tc := range tests {
		a, err := gpu.OpenNVML(srv, gpu.NVMLOptions{Visible: tc.visible, Log: logr.Discard()})
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("visible %v: got error %v, want %q", tc.visible, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("visible %v: %v", tc.visible, err)
		}
		var got []int
		for _, d := range a.Devices() {
			got = append(got, d.Index)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("visible %v: got %v, want %v", tc.visible, got, tc.want)
		}
	}
}

func TestLibraryNotFound(t *testing.T) {
	lib := &mock.Interface{
		InitFunc: func() nvml.Return { return nvml.ERROR_LIBRARY_NOT_FOUND },
	}
	if _, err := gpu.OpenNVML(lib, gpu.NVMLOptions{}); !errors.Is(err, gpu.ErrLibraryNotFound) {
		t.Fatalf("got %v, want ErrLibraryNotFound", err)
	}
	// The real library on this machine: go-nvml loads libnvidia-ml at run time, so a missing
	// driver must show up as the same error, not as a crash.
	if _, err := gpu.OpenNVML(nvml.New(nvml.WithLibraryPath("/nonexistent/libnvidia-ml.so.1")), gpu.NVMLOptions{}); !errors.Is(err, gpu.ErrLibraryNotFound) {
		t.Fatalf("real NVML with a missing library: got %v, want ErrLibraryNotFound", err)
	}
}

// eventServer adds an event set delivering the queued events to a mock server.
func eventServer(srv *server.Server, queue chan nvml.EventData, waitRet func() nvml.Return) {
	srv.EventSetCreateFunc = func() (nvml.EventSet, nvml.Return) {
		return &mock.EventSet{
			FreeFunc: func() nvml.Return { return nvml.SUCCESS },
			WaitFunc: func(timeoutMs uint32) (nvml.EventData, nvml.Return) {
				if r := waitRet(); r != nvml.SUCCESS {
					return nvml.EventData{}, r
				}
				select {
				case ev := <-queue:
					return ev, nvml.SUCCESS
				case <-time.After(time.Duration(timeoutMs) * time.Millisecond):
					return nvml.EventData{}, nvml.ERROR_TIMEOUT
				}
			},
		}, nvml.SUCCESS
	}
	for _, d := range srv.Devices {
		dev := d.(*server.Device)
		dev.GetSupportedEventTypesFunc = func() (uint64, nvml.Return) { return nvml.EventTypeAll, nvml.SUCCESS }
		dev.RegisterEventsFunc = func(uint64, nvml.EventSet) nvml.Return { return nvml.SUCCESS }
	}
}

// TestEventsXIDFilteringAndRecovery drives the adapter's event loop with mock events into the
// health tracker: an application Xid is ignored, a critical one withdraws the GPU, and probes
// after the quiet period bring it back.
func TestEventsXIDFilteringAndRecovery(t *testing.T) {
	srv, devs := newServer(2)
	queue := make(chan nvml.EventData, 4)
	eventServer(srv, queue, func() nvml.Return { return nvml.SUCCESS })
	a := open(t, srv)
	now := time.Unix(1000, 0)
	clock := func() time.Time { return now }
	tracker := health.NewTracker([]int{0, 1}, health.Policy{IgnoredXIDs: health.DefaultIgnoredXIDs, QuietPeriod: time.Minute, RecoveryProbes: 2}, clock)

	events := make(chan gpu.Event, 8)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := a.WatchEvents(ctx, func(ev gpu.Event) { events <- ev }); err != nil {
			t.Errorf("WatchEvents: %v", err)
		}
	}()
	defer func() { cancel(); wg.Wait() }()

	queue <- nvml.EventData{Device: devs[1], EventType: nvml.EventTypeXidCriticalError, EventData: 13}
	queue <- nvml.EventData{Device: devs[1], EventType: nvml.EventTypeXidCriticalError, EventData: 79}
	queue <- nvml.EventData{Device: devs[0], EventType: nvml.EventTypeDoubleBitEccError}

	ev := <-events
	if ev.Index != 1 || ev.Kind != gpu.EventXID || ev.XID != 13 {
		t.Fatalf("first event: got %+v, want Xid 13 on GPU 1", ev)
	}
	if tr := tracker.Event(ev); tr != nil || !tracker.Status(1).Healthy {
		t.Fatalf("Xid 13 is an application error and must be ignored; got transition %+v", tr)
	}
	ev = <-events
	tr := tracker.Event(ev)
	if tr == nil || tr.Index != 1 || tr.Healthy || tr.Reason != "XID 79" {
		t.Fatalf("Xid 79: got transition %+v, want GPU 1 unhealthy with reason XID 79", tr)
	}
	ev = <-events
	if tr := tracker.Event(ev); tr == nil || tr.Index != 0 || tr.Reason != "double-bit ECC error" {
		t.Fatalf("ECC event: got transition %+v, want GPU 0 unhealthy", tr)
	}

	// Probes before the quiet period do not recover; after it, the second good probe does.
	if tr := tracker.Probe(1, a.Sample()[1].Err); tr != nil {
		t.Fatalf("recovered before the quiet period: %+v", tr)
	}
	now = now.Add(2 * time.Minute)
	if tr := tracker.Probe(1, a.Sample()[1].Err); tr == nil || !tr.Healthy {
		t.Fatalf("after the quiet period and 2 good probes: got %+v, want recovery", tr)
	}
	if c := tracker.Counts(); c.BecameUnhealthy != 2 || c.Recovered != 1 {
		t.Errorf("counts: got %+v, want 2 unhealthy, 1 recovered", c)
	}
}

func TestEventsLostGPUConcernsAll(t *testing.T) {
	srv, _ := newServer(3)
	var mu sync.Mutex
	lost := true
	eventServer(srv, make(chan nvml.EventData), func() nvml.Return {
		mu.Lock()
		defer mu.Unlock()
		if lost {
			lost = false
			return nvml.ERROR_GPU_IS_LOST
		}
		return nvml.SUCCESS
	})
	a := open(t, srv)
	events := make(chan gpu.Event, 8)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = a.WatchEvents(ctx, func(ev gpu.Event) { events <- ev })
	}()
	seen := map[int]bool{}
	for range 3 {
		ev := <-events
		if ev.Kind != gpu.EventLost {
			t.Errorf("got %+v, want a lost-GPU event", ev)
		}
		seen[ev.Index] = true
	}
	cancel()
	<-done
	if len(seen) != 3 {
		t.Errorf("lost-GPU events reached GPUs %v, want all 3", seen)
	}
}
