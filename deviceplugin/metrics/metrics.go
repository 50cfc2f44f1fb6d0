package metrics

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sdfleet/sdfleet/deviceplugin/gpu"
)

// Label names; "gpu" and "UUID" match dcgm-exporter.
const (
	LabelNode     = "node"
	LabelGPU      = "gpu"
	LabelUUID     = "UUID"
	LabelXID      = "xid"
	LabelProduct  = "product"
	LabelResource = "resource"
	LabelVendor   = "vendor"
)

var gpuLabels = []string{LabelNode, LabelGPU, LabelUUID}

// Metrics holds the agent's collectors in their own registry.
type Metrics struct {
	node     string
	registry *prometheus.Registry

	memoryUsed  *prometheus.GaugeVec
	memoryTotal *prometheus.GaugeVec
	utilization *prometheus.GaugeVec
	temperature *prometheus.GaugeVec
	healthy     *prometheus.GaugeVec
	xidErrors   *prometheus.CounterVec
	info        *prometheus.GaugeVec
	transitions *prometheus.CounterVec
	apiWrites   *prometheus.CounterVec
	apiErrors   prometheus.Counter
}

// New creates the collectors for node.
func New(node string) *Metrics {
	m := &Metrics{node: node, registry: prometheus.NewRegistry()}
	gauge := func(name, help string, extra ...string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, append(append([]string{}, gpuLabels...), extra...))
	}
	m.memoryUsed = gauge("sdfleet_gpu_memory_used_bytes", "GPU memory in use, by any process.")
	m.memoryTotal = gauge("sdfleet_gpu_memory_total_bytes", "GPU memory in total.")
	m.utilization = gauge("sdfleet_gpu_utilization_ratio", "Share of the last sample period during which a kernel ran on the GPU (0 to 1).")
	m.temperature = gauge("sdfleet_gpu_temperature_celsius", "GPU core temperature.")
	m.healthy = gauge("sdfleet_gpu_healthy", "1 when the GPU is healthy and advertised to the kubelet, else 0.")
	m.info = gauge("sdfleet_gpu_info", "Always 1; labels say the GPU's vendor (NVIDIA or AMD), product and the extended resource that carries it.", LabelVendor, LabelProduct, LabelResource)
	m.xidErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sdfleet_gpu_xid_errors_total",
		Help: "Xid critical errors NVML reported, ignored ones included."}, append(append([]string{}, gpuLabels...), LabelXID))
	m.transitions = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sdfleet_gpu_health_transitions_total",
		Help: "GPU health changes, by the health reached (Healthy or Unhealthy)."}, append(append([]string{}, gpuLabels...), "health"))
	m.apiWrites = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sdfleet_deviceplugin_api_writes_total",
		Help: "Writes the agent made to the Kubernetes API, by what was written."}, []string{LabelNode, "object"})
	m.apiErrors = prometheus.NewCounter(prometheus.CounterOpts{Name: "sdfleet_deviceplugin_api_write_errors_total",
		Help: "Failed writes to the Kubernetes API.", ConstLabels: prometheus.Labels{LabelNode: node}})
	m.registry.MustRegister(m.memoryUsed, m.memoryTotal, m.utilization, m.temperature, m.healthy, m.info,
		m.xidErrors, m.transitions, m.apiWrites, m.apiErrors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *Metrics) labels(index int, uuid string) prometheus.Labels {
	return prometheus.Labels{LabelNode: m.node, LabelGPU: strconv.Itoa(index), LabelUUID: uuid}
}

// SetInfo records a GPU's static facts.
func (m *Metrics) SetInfo(info gpu.Info, resource string) {
	l := m.labels(info.Index, info.UUID)
	m.memoryTotal.With(l).Set(float64(info.MemoryTotalBytes))
	l[LabelVendor], l[LabelProduct], l[LabelResource] = string(info.Vendor), info.Product, resource
	m.info.With(l).Set(1)
}

// Observe records a successful sample. Failed samples leave the last values in place: the
// healthy gauge says they are stale.
func (m *Metrics) Observe(uuid string, s gpu.Sample) {
	if s.Err != nil {
		return
	}
	l := m.labels(s.Index, uuid)
	m.memoryUsed.With(l).Set(float64(s.MemoryUsedBytes))
	m.memoryTotal.With(l).Set(float64(s.MemoryTotalBytes))
	m.utilization.With(l).Set(float64(s.UtilizationPercent) / 100)
	m.temperature.With(l).Set(float64(s.TemperatureCelsius))
}

// SetHealthy records a GPU's health.
func (m *Metrics) SetHealthy(index int, uuid string, healthy bool) {
	v := 0.0
	if healthy {
		v = 1
	}
	m.healthy.With(m.labels(index, uuid)).Set(v)
}

// Transition counts a health change.
func (m *Metrics) Transition(index int, uuid string, healthy bool) {
	l := m.labels(index, uuid)
	l["health"] = "Unhealthy"
	if healthy {
		l["health"] = "Healthy"
	}
	m.transitions.With(l).Inc()
}

// XID counts an Xid error.
func (m *Metrics) XID(index int, uuid string, xid uint64) {
	l := m.labels(index, uuid)
	l[LabelXID] = strconv.FormatUint(xid, 10)
	m.xidErrors.With(l).Inc()
}

// APIWrite counts a write to the Kubernetes API; object is what was written (for example
// "gpunode-status").
func (m *Metrics) APIWrite(object string) { m.apiWrites.WithLabelValues(m.node, object).Inc() }

// APIError counts a failed write.
func (m *Metrics) APIError() { m.apiErrors.Inc() }

// Registry is the registry the collectors live in, for tests and extra collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}
