package metrics_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sdfleet/sdfleet/deviceplugin/gpu"
	"github.com/sdfleet/sdfleet/deviceplugin/metrics"
)

func TestGPUMetrics(t *testing.T) {
	m := metrics.New("node-a")
	m.SetInfo(gpu.Info{Index: 1, UUID: "GPU-x", Vendor: gpu.VendorNVIDIA, Product: "NVIDIA L4", MemoryTotalBytes: 100}, "sdfleet.io/gpu-1")
	m.Observe("GPU-x", gpu.Sample{Index: 1, MemoryUsedBytes: 40, MemoryTotalBytes: 100, UtilizationPercent: 25, TemperatureCelsius: 60})
	m.Observe("GPU-x", gpu.Sample{Index: 1, MemoryUsedBytes: 99, Err: errors.New("lost")}) // ignored: stale values stay
	m.SetHealthy(1, "GPU-x", false)
	m.XID(1, "GPU-x", 79)
	m.XID(1, "GPU-x", 79)
	m.Transition(1, "GPU-x", false)

	want := `
# HELP sdfleet_gpu_memory_used_bytes GPU memory in use, by any process.
# TYPE sdfleet_gpu_memory_used_bytes gauge
sdfleet_gpu_memory_used_bytes{UUID="GPU-x",gpu="1",node="node-a"} 40
# HELP sdfleet_gpu_utilization_ratio Share of the last sample period during which a kernel ran on the GPU (0 to 1).
# TYPE sdfleet_gpu_utilization_ratio gauge
sdfleet_gpu_utilization_ratio{UUID="GPU-x",gpu="1",node="node-a"} 0.25
# HELP sdfleet_gpu_healthy 1 when the GPU is healthy and advertised to the kubelet, else 0.
# TYPE sdfleet_gpu_healthy gauge
sdfleet_gpu_healthy{UUID="GPU-x",gpu="1",node="node-a"} 0
# HELP sdfleet_gpu_xid_errors_total Xid critical errors NVML reported, ignored ones included.
# TYPE sdfleet_gpu_xid_errors_total counter
sdfleet_gpu_xid_errors_total{UUID="GPU-x",gpu="1",node="node-a",xid="79"} 2
# HELP sdfleet_gpu_info Always 1; labels say the GPU's vendor (NVIDIA or AMD), product and the extended resource that carries it.
# TYPE sdfleet_gpu_info gauge
sdfleet_gpu_info{UUID="GPU-x",gpu="1",node="node-a",product="NVIDIA L4",resource="sdfleet.io/gpu-1",vendor="NVIDIA"} 1
# HELP sdfleet_gpu_temperature_celsius GPU core temperature.
# TYPE sdfleet_gpu_temperature_celsius gauge
sdfleet_gpu_temperature_celsius{UUID="GPU-x",gpu="1",node="node-a"} 60
# HELP sdfleet_gpu_memory_total_bytes GPU memory in total.
# TYPE sdfleet_gpu_memory_total_bytes gauge
sdfleet_gpu_memory_total_bytes{UUID="GPU-x",gpu="1",node="node-a"} 100
# HELP sdfleet_gpu_health_transitions_total GPU health changes, by the health reached (Healthy or Unhealthy).
# TYPE sdfleet_gpu_health_transitions_total counter
sdfleet_gpu_health_transitions_total{UUID="GPU-x",gpu="1",health="Unhealthy",node="node-a"} 1
`
	names := []string{"sdfleet_gpu_memory_used_bytes", "sdfleet_gpu_memory_total_bytes", "sdfleet_gpu_utilization_ratio",
		"sdfleet_gpu_temperature_celsius", "sdfleet_gpu_healthy", "sdfleet_gpu_xid_errors_total", "sdfleet_gpu_info",
		"sdfleet_gpu_health_transitions_total"}
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), names...); err != nil {
		t.Fatal(err)
	}
}
