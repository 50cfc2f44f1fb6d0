package vulkan

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/sdfleet/sdfleet/inference/backend/vulkan/vk"
	"github.com/sdfleet/sdfleet/inference/tensor"
)

// The package's tests share one device (opening one with validation
// layers costs more than most kernel tests) and fail on any message the
// validation layers report while they run.
var (
	shared *Device
	// addressing is a second device whose binding limit is lowered to
	// testBindingRange, so that tensors of a few KiB take the path that
	// tensors beyond maxStorageBufferRange take on a real device.
	addressing    *Device
	validationMu  sync.Mutex
	validationLog []string
)

func recordValidation(msg string) {
	validationMu.Lock()
	validationLog = append(validationLog, msg)
	validationMu.Unlock()
}

func TestMain(m *testing.M) {
	d, err := Open(Options{Validation: true, OnValidationError: recordValidation})
	if err != nil {
		fmt.Fprintf(os.Stderr, "opening the Vulkan device with validation layers (hack/install-prerequisites.sh installs lavapipe and the layers): %v\n", err)
		os.Exit(1)
	}
	shared = d
	if addressing, err = Open(Options{Validation: true, OnValidationError: recordValidation, MaxBindingRange: testBindingRange}); err != nil {
		fmt.Fprintf(os.Stderr, "opening the second Vulkan device: %v\n", err)
		os.Exit(1)
	}
	code := m.Run()
	addressing.Close()
	d.Close()
	if len(validationLog) > 0 {
		fmt.Fprintf(os.Stderr, "validation errors after the tests:\n%s\n", strings.Join(validationLog, "\n"))
		code = 1
	}
	os.Exit(code)
}

// testBindingRange is the addressing device's binding limit: all but the
// smallest test shapes have tensors above it, and most dispatches also
// bind some below it (biases, scales, the absent optional input).
const testBindingRange = 1 << 10

// device returns the shared device and fails t on any validation error
// reported during t.
func device(t *testing.T) *Device {
	t.Helper()
	return watch(t, shared)
}

// mode is one way the kernels run: activation dtype, and whether large
// tensors are reached through device addresses.
type mode struct {
	name       string
	act        tensor.DType
	addressing bool
}

var modes = []mode{
	{"f16", tensor.F16, false},
	{"f16_addressed", tensor.F16, true},
	{"f32", tensor.F32, false},
	{"f32_addressed", tensor.F32, true},
}

// forEachMode runs f as a subtest in every mode, on the device and with
// the activation dtype of that mode; in the addressed modes, a test that
// dispatched a buffer above the limit fails unless those dispatches used
// device addresses.
func forEachMode(t *testing.T, f func(t *testing.T, d *Device)) {
	t.Helper()
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			d := watch(t, shared)
			if m.addressing {
				d = watch(t, addressing)
			}
			prev, err := d.SetActivationDType(m.act)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _, _ = d.SetActivationDType(prev) })
			before, over := d.addressed, d.oversized
			f(t, d)
			if m.addressing && d.addressed-before != d.oversized-over {
				t.Errorf("%d dispatches touched a buffer above the binding limit, %d used device addresses", d.oversized-over, d.addressed-before)
			}
		})
	}
}

// watch fails t on any validation error reported during t and syncs d
// at its end.
func watch(t *testing.T, d *Device) *Device {
	t.Helper()
	validationMu.Lock()
	start := len(validationLog)
	validationMu.Unlock()
	t.Cleanup(func() {
		if err := d.Sync(); err != nil {
			t.Errorf("sync: %v", err)
		}
		validationMu.Lock()
		defer validationMu.Unlock()
		for _, msg := range validationLog[start:] {
			t.Errorf("validation layer: %s", msg)
		}
	})
	return d
}

func TestOpenReportsTheDevice(t *testing.T) {
	d := device(t)
	p := d.Properties()
	if d.Name() == "" {
		t.Error("empty device name")
	}
	if !strings.HasPrefix(d.UUID(), "GPU-") || len(d.UUID()) != len("GPU-")+36 {
		t.Errorf("UUID %q is not spelled as NVML spells it", d.UUID())
	}
	// Limits every Vulkan 1.3 device meets: reading them at the wrong
	// offsets into VkPhysicalDeviceLimits would not.
	if p.MaxStorageBufferRange < 1<<27 {
		t.Errorf("maxStorageBufferRange %d, the spec's minimum is 2^27", p.MaxStorageBufferRange)
	}
	if p.MaxPushConstantsSize < 128 || p.MaxComputeSharedMemorySize < 16384 || p.MaxComputeWorkGroupInvocs < 128 || p.MaxComputeWorkGroupCount[0] < 65535 {
		t.Errorf("limits below the spec's minimums: %+v", p)
	}
	if p.MinStorageBufferOffsetAlign == 0 || p.MinStorageBufferOffsetAlign&(p.MinStorageBufferOffsetAlign-1) != 0 {
		t.Errorf("minStorageBufferOffsetAlignment %d is not a power of two", p.MinStorageBufferOffsetAlign)
	}
	if !d.Software() {
		t.Logf("running on a hardware device: %s", d.Name())
	}
}

func TestSelectByUUIDAndIndex(t *testing.T) {
	d := device(t)
	for _, sel := range []Selector{{UUID: d.UUID()}, {UUID: strings.TrimPrefix(d.UUID(), "GPU-")}, {Index: 0}} {
		other, err := Open(Options{Select: sel})
		if err != nil {
			t.Fatalf("%+v: %v", sel, err)
		}
		if sel.UUID != "" && other.UUID() != d.UUID() {
			t.Errorf("%+v opened %s", sel, other.UUID())
		}
		other.Close()
	}
}

func TestSelectRefusesAnotherGPU(t *testing.T) {
	device(t)
	if _, err := Open(Options{Select: Selector{Index: 99}}); !errors.Is(err, ErrWrongDevice) || !strings.Contains(err.Error(), "vulkan:99") {
		t.Errorf("vulkan:99: error %v, want ErrWrongDevice naming it", err)
	}
	if _, err := Open(Options{Select: Selector{PCIBusID: "not-an-address"}}); err == nil || !strings.Contains(err.Error(), "dddd:bb:dd.f") {
		t.Errorf("bad PCI address: error %v, want the expected spelling", err)
	}
}

// A GPU named by UUID or PCI address is refused when other GPUs are
// there but not it (ErrWrongDevice, naming both), and reported missing
// when the loader found only software devices (ErrNoDevice: its driver
// is absent, and --device auto falls back to the CPU).
func TestChooseTellsAnotherGPUFromAMissingDriver(t *testing.T) {
	const absent = "GPU-00000000-1111-2222-3333-444444444444"
	gpu := candidate{props: vk.Properties{DeviceName: "NVIDIA H200", DeviceType: vk.PhysicalDeviceTypeDiscreteGPU,
		DeviceUUID: [16]byte{0xaa, 1}, PCIBus: &vk.PhysicalDevicePCIBusInfoProperties{PCIBus: 0x65}}}
	lavapipe := candidate{props: vk.Properties{DeviceName: "llvmpipe", DeviceType: vk.PhysicalDeviceTypeCPU, DeviceUUID: [16]byte{0x6d}}}
	for _, tc := range []struct {
		name  string
		cands []candidate
		sel   Selector
		pick  int
		err   error
		names []string
	}{
		{"uuid found", []candidate{lavapipe, gpu}, Selector{UUID: "GPU-aa010000-0000-0000-0000-000000000000"}, 1, nil, nil},
		{"pci found", []candidate{lavapipe, gpu}, Selector{PCIBusID: "0000:65:00.0"}, 1, nil, nil},
		{"software", []candidate{gpu, lavapipe}, Selector{Software: true}, 1, nil, nil},
		{"another gpu", []candidate{gpu, lavapipe}, Selector{UUID: absent}, -1, ErrWrongDevice, []string{absent, "GPU-aa010000"}},
		{"another pci", []candidate{gpu}, Selector{PCIBusID: "0000:e1:00.0"}, -1, ErrWrongDevice, []string{"0000:e1:00.0", "NVIDIA H200"}},
		{"no driver for the uuid", []candidate{lavapipe}, Selector{UUID: absent}, -1, ErrNoDevice, []string{absent, "llvmpipe", "graphics"}},
		{"no driver for the pci", []candidate{lavapipe}, Selector{PCIBusID: "0000:e1:00.0"}, -1, ErrNoDevice, []string{"0000:e1:00.0", "llvmpipe"}},
		{"no software", []candidate{gpu}, Selector{Software: true}, -1, ErrNoDevice, []string{"lavapipe"}},
		{"no devices", nil, Selector{}, -1, ErrNoDevice, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pick, err := choose(tc.cands, tc.sel)
			if pick != tc.pick || !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("pick %d, error %v; want %d, %v", pick, err, tc.pick, tc.err)
			}
			for _, n := range tc.names {
				if !strings.Contains(err.Error(), n) {
					t.Errorf("error %q does not name %s", err, n)
				}
			}
			if tc.err == ErrNoDevice && !IsUnavailable(err) {
				t.Errorf("error %v: IsUnavailable is false", err)
			}
		})
	}
}

func TestParsePCIBusID(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want [4]uint32
	}{
		{"0000:65:00.0", [4]uint32{0, 0x65, 0, 0}},
		{"00000000:E1:1f.7", [4]uint32{0, 0xe1, 0x1f, 7}},
		{"3b:00.1", [4]uint32{0, 0x3b, 0, 1}},
	} {
		got, err := parsePCIBusID(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("%s: %v %v, want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestUUIDString(t *testing.T) {
	u := [16]byte{0x6d, 0x65, 0x73, 0x61, 0x32, 0x32, 0x2e, 0x33, 0x2e, 0x36}
	if got, want := vk.UUIDString(u), "6d657361-3232-2e33-2e36-000000000000"; got != want {
		t.Errorf("%s, want %s", got, want)
	}
}

func TestValidationReportsMisuse(t *testing.T) {
	// A messenger that stays silent would make every other test's
	// zero-errors check meaningless: provoke one error on a private device.
	var got []string
	d, err := Open(Options{Validation: true, OnValidationError: func(m string) { got = append(got, m) }})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	// A buffer with no usage flags: invalid, yet harmless to the driver.
	b, err := d.dev.CreateBuffer(&vk.BufferCreateInfo{SType: vk.StructureTypeBufferCreateInfo, Size: 16, SharingMode: vk.SharingModeExclusive})
	if err == nil {
		d.dev.DestroyBuffer(b)
	}
	if len(got) == 0 {
		t.Fatal("the validation layer reported nothing for a buffer without usage flags")
	}
}
