package gpu

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/go-logr/logr"
)

// ErrLibraryNotFound is returned by OpenNVML when libnvidia-ml cannot be loaded: the node has no
// NVIDIA driver.
var ErrLibraryNotFound = errors.New("NVML library (libnvidia-ml.so.1) not found")

// watchedEvents are the NVML event types the health loop asks for. Single-bit ECC errors are
// corrected by the hardware and say nothing about the GPU's fitness.
const watchedEvents = uint64(nvml.EventTypeXidCriticalError | nvml.EventTypeDoubleBitEccError)

// NVMLOptions tune OpenNVML.
type NVMLOptions struct {
	// Visible selects the GPUs to manage by index or UUID, like CUDA_VISIBLE_DEVICES. Empty or
	// ["all"] manages every GPU.
	Visible []string
	// Simulated marks the library as go-nvml's mock (see package simulator).
	Simulated bool
	// VendorOf names the vendor of the GPU at an NVML index; nil means NVIDIA. The simulator
	// uses it for its AMD product family.
	VendorOf func(index int) Vendor
	// EventWait bounds one NVML event wait, which is how fast WatchEvents notices its context
	// ending. Zero means one second.
	EventWait time.Duration
	Log       logr.Logger
}

// NVML is the Source over an NVML library, real or mocked.
type NVML struct {
	lib       nvml.Interface
	devices   []nvml.Device
	infos     []Info
	simulated bool
	vendorOf  func(int) Vendor
	eventWait time.Duration
	log       logr.Logger
	// noMemoryV2 remembers, per device, that GetMemoryInfo_v2 is unsupported so that it is not
	// asked again every second.
	noMemoryV2 []bool
}

var _ Source = (*NVML)(nil)

// OpenNVML initialises lib and reads the static facts of the selected GPUs. It returns
// ErrLibraryNotFound when the library is missing, and an error naming the selection when a
// --visible-gpus entry matches no GPU.
func OpenNVML(lib nvml.Interface, opts NVMLOptions) (*NVML, error) {
	if ret := lib.Init(); ret != nvml.SUCCESS {
		if ret == nvml.ERROR_LIBRARY_NOT_FOUND {
			return nil, ErrLibraryNotFound
		}
		return nil, fmt.Errorf("initialise NVML: %w", ret)
	}
	a := &NVML{lib: lib, simulated: opts.Simulated, vendorOf: opts.VendorOf, eventWait: opts.EventWait, log: opts.Log}
	if a.eventWait <= 0 {
		a.eventWait = time.Second
	}
	if err := a.enumerate(opts.Visible); err != nil {
		_ = lib.Shutdown()
		return nil, err
	}
	return a, nil
}

func (a *NVML) enumerate(visible []string) error {
	count, ret := a.lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return fmt.Errorf("count GPUs: %w", ret)
	}
	all := len(visible) == 0 || (len(visible) == 1 && strings.EqualFold(visible[0], "all"))
	matched := make([]bool, len(visible))
	for i := 0; i < count; i++ {
		dev, ret := a.lib.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			return fmt.Errorf("get handle of GPU %d: %w", i, ret)
		}
		uuid, ret := dev.GetUUID()
		if ret != nvml.SUCCESS {
			return fmt.Errorf("get UUID of GPU %d: %w", i, ret)
		}
		if !all {
			selected := false
			for j, v := range visible {
				if v == strconv.Itoa(i) || strings.EqualFold(v, uuid) {
					matched[j], selected = true, true
				}
			}
			if !selected {
				continue
			}
		}
		name, ret := dev.GetName()
		if ret != nvml.SUCCESS && ret != nvml.ERROR_NOT_SUPPORTED {
			return fmt.Errorf("get product name of GPU %d: %w", i, ret)
		}
		info := Info{Index: i, UUID: uuid, Vendor: VendorNVIDIA, Product: name}
		if a.vendorOf != nil {
			info.Vendor = a.vendorOf(i)
		}
		a.devices = append(a.devices, dev)
		a.noMemoryV2 = append(a.noMemoryV2, false)
		_, total, err := a.memory(len(a.devices) - 1)
		if err != nil {
			return fmt.Errorf("get memory of GPU %d: %w", i, err)
		}
		info.MemoryTotalBytes = total
		a.infos = append(a.infos, info)
	}
	if !all {
		for j, ok := range matched {
			if !ok {
				return fmt.Errorf("visible GPU %q matches no GPU index or UUID on this node (%d GPUs)", visible[j], count)
			}
		}
	}
	return nil
}

// memory reads used and total memory, preferring GetMemoryInfo_v2 (whose "used" excludes the
// driver's reserved memory) and falling back to v1 where the driver does not support it.
func (a *NVML) memory(pos int) (used, total uint64, err error) {
	dev := a.devices[pos]
	if !a.noMemoryV2[pos] {
		m, ret := dev.GetMemoryInfo_v2()
		switch ret {
		case nvml.SUCCESS:
			return m.Used, m.Total, nil
		case nvml.ERROR_NOT_SUPPORTED, nvml.ERROR_FUNCTION_NOT_FOUND, nvml.ERROR_ARGUMENT_VERSION_MISMATCH:
			a.noMemoryV2[pos] = true
		default:
			return 0, 0, fmt.Errorf("GetMemoryInfo_v2: %w", ret)
		}
	}
	m, ret := dev.GetMemoryInfo()
	if ret != nvml.SUCCESS {
		return 0, 0, fmt.Errorf("GetMemoryInfo: %w", ret)
	}
	return m.Used, m.Total, nil
}

// Devices lists the managed GPUs.
func (a *NVML) Devices() []Info { return slices.Clone(a.infos) }

// Simulated says whether the library is the simulator.
func (a *NVML) Simulated() bool { return a.simulated }

// Sample reads memory, utilization, temperature and power of every managed GPU.
func (a *NVML) Sample() []Sample {
	out := make([]Sample, len(a.devices))
	for pos, dev := range a.devices {
		s := Sample{Index: a.infos[pos].Index}
		used, total, err := a.memory(pos)
		if err != nil {
			s.Err = queryFailed(err)
			out[pos] = s
			continue
		}
		s.MemoryUsedBytes, s.MemoryTotalBytes = used, total
		if u, ret := dev.GetUtilizationRates(); ret == nvml.SUCCESS {
			s.UtilizationPercent = min(u.Gpu, 100)
		} else if ret != nvml.ERROR_NOT_SUPPORTED {
			s.Err = queryFailed(fmt.Errorf("GetUtilizationRates: %w", ret))
		}
		if t, ret := dev.GetTemperature(nvml.TEMPERATURE_GPU); ret == nvml.SUCCESS {
			s.TemperatureCelsius = t
		} else if ret != nvml.ERROR_NOT_SUPPORTED && s.Err == nil {
			s.Err = queryFailed(fmt.Errorf("GetTemperature: %w", ret))
		}
		if p, ret := dev.GetPowerUsage(); ret == nvml.SUCCESS {
			s.PowerMilliwatts = p
		} else if ret != nvml.ERROR_NOT_SUPPORTED && s.Err == nil {
			s.Err = queryFailed(fmt.Errorf("GetPowerUsage: %w", ret))
		}
		out[pos] = s
	}
	return out
}

// queryFailed words a failed NVML query as the health reason it becomes.
func queryFailed(err error) error { return fmt.Errorf("NVML query failed: %w", err) }

// WatchEvents runs the single NVML event loop for all managed GPUs: Xid critical errors and
// double-bit ECC errors. A GPU whose events cannot be registered is still sampled; only its
// events are missed, which is logged.
func (a *NVML) WatchEvents(ctx context.Context, handle func(Event)) error {
	if len(a.devices) == 0 {
		<-ctx.Done()
		return nil
	}
	set, ret := a.lib.EventSetCreate()
	if ret != nvml.SUCCESS {
		return fmt.Errorf("create NVML event set: %w", ret)
	}
	defer set.Free()
	byUUID := map[string]int{}
	for pos, dev := range a.devices {
		info := a.infos[pos]
		byUUID[info.UUID] = info.Index
		supported, ret := dev.GetSupportedEventTypes()
		if ret != nvml.SUCCESS {
			a.log.Info("GPU does not report its event types; its Xid errors will not be seen", "gpu", info.Index, "uuid", info.UUID, "error", ret.Error())
			continue
		}
		if ret := dev.RegisterEvents(supported&watchedEvents, set); ret != nvml.SUCCESS {
			a.log.Info("cannot register for GPU events; its Xid errors will not be seen", "gpu", info.Index, "uuid", info.UUID, "error", ret.Error())
		}
	}
	waitMs := uint32(a.eventWait.Milliseconds())
	for ctx.Err() == nil {
		data, ret := set.Wait(waitMs)
		switch ret {
		case nvml.SUCCESS:
		case nvml.ERROR_TIMEOUT:
			continue
		case nvml.ERROR_GPU_IS_LOST:
			for _, info := range a.infos {
				handle(Event{Index: info.Index, Kind: EventLost})
			}
			continue
		default:
			a.log.Info("NVML event wait failed", "error", ret.Error())
			select {
			case <-ctx.Done():
			case <-time.After(a.eventWait):
			}
			continue
		}
		kind := EventXID
		switch {
		case data.EventType&nvml.EventTypeDoubleBitEccError != 0:
			kind = EventDoubleBitECC
		case data.EventType&nvml.EventTypeXidCriticalError == 0:
			continue
		}
		targets := a.eventTargets(data.Device, byUUID)
		for _, index := range targets {
			handle(Event{Index: index, Kind: kind, XID: data.EventData})
		}
	}
	return nil
}

// eventTargets maps an event's device to managed GPU indexes. An event without a device (NVML
// does this for some Xids) concerns every GPU.
func (a *NVML) eventTargets(dev nvml.Device, byUUID map[string]int) []int {
	if dev != nil {
		if uuid, ret := dev.GetUUID(); ret == nvml.SUCCESS {
			if index, ok := byUUID[uuid]; ok {
				return []int{index}
			}
			return nil // not a GPU this agent manages
		}
	}
	all := make([]int, len(a.infos))
	for i, info := range a.infos {
		all[i] = info.Index
	}
	return all
}

// Close shuts NVML down.
func (a *NVML) Close() error {
	if ret := a.lib.Shutdown(); ret != nvml.SUCCESS {
		return fmt.Errorf("shut NVML down: %w", ret)
	}
	return nil
}
