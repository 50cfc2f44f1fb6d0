package vulkan

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/ebitengine/purego"

	"github.com/sdfleet/sdfleet/inference/backend/vulkan/vk"
	"github.com/sdfleet/sdfleet/inference/tensor"
)

// ErrNoDevice reports that the loader found no usable Vulkan device.
var ErrNoDevice = errors.New("no Vulkan device with compute and 16-bit storage buffers")

// ErrWrongDevice reports that the selected device is not the requested GPU.
var ErrWrongDevice = errors.New("no Vulkan device matches the requested GPU")

// Selector picks the physical device. The first non-empty field wins, in
// the order UUID, PCIBusID, Software, Index.
type Selector struct {
	// UUID is a device UUID as NVML prints it ("GPU-…" prefix optional):
	// for NVIDIA GPUs VkPhysicalDeviceIDProperties.deviceUUID equals the
	// NVML UUID the device plugin gives the pod.
	UUID string
	// PCIBusID is a PCI address "dddd:bb:dd.f" (or "bb:dd.f"), matched
	// through VK_EXT_pci_bus_info; AMD GPUs are named this way.
	PCIBusID string
	// Index is the position in the loader's device list (vulkan:N).
	Index int
	// Software picks the first CPU implementation (lavapipe), the device
	// a simulated GPU runs on.
	Software bool
}

// Options configures Open.
type Options struct {
	Select Selector
	// MaxBindingRange lowers the size above which a kernel reaches its
	// buffers through device addresses instead of descriptors; zero means
	// the device's maxStorageBufferRange, the most a descriptor can bind.
	// Tests lower it so that the device-address variant of every kernel
	// runs on small shapes.
	MaxBindingRange uint64
	// Validation enables VK_LAYER_KHRONOS_validation and a debug-utils
	// messenger; every error message is passed to OnValidationError.
	Validation        bool
	OnValidationError func(message string)
}

// Device is an opened logical device with its queue, pipelines and
// memory pools.
type Device struct {
	inst      *vk.InstanceCommands
	messenger vk.DebugUtilsMessenger
	sinkID    uintptr
	dev       *vk.DeviceCommands
	phys      vk.PhysicalDevice
	props     vk.Properties
	mem       vk.PhysicalDeviceMemoryProperties
	family    uint32
	// bindLimit is the largest buffer bound as a descriptor: a dispatch
	// touching a larger one uses the kernel's device-address variant.
	bindLimit uint64
	// act is the dtype Alloc gives activations: F16, or F32 for a phase
	// that asked for it (SetActivationDType).
	act tensor.DType
	// oversized counts the dispatches that touched a buffer above
	// bindLimit and addressed those recorded with device addresses: tests
	// compare the two.
	oversized, addressed int
	// allocations counts device memory allocations, so tests can prove
	// that a step's activations come from the pool.
	allocations int

	kernels kernelCache
	pool    bufferPool
	rec     *recorder
	// dummy is bound where a kernel's optional input (bias, residual) is
	// absent.
	dummy *Buffer
	// weights are the loaded weights not yet unloaded, freed by Close.
	weights map[*Buffer]bool
	// usage counts the device-local memory allocated.
	usage memoryUsage
}

// Name is the device's name as the driver reports it.
func (d *Device) Name() string { return d.props.DeviceName }

// UUID is the device UUID in NVML's spelling, with the "GPU-" prefix.
func (d *Device) UUID() string { return "GPU-" + vk.UUIDString(d.props.DeviceUUID) }

// Software reports whether the device is a CPU implementation (lavapipe).
func (d *Device) Software() bool { return d.props.DeviceType == vk.PhysicalDeviceTypeCPU }

// ActivationDType is the dtype Alloc gives activations now.
func (d *Device) ActivationDType() tensor.DType { return d.act }

// SetActivationDType sets the dtype of later activations, F16 (the
// default) or F32, and returns the previous one. Tensors already
// allocated keep theirs; every activation of one operation must share a
// dtype.
func (d *Device) SetActivationDType(dt tensor.DType) (tensor.DType, error) {
	if dt != tensor.F16 && dt != tensor.F32 {
		return d.act, fmt.Errorf("activation dtype %v: want F16 or F32", dt)
	}
	prev := d.act
	d.act = dt
	return prev, nil
}

// AddressedDispatches is how many dispatches so far reached their buffers
// through device addresses (those touching a buffer beyond the binding
// limit).
func (d *Device) AddressedDispatches() int { return d.addressed }

// Properties returns the limits the backend reads.
func (d *Device) Properties() vk.Properties { return d.props }

// The debug-utils callback is one C function for the process (purego
// callbacks are a limited resource); it dispatches to the device whose
// sink id the messenger carries.
var (
	sinkMu       sync.Mutex
	sinks        = map[uintptr]func(string){}
	nextSink     uintptr
	callbackOnce sync.Once
	callbackPtr  uintptr
)

func debugCallback() uintptr {
	callbackOnce.Do(func() {
		callbackPtr = purego.NewCallback(func(severity, types uint32, data *vk.DebugUtilsMessengerCallbackData, user uintptr) uint32 {
			if severity&vk.DebugSeverityError == 0 {
				return 0
			}
			sinkMu.Lock()
			sink := sinks[user]
			sinkMu.Unlock()
			if sink != nil {
				sink(vk.GoString(data.PMessage))
			}
			return 0
		})
	})
	return callbackPtr
}

// Open creates an instance, selects a physical device and creates a
// logical device with one compute queue.
func Open(opts Options) (_ *Device, err error) {
	if err := vk.Load(); err != nil {
		return nil, err
	}
	d := &Device{weights: map[*Buffer]bool{}, act: tensor.F16}
	var layers, exts []string
	var mci *vk.DebugUtilsMessengerCreateInfo
	if opts.Validation {
		available, err := vk.InstanceLayers()
		if err != nil {
			return nil, err
		}
		if !contains(available, "VK_LAYER_KHRONOS_validation") {
			return nil, fmt.Errorf("validation requested but VK_LAYER_KHRONOS_validation is not installed (Debian: vulkan-validationlayers)")
		}
		layers = []string{"VK_LAYER_KHRONOS_validation"}
		exts = []string{"VK_EXT_debug_utils"}
		sinkMu.Lock()
		nextSink++
		d.sinkID = nextSink
		report := opts.OnValidationError
		if report == nil {
			report = func(string) {}
		}
		sinks[d.sinkID] = report
		sinkMu.Unlock()
		mci = &vk.DebugUtilsMessengerCreateInfo{
			SType:           vk.StructureTypeDebugUtilsMessengerCreateInfo,
			MessageSeverity: vk.DebugSeverityWarning | vk.DebugSeverityError,
			MessageType:     vk.DebugTypeGeneral | vk.DebugTypeValidation | vk.DebugTypePerformance,
			PfnUserCallback: debugCallback(),
			PUserData:       d.sinkID,
		}
	}
	if d.inst, err = vk.CreateInstance("sdgen", layers, exts, mci); err != nil {
		d.dropSink()
		var ve *vk.Error
		if errors.As(err, &ve) && (ve.Result == vk.ErrorIncompatibleDriver || ve.Result == vk.ErrorInitializationFail) {
			// The loader found no driver (no ICD file, or none that loads).
			return nil, fmt.Errorf("%w: the Vulkan loader found no driver (%v); NVIDIA nodes need NVIDIA_DRIVER_CAPABILITIES to include graphics", ErrNoDevice, err)
		}
		return nil, fmt.Errorf("creating the Vulkan instance: %w", err)
	}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	if mci != nil {
		if d.messenger, err = d.inst.CreateDebugUtilsMessenger(mci); err != nil {
			return nil, err
		}
	}
	if err = d.selectPhysical(opts.Select); err != nil {
		return nil, err
	}
	if d.dev, err = d.inst.CreateDevice(d.phys, d.family, []string{"VK_KHR_push_descriptor"}); err != nil {
		return nil, fmt.Errorf("creating the Vulkan device on %s: %w", d.props.DeviceName, err)
	}
	d.bindLimit = uint64(d.props.MaxStorageBufferRange)
	if opts.MaxBindingRange > 0 {
		d.bindLimit = min(d.bindLimit, opts.MaxBindingRange)
	}
	d.kernels.init(d)
	d.pool.init(d)
	if d.dummy, err = d.allocate("an absent optional input", 16, false); err != nil {
		return nil, err
	}
	return d, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func (d *Device) dropSink() {
	if d.sinkID != 0 {
		sinkMu.Lock()
		delete(sinks, d.sinkID)
		sinkMu.Unlock()
	}
}

// candidate is a usable physical device.
type candidate struct {
	phys   vk.PhysicalDevice
	props  vk.Properties
	family uint32
}

// candidates lists the usable devices (compute queue, 16-bit storage,
// buffer device addresses, push descriptors) in the loader's order, the order vulkan:N counts in.
func (d *Device) candidates(withPCI bool) ([]candidate, error) {
	phys, err := d.inst.PhysicalDevices()
	if err != nil {
		return nil, err
	}
	var out []candidate
	for _, pd := range phys {
		exts, err := d.inst.DeviceExtensions(pd)
		if err != nil {
			return nil, err
		}
		// bufferDeviceAddress is required by Vulkan 1.3, which the
		// kernels need anyway; the check only names what is used.
		if !exts["VK_KHR_push_descriptor"] || !d.inst.SupportsStorage16AndDeviceAddress(pd) {
			continue
		}
		family := -1
		for i, q := range d.inst.QueueFamilies(pd) {
			if q.QueueFlags&vk.QueueComputeBit != 0 {
				family = i
				break
			}
		}
		if family < 0 {
			continue
		}
		props := d.inst.PhysicalDeviceProperties(pd, withPCI && exts["VK_EXT_pci_bus_info"])
		if props.APIVersion < vk.APIVersion13&^0xfff {
			continue
		}
		out = append(out, candidate{phys: pd, props: props, family: uint32(family)})
	}
	return out, nil
}

func (d *Device) selectPhysical(sel Selector) error {
	cands, err := d.candidates(sel.PCIBusID != "")
	if err != nil {
		return err
	}
	pick, err := choose(cands, sel)
	if err != nil {
		return err
	}
	c := cands[pick]
	d.phys, d.props, d.family = c.phys, c.props, c.family
	d.mem = d.inst.MemoryProperties(c.phys)
	return nil
}

// choose picks the candidate sel names. A GPU named by UUID or PCI
// address among devices that are all software (lavapipe) means that the
// GPU's own driver is missing (an NVIDIA node without the graphics
// capability, say): that is ErrNoDevice, on which --device auto falls
// back to the CPU, not ErrWrongDevice, which refuses another GPU.
func choose(cands []candidate, sel Selector) (int, error) {
	if len(cands) == 0 {
		return -1, ErrNoDevice
	}
	names := make([]string, len(cands))
	hardware := false
	for i, c := range cands {
		names[i] = fmt.Sprintf("%s (GPU-%s)", c.props.DeviceName, vk.UUIDString(c.props.DeviceUUID))
		hardware = hardware || c.props.DeviceType != vk.PhysicalDeviceTypeCPU
	}
	missing := func(what string) error {
		if !hardware {
			return fmt.Errorf("%w: the GPU %s has no Vulkan driver here, the loader found only the software devices %s; NVIDIA nodes need NVIDIA_DRIVER_CAPABILITIES to include graphics", ErrNoDevice, what, strings.Join(names, ", "))
		}
		return nil
	}
	pick := -1
	switch {
	case sel.UUID != "":
		want := strings.ToLower(strings.TrimPrefix(sel.UUID, "GPU-"))
		for i, c := range cands {
			if vk.UUIDString(c.props.DeviceUUID) == want {
				pick = i
			}
		}
		if pick < 0 {
			if err := missing("with UUID " + sel.UUID); err != nil {
				return -1, err
			}
			return -1, fmt.Errorf("%w: UUID %s is not among %s", ErrWrongDevice, sel.UUID, strings.Join(names, ", "))
		}
	case sel.PCIBusID != "":
		want, err := parsePCIBusID(sel.PCIBusID)
		if err != nil {
			return -1, err
		}
		for i, c := range cands {
			if p := c.props.PCIBus; p != nil && p.PCIDomain == want[0] && p.PCIBus == want[1] && p.PCIDevice == want[2] && p.PCIFunction == want[3] {
				pick = i
			}
		}
		if pick < 0 {
			if err := missing("at PCI bus address " + sel.PCIBusID); err != nil {
				return -1, err
			}
			return -1, fmt.Errorf("%w: PCI bus address %s is not among %s (devices without VK_EXT_pci_bus_info cannot be matched by address)", ErrWrongDevice, sel.PCIBusID, strings.Join(names, ", "))
		}
	case sel.Software:
		for i, c := range cands {
			if c.props.DeviceType == vk.PhysicalDeviceTypeCPU {
				pick = i
				break
			}
		}
		if pick < 0 {
			return -1, fmt.Errorf("%w: no software Vulkan device (Mesa's lavapipe) among %s", ErrNoDevice, strings.Join(names, ", "))
		}
	default:
		if sel.Index < 0 || sel.Index >= len(cands) {
			return -1, fmt.Errorf("%w: vulkan:%d requested but there are %d devices: %s", ErrWrongDevice, sel.Index, len(cands), strings.Join(names, ", "))
		}
		pick = sel.Index
	}
	return pick, nil
}

// parsePCIBusID reads "dddd:bb:dd.f" or "bb:dd.f" (hexadecimal), the
// spelling of sysfs and of NVML's extended bus ID with its domain
// truncated to 16 bits or widened to 32.
func parsePCIBusID(s string) ([4]uint32, error) {
	bad := fmt.Errorf("PCI bus address %q: expected dddd:bb:dd.f in hexadecimal", s)
	parts := strings.Split(strings.ToLower(s), ":")
	if len(parts) == 2 {
		parts = append([]string{"0"}, parts...)
	}
	if len(parts) != 3 {
		return [4]uint32{}, bad
	}
	devFn := strings.Split(parts[2], ".")
	if len(devFn) != 2 {
		return [4]uint32{}, bad
	}
	var out [4]uint32
	for i, f := range []string{parts[0], parts[1], devFn[0], devFn[1]} {
		v, err := strconv.ParseUint(f, 16, 32)
		if err != nil {
			return [4]uint32{}, bad
		}
		out[i] = uint32(v)
	}
	return out, nil
}

// Close waits for the device and releases everything it holds.
func (d *Device) Close() {
	if d.dev != nil {
		_ = d.dev.WaitIdle()
		if d.rec != nil {
			d.rec.destroy()
		}
		d.pool.destroy()
		for b := range d.weights {
			d.free(b)
		}
		if d.dummy != nil {
			d.free(d.dummy)
		}
		d.kernels.destroy()
		d.dev.Destroy()
		d.dev = nil
	}
	if d.inst != nil {
		d.inst.DestroyDebugUtilsMessenger(d.messenger)
		d.inst.Destroy()
		d.inst = nil
	}
	d.dropSink()
}

// IsDeviceLost reports whether err comes from a lost device.
func IsDeviceLost(err error) bool { return vk.IsDeviceLost(err) }

// IsUnavailable reports whether err means that Vulkan cannot run here at
// all: no loader, or no usable device.
func IsUnavailable(err error) bool {
	return errors.Is(err, vk.ErrNoLoader) || errors.Is(err, ErrNoDevice)
}
