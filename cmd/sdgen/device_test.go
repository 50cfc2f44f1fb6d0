package main

import (
	"bytes"
	"image"
	"image/png"
	"math"
	"strings"
	"testing"

	"github.com/sdfleet/sdfleet/controllers/podcontract"
	"github.com/sdfleet/sdfleet/inference/backend/vulkan"
	"github.com/sdfleet/sdfleet/inference/checkpoint"
)

// psnr compares two decoded PNGs of the same size on their RGB values.
func psnr(t *testing.T, a, b []byte) float64 {
	t.Helper()
	decode := func(data []byte) image.Image {
		img, err := png.Decode(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	ia, ib := decode(a), decode(b)
	if ia.Bounds() != ib.Bounds() {
		t.Fatalf("bounds %v and %v", ia.Bounds(), ib.Bounds())
	}
	var se float64
	n := 0
	for y := ia.Bounds().Min.Y; y < ia.Bounds().Max.Y; y++ {
		for x := ia.Bounds().Min.X; x < ia.Bounds().Max.X; x++ {
			r1, g1, b1, _ := ia.At(x, y).RGBA()
			r2, g2, b2, _ := ib.At(x, y).RGBA()
			for _, d := range []float64{float64(r1>>8) - float64(r2>>8), float64(g1>>8) - float64(g2>>8), float64(b1>>8) - float64(b2>>8)} {
				se += d * d
				n++
			}
		}
	}
	if se == 0 {
		return math.Inf(1)
	}
	return 10 * math.Log10(255*255/(se/float64(n)))
}

func softwareUUID(t *testing.T) string {
	t.Helper()
	d, err := vulkan.Open(vulkan.Options{Select: vulkan.Selector{Software: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	return d.UUID()
}

// --device vulkan:0 writes the picture --device cpu writes, within the
// PSNR bound fp16 weights and activations allow (the tiny model is stored
// in fp32 and rounded on upload; measured 51.3 dB here, and 54.4 dB by
// inference/backend/vulkan on its request), and the result names the
// device actually used.
func TestGenerateOnVulkanMatchesTheCPU(t *testing.T) {
	model := tinyModels(t)[checkpoint.Diffusers]
	onCPU := generate(t, small(model, "--device", "cpu", "--precision", "fp32")...)
	onGPU := generate(t, small(model, "--device", "vulkan:0")...)
	for _, g := range []generated{onCPU, onGPU} {
		if g.code != 0 {
			t.Fatalf("exit %d: %s", g.code, g.stderr)
		}
	}
	if p := psnr(t, onCPU.png, onGPU.png); p < 40 {
		t.Errorf("PSNR %.1f dB between vulkan:0 and cpu, want at least 40", p)
	} else {
		t.Logf("PSNR %.1f dB between vulkan:0 and cpu", p)
	}
	r := onGPU.result
	if r.Device != "vulkan:0" || r.DeviceName == "" || !strings.HasPrefix(r.DeviceUUID, "GPU-") || r.SimulatedGPU {
		t.Errorf("result %+v does not name the Vulkan device", r.Result)
	}
	if c := onCPU.result; c.DeviceName != "" || c.DeviceUUID != "" {
		t.Errorf("a CPU run names a device: %+v", c.Result)
	}
}

// A simulated GPU runs on the software Vulkan device and says so.
func TestGenerateOnASimulatedGPU(t *testing.T) {
	model := tinyModels(t)[checkpoint.Diffusers]
	t.Setenv(podcontract.EnvGPUUUID, "GPU-5a5a5a5a-0000-4000-8000-000000000001")
	t.Setenv(podcontract.EnvGPUSimulated, "true")
	g := generate(t, small(model)...)
	if g.code != 0 {
		t.Fatalf("exit %d: %s", g.code, g.stderr)
	}
	r := g.result
	if r.Device != "vulkan" || !r.SimulatedGPU || r.DeviceUUID != softwareUUID(t) || r.GPUUUID != "GPU-5a5a5a5a-0000-4000-8000-000000000001" {
		t.Errorf("result %+v: want the software device, marked simulated, with the pod's GPU", r.Result)
	}
}

// A real GPU's pod refuses any other device, naming both UUIDs, with the
// device-error exit the controller retries elsewhere. With --device auto
// and only the software device here, the GPU's own Vulkan driver is what
// is missing (a headless NVIDIA node without libnvidia-gl): auto falls
// back to the CPU with one log line, as with no driver at all.
func TestGenerateRefusesAnotherGPU(t *testing.T) {
	model := tinyModels(t)[checkpoint.Diffusers]
	const podGPU = "GPU-5a5a5a5a-0000-4000-8000-000000000002"
	t.Setenv(podcontract.EnvGPUUUID, podGPU)
	local := softwareUUID(t)
	g := generate(t, small(model, "--device", "vulkan:0")...)
	if g.code != podcontract.ExitDeviceError || !strings.Contains(g.result.Error, podGPU) || !strings.Contains(g.result.Error, local) || len(g.png) != 0 {
		t.Errorf("--device vulkan:0: exit %d, error %q; want exit %d naming %s and %s", g.code, g.result.Error, podcontract.ExitDeviceError, podGPU, local)
	}
	g = generate(t, small(model, "--device", "vulkan:9")...)
	if g.code != podcontract.ExitDeviceError || !strings.Contains(g.result.Error, "vulkan:9") {
		t.Errorf("vulkan:9: exit %d, error %q", g.code, g.result.Error)
	}
	g = generate(t, small(model, "--device", "auto")...)
	if g.code != 0 || g.result.Device != "cpu" || strings.Count(g.stderr, "no usable Vulkan device") != 1 || !strings.Contains(g.stderr, podGPU) {
		t.Errorf("auto: exit %d, device %q, stderr %q; want the CPU and one log line naming the pod's GPU", g.code, g.result.Device, g.stderr)
	}
}

// With no usable Vulkan driver, auto falls back to the CPU with one log
// line; an explicit vulkan:N is a device error saying what is missing.
func TestGenerateWithoutVulkanDriver(t *testing.T) {
	model := tinyModels(t)[checkpoint.Diffusers]
	t.Setenv(podcontract.EnvGPUUUID, "GPU-5a5a5a5a-0000-4000-8000-000000000003")
	t.Setenv("VK_ICD_FILENAMES", "/nonexistent/icd.json")
	t.Setenv("VK_DRIVER_FILES", "/nonexistent/icd.json")
	g := generate(t, small(model)...)
	if g.code != 0 || g.result.Device != "cpu" || strings.Count(g.stderr, "no usable Vulkan device") != 1 {
		t.Errorf("auto: exit %d, device %q, stderr %q; want the CPU and one log line", g.code, g.result.Device, g.stderr)
	}
	g = generate(t, small(model, "--device", "vulkan:0")...)
	if g.code != podcontract.ExitDeviceError || !strings.Contains(g.result.Error, "no driver") {
		t.Errorf("vulkan:0: exit %d, error %q; want a device error saying no driver was found", g.code, g.result.Error)
	}
}
