package simulator

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/gpus"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
	"github.com/go-logr/logr"
	"github.com/google/uuid"

	"github.com/sdfleet/sdfleet/deviceplugin/gpu"
)

const (
	mib                = 1024 * 1024
	defaultTemperature = 35
	defaultPowerWatts  = 70
	// eventQueue bounds the events waiting for the agent's event loop; more are dropped (and
	// logged), like a real driver under an event storm.
	eventQueue = 256
)

// uuidNamespace derives default GPU UUIDs from node name and index.
var uuidNamespace = uuid.MustParse("6f5c61a4-5a33-4d0e-9a55-4c3b1f1d6a10")

// state is the live value set of one simulated GPU.
type state struct {
	totalBytes  uint64
	usedBytes   uint64
	utilization uint32
	temperature uint32
	powerWatts  uint32
	failure     nvml.Return // SUCCESS unless a query error is injected
}

// timedStep is a step with its absolute due time.
type timedStep struct {
	due  time.Time
	step Step
}

// Simulator serves a scenario through a go-nvml mock server.
type Simulator struct {
	log  logr.Logger
	now  func() time.Time
	seed string

	mu       sync.Mutex
	scenario *Scenario
	raw      []byte
	states   []state
	epoch    time.Time   // when the timeline started
	next     int         // next timeline step to apply
	injected []timedStep // steps from the control endpoint, by due time
	server   *server.Server
	devices  []*server.Device
	events   chan nvml.EventData
}

// Options tune a Simulator.
type Options struct {
	// Seed makes default UUIDs unique per node and stable across restarts: use the node name.
	Seed string
	// Now is the clock; nil means time.Now. Tests pass a fake one.
	Now func() time.Time
	Log logr.Logger
}

// New builds a simulator for a validated scenario.
func New(sc *Scenario, opts Options) (*Simulator, error) {
	s := &Simulator{log: opts.Log, now: opts.Now, seed: opts.Seed, events: make(chan nvml.EventData, eventQueue)}
	if s.now == nil {
		s.now = time.Now
	}
	configs := make([]gpus.Config, len(sc.GPUs))
	for i, g := range sc.GPUs {
		cfg := gpus.H100_SXM5_80GB
		cfg.Name = g.product()
		cfg.MemoryMB = g.memoryMiB()
		configs[i] = cfg
	}
	srv, err := server.New(server.WithGPUs(configs...), server.WithDriverVersion("550.54.15"),
		server.WithNVMLVersion("12.550.54.15"), server.WithCUDADriverVersion(12040))
	if err != nil {
		return nil, fmt.Errorf("build the NVML mock server: %w", err)
	}
	s.server = srv
	for i, d := range srv.Devices {
		dev := d.(*server.Device)
		if uid := sc.GPUs[i].UUID; uid != "" {
			dev.UUID = uid
		} else if sc.GPUs[i].Family == FamilyAMD { // ROCm's spelling: 16 hex digits of unique_id
			dev.UUID = "GPU-" + strings.ReplaceAll(uuid.NewSHA1(uuidNamespace, fmt.Appendf(nil, "%s/%d", opts.Seed, i)).String(), "-", "")[:16]
		} else {
			dev.UUID = "GPU-" + uuid.NewSHA1(uuidNamespace, fmt.Appendf(nil, "%s/%d", opts.Seed, i)).String()
		}
		s.devices = append(s.devices, dev)
		s.overrideDevice(i, dev)
	}
	srv.EventSetCreateFunc = s.newEventSet
	s.reset(sc)
	return s, nil
}

// FromFile reads a scenario file and builds its simulator.
func FromFile(path string, opts Options) (*Simulator, error) {
	sc, raw, err := LoadFile(path)
	if err != nil {
		return nil, err
	}
	s, err := New(sc, opts)
	if err != nil {
		return nil, err
	}
	s.raw = raw
	return s, nil
}

// Library is the NVML interface the agent's adapter uses.
func (s *Simulator) Library() nvml.Interface { return s.server }

// Vendor is the vendor of the GPU at index, from its product family.
func (s *Simulator) Vendor(index int) gpu.Vendor {
	s.mu.Lock()
	defer s.mu.Unlock()
	if index >= 0 && index < len(s.scenario.GPUs) && s.scenario.GPUs[index].Family == FamilyAMD {
		return gpu.VendorAMD
	}
	return gpu.VendorNVIDIA
}

// reset applies the scenario's starting load and restarts its timeline. Callers hold mu or own
// s exclusively.
func (s *Simulator) reset(sc *Scenario) {
	s.scenario = sc
	s.states = make([]state, len(sc.GPUs))
	for i, g := range sc.GPUs {
		st := state{totalBytes: s.devices[i].Config.MemoryMB * mib, temperature: defaultTemperature, powerWatts: defaultPowerWatts}
		st.apply(g.Load)
		s.states[i] = st
	}
	s.epoch, s.next, s.injected = s.now(), 0, nil
}

func (st *state) apply(l Load) {
	switch {
	case l.MemoryUsedMiB != nil:
		st.usedBytes = min(*l.MemoryUsedMiB*mib, st.totalBytes)
	case l.MemoryUsedPercent != nil:
		st.usedBytes = uint64(float64(st.totalBytes) * *l.MemoryUsedPercent / 100)
	}
	if l.UtilizationPercent != nil {
		st.utilization = *l.UtilizationPercent
	}
	if l.TemperatureCelsius != nil {
		st.temperature = *l.TemperatureCelsius
	}
	if l.PowerWatts != nil {
		st.powerWatts = *l.PowerWatts
	}
}

// advance applies every step due by now. It runs on each NVML query, so the timeline needs no
// goroutine of its own and moves exactly as fast as the agent looks. Callers hold mu.
func (s *Simulator) advance() {
	now := s.now()
	tl := s.scenario.Timeline
	for {
		for s.next < len(tl) && !s.epoch.Add(tl[s.next].At.Duration).After(now) {
			s.applyStep(tl[s.next])
			s.next++
		}
		if s.scenario.RepeatEvery == nil || now.Before(s.epoch.Add(s.scenario.RepeatEvery.Duration)) {
			break
		}
		// Run the rest of this round (done above), then start the next one.
		s.epoch, s.next = s.epoch.Add(s.scenario.RepeatEvery.Duration), 0
	}
	for len(s.injected) > 0 && !s.injected[0].due.After(now) {
		s.applyStep(s.injected[0].step)
		s.injected = s.injected[1:]
	}
}

func (s *Simulator) applyStep(step Step) {
	for i := range s.states {
		if step.GPU != nil && *step.GPU != i {
			continue
		}
		st := &s.states[i]
		st.apply(step.Load)
		if step.NVMLError != "" {
			st.failure, _ = parseNVMLError(step.NVMLError)
		}
		if step.Recover {
			st.failure = nvml.SUCCESS
		}
		if step.XID != nil {
			s.raise(nvml.EventData{Device: s.devices[i], EventType: nvml.EventTypeXidCriticalError, EventData: *step.XID})
		}
		if step.DoubleBitECC {
			s.raise(nvml.EventData{Device: s.devices[i], EventType: nvml.EventTypeDoubleBitEccError})
		}
	}
}

func (s *Simulator) raise(ev nvml.EventData) {
	select {
	case s.events <- ev:
	default:
		s.log.Info("simulated event dropped: the event queue is full", "eventType", ev.EventType, "data", ev.EventData)
	}
}

// query runs read under the lock after advancing the timeline, or fails with an injected error.
func (s *Simulator) query(i int, read func(st *state)) nvml.Return {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()
	st := &s.states[i]
	if st.failure != nvml.SUCCESS {
		return st.failure
	}
	read(st)
	return nvml.SUCCESS
}

func (s *Simulator) overrideDevice(i int, dev *server.Device) {
	dev.GetMemoryInfoFunc = func() (m nvml.Memory, ret nvml.Return) {
		ret = s.query(i, func(st *state) {
			m = nvml.Memory{Total: st.totalBytes, Used: st.usedBytes, Free: st.totalBytes - st.usedBytes}
		})
		return m, ret
	}
	dev.GetMemoryInfo_v2Func = func() (m nvml.Memory_v2, ret nvml.Return) {
		ret = s.query(i, func(st *state) {
			m = nvml.Memory_v2{Total: st.totalBytes, Used: st.usedBytes, Free: st.totalBytes - st.usedBytes}
		})
		return m, ret
	}
	dev.GetUtilizationRatesFunc = func() (u nvml.Utilization, ret nvml.Return) {
		ret = s.query(i, func(st *state) { u = nvml.Utilization{Gpu: st.utilization, Memory: st.utilization} })
		return u, ret
	}
	dev.GetTemperatureFunc = func(nvml.TemperatureSensors) (t uint32, ret nvml.Return) {
		ret = s.query(i, func(st *state) { t = st.temperature })
		return t, ret
	}
	dev.GetPowerUsageFunc = func() (p uint32, ret nvml.Return) {
		ret = s.query(i, func(st *state) { p = st.powerWatts * 1000 })
		return p, ret
	}
	dev.GetSupportedEventTypesFunc = func() (uint64, nvml.Return) {
		return nvml.EventTypeXidCriticalError | nvml.EventTypeDoubleBitEccError | nvml.EventTypeSingleBitEccError, nvml.SUCCESS
	}
	dev.RegisterEventsFunc = func(uint64, nvml.EventSet) nvml.Return { return nvml.SUCCESS }
}

// newEventSet returns an event set whose Wait delivers the scenario's events. There is one
// queue for the whole simulator: the agent runs one event loop.
func (s *Simulator) newEventSet() (nvml.EventSet, nvml.Return) {
	set := &mock.EventSet{}
	set.FreeFunc = func() nvml.Return { return nvml.SUCCESS }
	set.WaitFunc = func(timeoutMs uint32) (nvml.EventData, nvml.Return) {
		s.mu.Lock()
		s.advance()
		s.mu.Unlock()
		timer := time.NewTimer(time.Duration(timeoutMs) * time.Millisecond)
		defer timer.Stop()
		select {
		case ev := <-s.events:
			return ev, nvml.SUCCESS
		case <-timer.C:
			return nvml.EventData{}, nvml.ERROR_TIMEOUT
		}
	}
	return set, nvml.SUCCESS
}

// Inject schedules steps relative to now, as the control endpoint does. Steps are validated
// against the scenario's GPUs first; none is applied if one is wrong.
func (s *Simulator) Inject(steps []Step) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range steps {
		if err := steps[i].Validate(fmt.Sprintf("steps[%d]", i), s.scenario.GPUs); err != nil {
			return err
		}
	}
	now := s.now()
	for _, st := range steps {
		s.injected = append(s.injected, timedStep{due: now.Add(st.At.Duration), step: st})
	}
	sort.SliceStable(s.injected, func(a, b int) bool { return s.injected[a].due.Before(s.injected[b].due) })
	s.advance()
	return nil
}

// Reload replaces the scenario with sc. The GPUs must be the same as before; the starting load
// is applied and the timeline restarts now.
func (s *Simulator) Reload(sc *Scenario) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !sameGPUs(s.scenario.GPUs, sc.GPUs) {
		return errGPUsChanged
	}
	// Keep pending events: they already happened.
	s.reset(sc)
	return nil
}

func sameGPUs(a, b []GPU) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].UUID != b[i].UUID || a[i].Family != b[i].Family || a[i].Product != b[i].Product || a[i].MemoryMiB != b[i].MemoryMiB {
			return false
		}
	}
	return true
}

// WatchFile re-reads path every interval and reloads the scenario when its content changed,
// until ctx ends. A file that does not parse, or that changes the GPUs, is logged and ignored:
// the running scenario stays.
func (s *Simulator) WatchFile(ctx context.Context, path string, interval time.Duration) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		data, err := os.ReadFile(path)
		if err != nil {
			s.log.Info("cannot re-read the simulator scenario; keeping the current one", "file", path, "error", err.Error())
			continue
		}
		s.mu.Lock()
		same := bytes.Equal(data, s.raw)
		s.mu.Unlock()
		if same {
			continue
		}
		sc, err := Parse(data)
		if err == nil {
			err = s.Reload(sc)
		}
		s.mu.Lock()
		s.raw = data // do not log the same bad content every interval
		s.mu.Unlock()
		if err != nil {
			s.log.Error(err, "simulator scenario not reloaded; keeping the current one", "file", path)
			continue
		}
		s.log.Info("simulator scenario reloaded", "file", path, "gpus", len(sc.GPUs), "timelineSteps", len(sc.Timeline))
	}
}

// GPUState is one GPU's current simulated values, as the control endpoint reports them.
type GPUState struct {
	Index              int    `json:"index"`
	UUID               string `json:"uuid"`
	Product            string `json:"product"`
	MemoryTotalBytes   uint64 `json:"memoryTotalBytes"`
	MemoryUsedBytes    uint64 `json:"memoryUsedBytes"`
	UtilizationPercent uint32 `json:"utilizationPercent"`
	TemperatureCelsius uint32 `json:"temperatureCelsius"`
	PowerWatts         uint32 `json:"powerWatts"`
	// NVMLError is the injected query error, empty when queries succeed.
	NVMLError string `json:"nvmlError,omitempty"`
}

// State reports every GPU's current values, after applying due steps.
func (s *Simulator) State() []GPUState {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()
	out := make([]GPUState, len(s.states))
	for i, st := range s.states {
		out[i] = GPUState{Index: i, UUID: s.devices[i].UUID, Product: s.devices[i].Config.Name,
			MemoryTotalBytes: st.totalBytes, MemoryUsedBytes: st.usedBytes, UtilizationPercent: st.utilization,
			TemperatureCelsius: st.temperature, PowerWatts: st.powerWatts}
		if st.failure != nvml.SUCCESS {
			out[i].NVMLError = st.failure.String()
		}
	}
	return out
}
