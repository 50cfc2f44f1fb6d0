package amdgpu_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	. "github.com/onsi/gomega"

	"github.com/sdfleet/sdfleet/deviceplugin/amdgpu"
	"github.com/sdfleet/sdfleet/deviceplugin/amdgpu/amdgputest"
	"github.com/sdfleet/sdfleet/deviceplugin/gpu"
)

const gib = uint64(1) << 30

func tree(t *testing.T, cards []amdgputest.Card) *amdgputest.Tree {
	t.Helper()
	tr, err := amdgputest.New(t.TempDir(), cards...)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func open(t *testing.T, tr *amdgputest.Tree, visible ...string) *amdgpu.Source {
	t.Helper()
	s, err := amdgpu.Open(amdgpu.Options{SysfsRoot: tr.Root, Visible: visible, EventInterval: 10 * time.Millisecond, Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestDiscoveryOfAnMI25Node(t *testing.T) {
	g := NewWithT(t)
	tr := tree(t, amdgputest.MI25Node())
	// A display-only AMD card (no render node) is not a compute GPU.
	_, err := amdgputest.New(tr.Root, amdgputest.Card{Card: 9, PCI: "0000:99:00.0", DeviceID: 0x6860, NoRenderNode: true, VRAMTotalBytes: gib})
	g.Expect(err).NotTo(HaveOccurred())
	s := open(t, tr)
	devs := s.Devices()
	g.Expect(devs).To(HaveLen(4), "the ASPEED card and the display-only card are not managed")
	for i, d := range devs {
		g.Expect(d.Index).To(Equal(i))
		g.Expect(d.Vendor).To(Equal(gpu.VendorAMD))
		g.Expect(d.Product).To(Equal("Radeon Instinct MI25"))
		g.Expect(d.MemoryTotalBytes).To(Equal(16 * gib))
		g.Expect(d.RenderNode).To(Equal("/dev/dri/renderD" + []string{"129", "130", "131", "132"}[i]))
		g.Expect(d.UUID).To(MatchRegexp(`^GPU-[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$`), "derived from PCI address and serial")
	}
	g.Expect([]string{devs[0].PCIBusID, devs[1].PCIBusID, devs[2].PCIBusID, devs[3].PCIBusID}).
		To(Equal([]string{"0000:03:00.0", "0000:23:00.0", "0000:43:00.0", "0000:63:00.0"}))
	// The derived UUIDs are stable: a second agent start names the GPUs the same.
	g.Expect(open(t, tr).Devices()).To(Equal(devs))
	g.Expect(map[string]bool{devs[0].UUID: true, devs[1].UUID: true, devs[2].UUID: true, devs[3].UUID: true}).To(HaveLen(4))

	samples := s.Sample()
	g.Expect(samples).To(HaveLen(4))
	g.Expect(samples[2]).To(Equal(gpu.Sample{Index: 2, MemoryUsedBytes: 2 * gib, MemoryTotalBytes: 16 * gib,
		UtilizationPercent: 20, TemperatureCelsius: 42, PowerMilliwatts: 62_000}))
	g.Expect(s.Simulated()).To(BeFalse())
	g.Expect(s.Close()).To(Succeed())
}

func TestDiscoveryOfAnMI210NodeAndSelection(t *testing.T) {
	g := NewWithT(t)
	tr := tree(t, append(amdgputest.MI210Node(), amdgputest.Card{Card: 2, PCI: "0000:c2:00.0", DeviceID: 0x7777, VRAMTotalBytes: 8 * gib, NoKFD: true}))
	var logged []string
	log := funcr.New(func(prefix, args string) { logged = append(logged, args) }, funcr.Options{})
	_, err := amdgpu.Open(amdgpu.Options{SysfsRoot: tr.Root, Log: log})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(logged).To(ConsistOf(And(ContainSubstring("has no KFD node"), ContainSubstring(`"pci"="0000:c2:00.0"`))),
		"only the GPU missing from the KFD topology is reported; the MI210's KFD node is found by its PCI location")
	devs := open(t, tr).Devices()
	g.Expect(devs).To(HaveLen(2))
	g.Expect(devs[0]).To(Equal(gpu.Info{Index: 0, UUID: "GPU-8fd5a2c3b1e04a67", Vendor: gpu.VendorAMD, Product: "AMD Instinct MI210",
		MemoryTotalBytes: 64 * gib, PCIBusID: "0000:c1:00.0", RenderNode: "/dev/dri/renderD129"}))
	g.Expect(devs[1].Product).To(Equal("AMD GPU 0x7777"), "an unknown device ID is named by its number")

	for _, sel := range []string{"1", "0000:C2:00.0", devs[1].UUID} {
		got := open(t, tr, sel).Devices()
		g.Expect(got).To(HaveLen(1), sel)
		g.Expect(got[0].Index).To(Equal(1), "a selected GPU keeps its index")
	}
	_, err = amdgpu.Open(amdgpu.Options{SysfsRoot: tr.Root, Visible: []string{"0", "GPU-nope"}})
	g.Expect(err).To(MatchError(ContainSubstring(`visible GPU "GPU-nope" matches no AMD GPU`)))
}

func TestNodesWithoutAMDGPUsAndBadRoots(t *testing.T) {
	g := NewWithT(t)
	empty, err := amdgpu.Open(amdgpu.Options{SysfsRoot: t.TempDir()})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(empty.Devices()).To(BeEmpty())
	g.Expect(empty.Sample()).To(BeEmpty())

	_, err = amdgpu.Open(amdgpu.Options{SysfsRoot: "/nonexistent/sys"})
	g.Expect(err).To(MatchError(ContainSubstring("sysfs root: stat /nonexistent/sys")))

	tr := tree(t, amdgputest.MI210Node())
	g.Expect(tr.MakeUnreadable(1, "mem_info_vram_total")).To(Succeed())
	_, err = amdgpu.Open(amdgpu.Options{SysfsRoot: tr.Root})
	g.Expect(err).To(MatchError(And(ContainSubstring("AMD GPU 0000:c1:00.0: memory size"), ContainSubstring("mem_info_vram_total"))))
}

func TestFailingReadsAndAVanishedCard(t *testing.T) {
	g := NewWithT(t)
	tr := tree(t, amdgputest.MI25Node())
	s := open(t, tr)

	g.Expect(tr.MakeUnreadable(2, "mem_info_vram_used")).To(Succeed())
	g.Expect(tr.MakeUnreadable(3, "gpu_busy_percent")).To(Succeed())
	g.Expect(tr.Vanish(4)).To(Succeed())
	samples := s.Sample()
	g.Expect(samples[0].Err).NotTo(HaveOccurred())
	g.Expect(samples[1].Err).To(MatchError(And(ContainSubstring("amdgpu sysfs read failed"), ContainSubstring(filepath.Join("card2", "device", "mem_info_vram_used")))))
	g.Expect(samples[2].Err).To(MatchError(ContainSubstring("gpu_busy_percent")), "an optional file that exists but cannot be read is a failure")
	g.Expect(samples[3].Err).To(MatchError("amdgpu: GPU 0000:63:00.0 (card4) vanished from sysfs"))

	// An optional file that is absent is not a failure.
	g.Expect(os.RemoveAll(filepath.Join(tr.Device(1), "hwmon"))).To(Succeed())
	g.Expect(os.Remove(filepath.Join(tr.Device(1), "gpu_busy_percent"))).To(Succeed())
	g.Expect(s.Sample()[0]).To(Equal(gpu.Sample{Index: 0, MemoryTotalBytes: 16 * gib}))

	g.Expect(tr.MakeReadable(2, "mem_info_vram_used", "1024")).To(Succeed())
	g.Expect(tr.Restore(4)).To(Succeed())
	after := s.Sample()
	g.Expect(after[1]).To(HaveField("MemoryUsedBytes", uint64(1024)))
	g.Expect(after[1].Err).NotTo(HaveOccurred())
	g.Expect(after[3].Err).NotTo(HaveOccurred())
}

func TestRisingRASCountersAreEvents(t *testing.T) {
	g := NewWithT(t)
	tr := tree(t, amdgputest.MI25Node())
	g.Expect(tr.SetRAS(2, "umc", 3, 0)).To(Succeed()) // errors from before the agent started are no news
	s := open(t, tr)
	ctx, cancel := context.WithCancel(context.Background())
	events := make(chan gpu.Event, 16)
	done := make(chan error, 1)
	go func() { done <- s.WatchEvents(ctx, func(ev gpu.Event) { events <- ev }) }()

	g.Expect(tr.SetRAS(2, "umc", 3, 500)).To(Succeed())
	g.Consistently(events).WithTimeout(100*time.Millisecond).ShouldNot(Receive(), "correctable errors do not make a GPU unhealthy")
	g.Expect(tr.SetRAS(2, "umc", 5, 500)).To(Succeed())
	g.Eventually(events).Should(Receive(Equal(gpu.Event{Index: 1, Kind: gpu.EventUncorrectableRAS, Detail: "umc 3 -> 5"})))
	g.Expect(tr.SetRAS(4, "gfx", 1, 0)).To(Succeed())
	g.Eventually(events).Should(Receive(Equal(gpu.Event{Index: 3, Kind: gpu.EventUncorrectableRAS, Detail: "gfx 0 -> 1"})))
	g.Consistently(events).WithTimeout(100*time.Millisecond).ShouldNot(Receive(), "a counter that stays is reported once")

	cancel()
	g.Eventually(done).Should(Receive(BeNil()))
}

func TestProductNamesOfTheSupportedGPUs(t *testing.T) {
	tests := []struct {
		id   uint32
		want string
	}{
		{0x6860, "Radeon Instinct MI25"},
		{0x740f, "AMD Instinct MI210"},
		{0x740c, "AMD Instinct MI250X / MI250"},
		{0x73a1, "Radeon Pro V620"},
	}
	for _, tc := range tests {
		tr := tree(t, []amdgputest.Card{{Card: 0, PCI: "0000:03:00.0", DeviceID: tc.id, VRAMTotalBytes: gib}})
		devs := open(t, tr).Devices()
		if len(devs) != 1 || !strings.EqualFold(devs[0].Product, tc.want) {
			t.Errorf("device 0x%04x: got %+v, want product %q", tc.id, devs, tc.want)
		}
	}
}

// BenchmarkSample is one sampling round of an MI25 node's four GPUs: the agent's cost per
// --sample-interval.
func BenchmarkSample(b *testing.B) {
	tr, err := amdgputest.New(b.TempDir(), amdgputest.MI25Node()...)
	if err != nil {
		b.Fatal(err)
	}
	s, err := amdgpu.Open(amdgpu.Options{SysfsRoot: tr.Root})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if samples := s.Sample(); len(samples) != 4 || samples[0].Err != nil {
			b.Fatalf("samples: %+v", samples)
		}
	}
}
