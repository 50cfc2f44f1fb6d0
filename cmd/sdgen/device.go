package main

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/sdfleet/sdfleet/controllers/podcontract"
	"github.com/sdfleet/sdfleet/inference/backend"
	"github.com/sdfleet/sdfleet/inference/backend/cpu"
	"github.com/sdfleet/sdfleet/inference/backend/vulkan"
)

// gpuDevice matches the GPU values of --device. cuda:N is accepted and
// reported as a device error (no CUDA backend yet), so that a job written
// for it fails as a device problem rather than as bad input.
var gpuDevice = regexp.MustCompile(`^(vulkan|cuda):[0-9]+$`)

// deviceChoice is where generate runs, decided before the model is read.
type deviceChoice struct {
	// name is what the result records: "cpu", "vulkan:N" or "vulkan" (the
	// pod's GPU, found by UUID or PCI address).
	name string
	// vulkan is nil for the CPU.
	vulkan *vulkan.Selector
	// auto is true when --device auto chose Vulkan: an unusable Vulkan
	// then falls back to the CPU instead of failing.
	auto bool
	// podGPU is the GPU the kubelet gave the container; simulated is true
	// when it is simulated.
	podGPU    string
	simulated bool
}

// resolveDevice reads --device and the environment the device plugin set.
func resolveDevice(e *env, device string) (deviceChoice, error) {
	c := deviceChoice{
		podGPU:    os.Getenv(podcontract.EnvGPUUUID),
		simulated: os.Getenv(podcontract.EnvGPUSimulated) == "true",
	}
	switch {
	case device == podcontract.DeviceCPU:
		c.name = "cpu"
		return c, nil
	case strings.HasPrefix(device, podcontract.DeviceVulkanPrefix):
		n, err := strconv.Atoi(strings.TrimPrefix(device, podcontract.DeviceVulkanPrefix))
		if err != nil {
			return c, usageError{fmt.Sprintf("--device %q: expected vulkan:N", device)}
		}
		c.name, c.vulkan = device, &vulkan.Selector{Index: n}
		return c, nil
	case device == podcontract.DeviceAuto:
		pci := os.Getenv(podcontract.EnvGPUPCIBusID)
		switch {
		case c.simulated:
			c.vulkan = &vulkan.Selector{Software: true}
		case pci != "":
			c.vulkan = &vulkan.Selector{PCIBusID: pci}
		case c.podGPU != "":
			c.vulkan = &vulkan.Selector{UUID: c.podGPU}
		default:
			e.log.Info("no GPU given to this pod; running on the CPU")
			c.name = "cpu"
			return c, nil
		}
		c.name, c.auto = "vulkan", true
		return c, nil
	}
	return c, exitError{podcontract.ExitDeviceError, fmt.Errorf("--device %s: this build has no CUDA backend; use vulkan:N", device)}
}

// newBackend opens the chosen device and records in res what it runs on.
// A GPU that cannot be used is a device error, which the controller
// retries on another GPU; so is a Vulkan device other than the pod's GPU.
func newBackend(e *env, c deviceChoice, precision string, res *podcontract.Result) (backend.Backend, error) {
	if c.vulkan != nil {
		b, err := openVulkan(c)
		if err == nil {
			d := b.Device()
			res.Device, res.DeviceName, res.DeviceUUID, res.SimulatedGPU = c.name, d.Name(), d.UUID(), c.simulated
			return b, nil
		}
		if !c.auto || !vulkan.IsUnavailable(err) {
			return nil, exitError{podcontract.ExitDeviceError, err}
		}
		e.log.Info("no usable Vulkan device; running on the CPU instead of the GPU the pod was given", "gpu", c.podGPU, "reason", err.Error())
	}
	b, err := cpu.New(cpu.Options{Logger: e.log, Precision: precision})
	if err != nil {
		return nil, exitError{podcontract.ExitDeviceError, err}
	}
	res.Device = "cpu"
	return b, nil
}

func openVulkan(c deviceChoice) (*vulkan.Backend, error) {
	b, err := vulkan.New(vulkan.Options{Select: *c.vulkan})
	if err != nil {
		return nil, fmt.Errorf("vulkan device for %s: %w", c.name, err)
	}
	d := b.Device()
	// vulkan:N on a pod with a real GPU must be that GPU: running on
	// another one would take a GPU the scheduler gave to someone else.
	// Selection by UUID checks this itself; a PCI address or a simulated
	// GPU has no Vulkan UUID to compare.
	if c.podGPU != "" && !c.simulated && c.vulkan.UUID == "" && c.vulkan.PCIBusID == "" && !strings.EqualFold(d.UUID(), normalizeUUID(c.podGPU)) {
		b.Close()
		return nil, fmt.Errorf("%s is %s (%s), but the pod was given GPU %s", c.name, d.UUID(), d.Name(), c.podGPU)
	}
	if c.simulated && !d.Software() {
		b.Close()
		return nil, fmt.Errorf("%s is the hardware device %s (%s), but the pod's GPU is simulated", c.name, d.UUID(), d.Name())
	}
	return b, nil
}

func normalizeUUID(u string) string {
	if !strings.HasPrefix(strings.ToUpper(u), "GPU-") {
		return "GPU-" + u
	}
	return u
}
