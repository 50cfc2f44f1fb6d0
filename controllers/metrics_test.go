package controllers

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	dto "github.com/prometheus/client_model/go"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	sdtesting "github.com/sdfleet/sdfleet/controllers/testing"
)

// metricValue reads a counter, gauge or histogram count from the manager's registry; -1 when
// no series has those labels.
func metricValue(name string, labels map[string]string) float64 {
	families, err := metrics.Registry.Gather()
	Expect(err).NotTo(HaveOccurred())
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					continue series
				}
			}
			return seriesValue(m)
		}
	}
	return -1
}

func seriesValue(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return -1
}

var _ = Describe("Metrics", func() {
	It("count placements, retries, durations, images by phase and waiting images", func() {
		ns := newNamespace()
		DeferCleanup(func() { deleteJobs(ns) })
		node := "metrics-" + ns
		createGPUNode(sdtesting.MakeGPUNode(node).GPU(0, 0, 24, 4).GPU(1, 0, 24, 4).Obj())
		uuid0, uuid1 := sdtesting.GPUUUID(node, 0), sdtesting.GPUUUID(node, 1)
		oomBefore := max(0, metricValue("sdfleet_image_retries_total", map[string]string{"reason": "OutOfMemory"}))

		Expect(k8s.Create(suiteCtx, sdtesting.MakeJob("m", ns).Images(1).PinnedGPU(node, uuid0).PinnedGPU(node, uuid1).Obj())).To(Succeed())
		first := eventuallyActivePods(ns, "m", 1)[0]
		firstGPU := first.Annotations[AnnotationGPUUUID]
		// The counters move just after the pods are created: the test may see a pod first.
		Eventually(metricValue).WithArguments("sdfleet_placement_decisions_total",
			map[string]string{"node": node, "UUID": firstGPU, "policy": "Pinned"}).Should(Equal(1.0))
		failPod(ns, first.Name, 4, "")
		retry := eventuallyActivePods(ns, "m", 1)[0]
		Eventually(metricValue).WithArguments("sdfleet_image_retries_total", map[string]string{"reason": "OutOfMemory"}).Should(Equal(oomBefore + 1))
		succeedPod(ns, retry.Name)
		Eventually(func() float64 {
			return metricValue("sdfleet_image_duration_seconds", map[string]string{"UUID": retry.Annotations[AnnotationGPUUUID]})
		}).Should(Equal(1.0))
		Expect(metricValue("sdfleet_job_images", map[string]string{"phase": "Succeeded"})).To(BeNumerically(">=", 1))

		Expect(k8s.Create(suiteCtx, sdtesting.MakeJob("w", ns).Images(3).CPUFallback(false).
			PinnedGPU(node, uuid0).GPUMemoryPerImage(30).Obj())).To(Succeed())
		Eventually(func() float64 { return metricValue("sdfleet_images_waiting", nil) }).Should(BeNumerically(">=", 3))
	})
})
