package agent

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	"github.com/sdfleet/sdfleet/controllers/podcontract"
	"github.com/sdfleet/sdfleet/deviceplugin/config"
	"github.com/sdfleet/sdfleet/deviceplugin/gpu"
	"github.com/sdfleet/sdfleet/deviceplugin/health"
	"github.com/sdfleet/sdfleet/deviceplugin/kubelet"
	"github.com/sdfleet/sdfleet/deviceplugin/metrics"
	"github.com/sdfleet/sdfleet/deviceplugin/publisher"
	"github.com/sdfleet/sdfleet/deviceplugin/simulator"
)

// Agent is one node's agent.
type Agent struct {
	cfg       *config.Config
	version   string
	log       logr.Logger
	source    gpu.Source
	sim       *simulator.Simulator
	devices   []gpu.Info
	byIndex   map[int]int // GPU index → position in devices
	tracker   *health.Tracker
	metrics   *metrics.Metrics
	publisher *publisher.Publisher
	plugins   *kubelet.Manager // nil when disabled or without GPUs

	// last good sample per device position; failed samples keep the previous values.
	last []gpu.Sample
	// wake asks the sampling loop to publish now (a health change from the event loop).
	wake     chan struct{}
	lastLoop atomic.Int64 // unix nanoseconds of the last sampling round, for /healthz
	ready    atomic.Bool
}

// New builds an agent on an opened source. sim is nil unless the source is simulated.
func New(cfg *config.Config, c client.Client, src gpu.Source, sim *simulator.Simulator, version string, log logr.Logger) (*Agent, error) {
	a := &Agent{cfg: cfg, version: version, log: log, source: src, sim: sim, devices: src.Devices(),
		byIndex: map[int]int{}, metrics: metrics.New(cfg.NodeName), wake: make(chan struct{}, 1)}
	policy := health.Policy{IgnoredXIDs: cfg.IgnoredXIDs, QuietPeriod: cfg.RecoveryQuietPeriod, RecoveryProbes: cfg.RecoveryProbes}
	if err := policy.Validate(); err != nil {
		return nil, err
	}
	indexes := make([]int, len(a.devices))
	var plugGPUs []kubelet.GPU
	for pos, d := range a.devices {
		indexes[pos] = d.Index
		a.byIndex[d.Index] = pos
		resource := d.ResourceName(sdfleetv1alpha1.ResourcePrefix)
		a.metrics.SetInfo(d, resource)
		a.metrics.SetHealthy(d.Index, d.UUID, true)
		plugGPUs = append(plugGPUs, kubelet.GPU{Index: d.Index, UUID: d.UUID, ResourceName: resource,
			Vendor: d.Vendor, PCIBusID: d.PCIBusID, RenderNode: d.RenderNode, Simulated: a.source.Simulated()})
	}
	a.last = make([]gpu.Sample, len(a.devices))
	a.tracker = health.NewTracker(indexes, policy, nil)
	pub, err := publisher.New(c, publisher.Options{NodeName: cfg.NodeName, Counter: a.metrics, Log: log.WithName("publisher"),
		Rule: publisher.Rule{MemoryThresholdPercent: cfg.MemoryChangeThreshold, Heartbeat: cfg.HeartbeatInterval}})
	if err != nil {
		return nil, err
	}
	a.publisher = pub
	if cfg.EnableKubeletPlugin && len(plugGPUs) > 0 {
		a.plugins, err = kubelet.NewManager(plugGPUs, kubelet.Options{PluginDir: cfg.PluginDir, Slots: cfg.SlotsPerGPU,
			Strategy: cfg.DeviceListStrategy, PollInterval: cfg.KubeletPollInterval, Log: log.WithName("kubelet")})
		if err != nil {
			return nil, err
		}
	}
	return a, nil
}

// Metrics are the agent's collectors.
func (a *Agent) Metrics() *metrics.Metrics { return a.metrics }

// Publisher is the agent's GPUNode writer (for its write count in figures).
func (a *Agent) Publisher() *publisher.Publisher { return a.publisher }

// Plugins is the kubelet plugin manager, nil when the plugin is disabled or there are no GPUs.
func (a *Agent) Plugins() *kubelet.Manager { return a.plugins }

// Run runs the agent until ctx ends, then stops every part and closes the source. It fails
// early when an HTTP address cannot be bound.
func (a *Agent) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer func() {
		if err := a.source.Close(); err != nil {
			a.log.Error(err, "closing the GPU source")
		}
	}()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel() // runs before wg.Wait: stop everything, then wait for it

	if err := a.serveHTTP(ctx, &wg); err != nil {
		return err
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := a.source.WatchEvents(ctx, a.onEvent); err != nil {
			a.log.Error(err, "GPU events cannot be watched; health now relies on sampling only")
		}
	}()
	// A dead kubelet plugin would leave pods that request this node's GPUs pending forever
	// while the node still looks alive, so its failure stops the agent (and the pod restarts).
	pluginErr := make(chan error, 1)
	if a.plugins != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.plugins.Run(ctx); err != nil {
				pluginErr <- fmt.Errorf("kubelet device plugin: %w", err)
			}
		}()
	}
	if a.sim != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.sim.WatchFile(ctx, a.cfg.SimulatorConfig, a.cfg.SimulatorReloadInterval)
		}()
	}
	a.log.Info("node agent started", "node", a.cfg.NodeName, "gpus", len(a.devices), "simulated", a.source.Simulated(),
		"sampleInterval", a.cfg.SampleInterval, "heartbeat", a.cfg.HeartbeatInterval)
	ticker := time.NewTicker(a.cfg.SampleInterval)
	defer ticker.Stop()
	for {
		a.round(ctx)
		select {
		case <-ctx.Done():
			a.log.Info("node agent stopping")
			return nil
		case err := <-pluginErr:
			return err
		case <-ticker.C:
		case <-a.wake:
		}
	}
}

// round samples every GPU, updates health and metrics, and publishes if the rule says so.
func (a *Agent) round(ctx context.Context) {
	a.lastLoop.Store(time.Now().UnixNano())
	samples := a.source.Sample()
	for pos, s := range samples {
		d := a.devices[pos]
		a.transition(a.tracker.Probe(s.Index, s.Err))
		if s.Err != nil {
			a.log.V(1).Info("GPU query failed", "gpu", d.Index, "uuid", d.UUID, "error", s.Err.Error())
			continue
		}
		a.last[pos] = s
		a.metrics.Observe(d.UUID, s)
	}
	if _, err := a.publisher.Observe(ctx, a.status()); err != nil {
		if ctx.Err() == nil {
			a.log.Error(err, "publishing GPU load failed; retrying next round")
		}
		return
	}
	a.ready.Store(true)
}

// onEvent runs on the event loop's goroutine.
func (a *Agent) onEvent(ev gpu.Event) {
	pos, ok := a.byIndex[ev.Index]
	if !ok {
		return
	}
	uuid := a.devices[pos].UUID
	if ev.Kind == gpu.EventXID {
		a.metrics.XID(ev.Index, uuid, ev.XID)
		if a.tracker.Ignored(ev.XID) {
			a.log.Info("application Xid ignored", "gpu", ev.Index, "uuid", uuid, "xid", ev.XID)
			return
		}
	}
	if a.transition(a.tracker.Event(ev)) {
		select {
		case a.wake <- struct{}{}:
		default:
		}
	}
}

// transition logs, counts and advertises a health change; it says whether there was one.
func (a *Agent) transition(t *health.Transition) bool {
	if t == nil {
		return false
	}
	d := a.devices[a.byIndex[t.Index]]
	if t.Healthy {
		a.log.Info("GPU recovered and is advertised again", "gpu", t.Index, "uuid", d.UUID)
	} else {
		a.log.Info("GPU became unhealthy and is withdrawn", "gpu", t.Index, "uuid", d.UUID, "reason", t.Reason)
	}
	a.metrics.Transition(t.Index, d.UUID, t.Healthy)
	a.metrics.SetHealthy(t.Index, d.UUID, t.Healthy)
	if a.plugins != nil {
		a.plugins.SetHealth(t.Index, t.Healthy)
	}
	return true
}

// status builds the GPUNode status from the last good samples and current health.
func (a *Agent) status() sdfleetv1alpha1.GPUNodeStatus {
	st := sdfleetv1alpha1.GPUNodeStatus{
		GPUs:                     make([]sdfleetv1alpha1.GPUStatus, 0, len(a.devices)),
		GPUCount:                 int32(len(a.devices)),
		SampleIntervalSeconds:    int32(max(1, math.Ceil(a.cfg.SampleInterval.Seconds()))),
		HeartbeatIntervalSeconds: int32(max(1, math.Ceil(a.cfg.HeartbeatInterval.Seconds()))),
		Simulated:                a.source.Simulated(),
		AgentVersion:             a.version,
	}
	var used, total float64
	for pos, d := range a.devices {
		s := a.last[pos]
		g := sdfleetv1alpha1.GPUStatus{
			Index: int32(d.Index), UUID: d.UUID, Vendor: sdfleetv1alpha1.GPUVendor(d.Vendor), ProductName: d.Product,
			MemoryTotalBytes: int64(d.MemoryTotalBytes), MemoryUsedBytes: int64(s.MemoryUsedBytes),
			UtilizationPercent: int32(s.UtilizationPercent), TemperatureCelsius: int32(s.TemperatureCelsius),
			PowerWatts:   int32(s.PowerMilliwatts / 1000),
			ResourceName: d.ResourceName(sdfleetv1alpha1.ResourcePrefix), Slots: int32(a.cfg.SlotsPerGPU),
			Health: sdfleetv1alpha1.GPUHealthy,
		}
		if s.MemoryTotalBytes > 0 {
			g.MemoryTotalBytes = int64(s.MemoryTotalBytes)
		}
		if h := a.tracker.Status(d.Index); !h.Healthy {
			g.Health, g.HealthReason = sdfleetv1alpha1.GPUUnhealthy, podcontract.Truncate(h.Reason, podcontract.MaxMessageLength)
		} else {
			st.HealthyGPUs++
		}
		used += float64(g.MemoryUsedBytes)
		total += float64(g.MemoryTotalBytes)
		st.GPUs = append(st.GPUs, g)
	}
	if total > 0 {
		st.MemoryUsedPercent = int32(math.Round(100 * used / total))
	}
	return st
}

// serveHTTP binds the metrics and probe addresses (failing at once if one is taken) and serves
// them until ctx ends.
func (a *Agent) serveHTTP(ctx context.Context, wg *sync.WaitGroup) error {
	servers := map[string]http.Handler{}
	if addr := a.cfg.MetricsBindAddress; addr != "" && addr != "0" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", a.metrics.Handler())
		servers[addr] = mux
	}
	if addr := a.cfg.HealthProbeBindAddress; addr != "" && addr != "0" {
		mux, ok := servers[addr].(*http.ServeMux)
		if !ok {
			mux = http.NewServeMux()
			servers[addr] = mux
		}
		mux.HandleFunc("/healthz", a.healthz)
		mux.HandleFunc("/readyz", a.readyz)
	}
	// The simulator's control endpoint takes no authentication: it exists only in simulated
	// mode, on its own address (loopback by default).
	if addr := a.cfg.SimulatorControlBindAddress; a.sim != nil && addr != "" && addr != "0" {
		mux, ok := servers[addr].(*http.ServeMux)
		if !ok {
			mux = http.NewServeMux()
			servers[addr] = mux
		}
		mux.Handle("/simulator", a.sim.Handler())
	}
	for addr, handler := range servers {
		lis, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", addr, err)
		}
		srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
		wg.Add(2)
		go func() {
			defer wg.Done()
			if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
				a.log.Error(err, "HTTP server stopped", "address", addr)
			}
		}()
		go func() {
			defer wg.Done()
			<-ctx.Done()
			shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(shutdownCtx)
		}()
		a.log.Info("serving HTTP", "address", lis.Addr().String())
	}
	return nil
}

// healthz fails when the sampling loop has stalled for many intervals.
func (a *Agent) healthz(w http.ResponseWriter, _ *http.Request) {
	stall := max(10*a.cfg.SampleInterval, 30*time.Second)
	last := time.Unix(0, a.lastLoop.Load())
	if a.lastLoop.Load() != 0 && time.Since(last) > stall {
		http.Error(w, fmt.Sprintf("sampling loop stalled since %s", last.Format(time.RFC3339)), http.StatusServiceUnavailable)
		return
	}
	_, _ = w.Write([]byte("ok"))
}

// readyz succeeds once the GPUNode has been published.
func (a *Agent) readyz(w http.ResponseWriter, _ *http.Request) {
	if !a.ready.Load() {
		http.Error(w, "GPUNode not published yet", http.StatusServiceUnavailable)
		return
	}
	_, _ = w.Write([]byte("ok"))
}
