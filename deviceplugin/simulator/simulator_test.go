package simulator_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"

	"github.com/sdfleet/sdfleet/deviceplugin/gpu"
	"github.com/sdfleet/sdfleet/deviceplugin/simulator"
)

const mib = 1 << 20

// fakeClock is a settable clock shared by the simulator and the test.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

const scenario = `
gpus:
- product: NVIDIA L4
  memoryMiB: 1000
  memoryUsedMiB: 100
  utilizationPercent: 5
- uuid: GPU-11111111-2222-3333-4444-555555555555
timeline:
- at: 10s
  gpu: 0
  memoryUsedPercent: 50
  utilizationPercent: 90
- at: 20s
  gpu: 1
  xid: 79
- at: 30s
  gpu: 0
  nvmlError: GPU_IS_LOST
- at: 40s
  gpu: 0
  recover: true
`

func newSim(t *testing.T, text string) (*simulator.Simulator, *gpu.NVML, *fakeClock) {
	t.Helper()
	sc, err := simulator.Parse([]byte(text))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	clock := &fakeClock{now: time.Unix(1000, 0)}
	sim, err := simulator.New(sc, simulator.Options{Seed: "node-a", Now: clock.Now, Log: logr.Discard()})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	src, err := gpu.OpenNVML(sim.Library(), gpu.NVMLOptions{Simulated: true, VendorOf: sim.Vendor, EventWait: 10 * time.Millisecond, Log: logr.Discard()})
	if err != nil {
		t.Fatalf("OpenNVML on the simulator: %v", err)
	}
	return sim, src, clock
}

func TestTimelineThroughTheNVMLAdapter(t *testing.T) {
	sim, src, clock := newSim(t, scenario)
	devs := src.Devices()
	if len(devs) != 2 || devs[0].Product != "NVIDIA L4" || devs[0].MemoryTotalBytes != 1000*mib ||
		devs[1].Product != simulator.DefaultProduct || devs[1].UUID != "GPU-11111111-2222-3333-4444-555555555555" {
		t.Fatalf("devices: got %+v", devs)
	}
	if !strings.HasPrefix(devs[0].UUID, "GPU-") || !src.Simulated() {
		t.Fatalf("default UUID %q must start with GPU- and the source must say simulated", devs[0].UUID)
	}
	s := src.Sample()[0]
	if s.Err != nil || s.MemoryUsedBytes != 100*mib || s.UtilizationPercent != 5 {
		t.Fatalf("start: got %+v", s)
	}
	clock.Add(10 * time.Second)
	if s := src.Sample()[0]; s.MemoryUsedBytes != 500*mib || s.UtilizationPercent != 90 {
		t.Fatalf("at 10s: got %+v, want 500 MiB and 90%%", s)
	}

	clock.Add(10 * time.Second)
	events := make(chan gpu.Event, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = src.WatchEvents(ctx, func(ev gpu.Event) { events <- ev }) }()
	ev := <-events
	cancel()
	<-done
	if ev.Index != 1 || ev.Kind != gpu.EventXID || ev.XID != 79 {
		t.Fatalf("at 20s: got event %+v, want Xid 79 on GPU 1", ev)
	}

	clock.Add(10 * time.Second)
	if s := src.Sample()[0]; s.Err == nil || !strings.Contains(s.Err.Error(), nvml.ERROR_GPU_IS_LOST.Error()) {
		t.Fatalf("at 30s: got %+v, want an injected GPU_IS_LOST error", s)
	}
	if st := sim.State()[0]; st.NVMLError == "" {
		t.Fatalf("state must report the injected error, got %+v", st)
	}
	clock.Add(10 * time.Second)
	if s := src.Sample()[0]; s.Err != nil || s.MemoryUsedBytes != 500*mib {
		t.Fatalf("at 40s: got %+v, want recovery with the last load", s)
	}
}

func TestDefaultUUIDsAreStablePerSeed(t *testing.T) {
	sc, _ := simulator.Parse([]byte("gpus: [{}, {}]"))
	state := func(seed string) []simulator.GPUState {
		sim, err := simulator.New(sc, simulator.Options{Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		return sim.State()
	}
	a, b, c := state("n1"), state("n1"), state("n2")
	if a[0].UUID != b[0].UUID || a[0].UUID == a[1].UUID || a[0].UUID == c[0].UUID {
		t.Fatalf("UUIDs: same seed %s/%s, other index %s, other seed %s", a[0].UUID, b[0].UUID, a[1].UUID, c[0].UUID)
	}
}

func TestAMDFamily(t *testing.T) {
	g := NewWithT(t)
	sim, src, _ := newSim(t, "gpus: [{}, {family: amd, memoryUsedPercent: 25}, {family: amd, product: Radeon Pro V620, memoryMiB: 32768}]")
	devs := src.Devices()
	g.Expect(devs).To(HaveLen(3))
	g.Expect(devs[0]).To(And(HaveField("Vendor", gpu.VendorNVIDIA), HaveField("Product", simulator.DefaultProduct)))
	g.Expect(devs[1]).To(And(HaveField("Vendor", gpu.VendorAMD), HaveField("Product", simulator.DefaultAMDProduct),
		HaveField("MemoryTotalBytes", uint64(simulator.DefaultAMDMemoryMiB*mib)), HaveField("UUID", MatchRegexp(`^GPU-[0-9a-f]{16}$`)),
		HaveField("RenderNode", ""))) // simulated: no device node to give a container
	g.Expect(devs[2]).To(And(HaveField("Vendor", gpu.VendorAMD), HaveField("Product", "Radeon Pro V620"), HaveField("MemoryTotalBytes", uint64(32768*mib))))
	g.Expect(src.Sample()[1].MemoryUsedBytes).To(Equal(uint64(simulator.DefaultAMDMemoryMiB * mib / 4)))
	g.Expect(sim.Vendor(7)).To(Equal(gpu.VendorNVIDIA), "an index out of range is no AMD GPU")
}

func TestRepeatEvery(t *testing.T) {
	sim, src, clock := newSim(t, `
gpus: [{memoryMiB: 100}]
repeatEvery: 10s
timeline:
- {at: 0s, memoryUsedMiB: 10}
- {at: 5s, memoryUsedMiB: 60}
`)
	want := []uint64{10, 60, 10, 60}
	for i, w := range want {
		if s := src.Sample()[0]; s.MemoryUsedBytes != w*mib {
			t.Fatalf("sample %d: got %d MiB, want %d", i, s.MemoryUsedBytes/mib, w)
		}
		clock.Add(5 * time.Second)
	}
	_ = sim
}

func TestParseErrorsNameTheField(t *testing.T) {
	tests := []struct{ text, want string }{
		{"gpus: [{memoryMiB: 10, memoryUsedMiB: 20}]", "gpus[0].memoryUsedMiB: 20 exceeds"},
		{"gpus: [{memoryUsedPercent: 120}]", "gpus[0].memoryUsedPercent: 120"},
		{"gpus: [{uuid: GPU-a}, {uuid: gpu-A}]", "gpus[1].uuid"},
		{"gpus: [{}]\ntimeline: [{at: 1s, gpu: 3}]", "timeline[0].gpu: 3 is not a GPU index"},
		{"gpus: [{}]\ntimeline: [{at: 1s, nvmlError: BOGUS}]", `timeline[0].nvmlError: "BOGUS"`},
		{"gpus: [{}]\ntimeline: [{at: 1s, utilizationPercent: 101}]", "timeline[0].utilizationPercent: 101"},
		{"gpus: [{}]\nrepeatEvery: 1s\ntimeline: [{at: 5s}]", "repeatEvery: 1s must be longer"},
		{"gpus: [{colour: red}]", "colour"},
		{"gpus: [{family: intel}]", `gpus[0].family: "intel" is not nvidia or amd`},
		{"gpus: [{family: amd, memoryUsedMiB: 70000}]", "gpus[0].memoryUsedMiB: 70000 exceeds the GPU's 65536 MiB"},
	}
	for _, tc := range tests {
		_, err := simulator.Parse([]byte(tc.text))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want an error containing %q", tc.text, err, tc.want)
		}
	}
}

func TestFileReload(t *testing.T) {
	g := NewWithT(t)
	path := filepath.Join(t.TempDir(), "sim.yaml")
	write := func(s string) {
		// Write then rename, as a ConfigMap update does, so the watcher never reads half a file.
		tmp := path + ".tmp"
		g.Expect(os.WriteFile(tmp, []byte(s), 0o600)).To(Succeed())
		g.Expect(os.Rename(tmp, path)).To(Succeed())
	}
	write("gpus: [{memoryMiB: 100, memoryUsedMiB: 10}]")
	sim, err := simulator.FromFile(path, simulator.Options{Seed: "n", Log: logr.Discard()})
	g.Expect(err).NotTo(HaveOccurred())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go sim.WatchFile(ctx, path, 10*time.Millisecond)

	write("gpus: [{memoryMiB: 100, memoryUsedMiB: 70}]")
	g.Eventually(func() uint64 { return sim.State()[0].MemoryUsedBytes }).WithTimeout(5 * time.Second).Should(Equal(uint64(70 * mib)))

	// A file that changes the GPUs or does not parse is skipped; the next good one is read.
	write("gpus: [{memoryMiB: 200, memoryUsedMiB: 20}]")
	write("gpus: [not yaml")
	write("gpus: [{memoryMiB: 100, memoryUsedMiB: 30}]")
	g.Eventually(func() uint64 { return sim.State()[0].MemoryUsedBytes }).WithTimeout(5 * time.Second).Should(Equal(uint64(30 * mib)))
	changed, err := simulator.Parse([]byte("gpus: [{memoryMiB: 200, memoryUsedMiB: 20}]"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(sim.Reload(changed)).To(MatchError(ContainSubstring("restart the agent")))
	g.Expect(sim.State()[0].MemoryTotalBytes).To(Equal(uint64(100 * mib)))
}

func TestControlEndpoint(t *testing.T) {
	sim, src, clock := newSim(t, scenario)
	srv := httptest.NewServer(sim.Handler())
	defer srv.Close()

	resp, err := http.Post(srv.URL, "application/yaml", strings.NewReader("steps:\n- {gpu: 1, memoryUsedPercent: 25}\n- {at: 5s, gpu: 1, memoryUsedPercent: 75}\n"))
	if err != nil {
		t.Fatal(err)
	}
	var state []simulator.GPUState
	if err := json.NewDecoder(resp.Body).Decode(&state); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("POST: status %d, decode %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	if state[1].MemoryUsedBytes != state[1].MemoryTotalBytes/4 {
		t.Fatalf("an immediate step must be applied at once: got %+v", state[1])
	}
	clock.Add(5 * time.Second)
	if s := src.Sample()[1]; s.MemoryUsedBytes != s.MemoryTotalBytes*3/4 {
		t.Fatalf("a delayed step must apply when due: got %d of %d", s.MemoryUsedBytes, s.MemoryTotalBytes)
	}

	for body, wantStatus := range map[string]int{
		`{"steps": [{"gpu": 7}]}`:   http.StatusBadRequest,
		`{"stepz": []}`:             http.StatusBadRequest,
		`{"steps": [{"at": "1s"}]}`: http.StatusOK,
	} {
		resp, err := http.Post(srv.URL, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != wantStatus {
			t.Errorf("POST %s: got %d, want %d", body, resp.StatusCode, wantStatus)
		}
	}
	req, _ := http.NewRequest(http.MethodDelete, srv.URL, nil)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("DELETE: got %d, want 405", resp.StatusCode)
	}
}
