package agent_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	"github.com/sdfleet/sdfleet/deviceplugin/agent"
	"github.com/sdfleet/sdfleet/deviceplugin/config"
	"github.com/sdfleet/sdfleet/deviceplugin/publisher"
	"github.com/sdfleet/sdfleet/deviceplugin/simulator"
)

const gib = int64(1) << 30

var nodeSeq int

// newNode creates a Node with a fresh name, as the kubelet would have.
func newNode() *corev1.Node {
	nodeSeq++
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("gpu-node-%d-%d", GinkgoParallelProcess(), nodeSeq)}}
	Expect(k8s.Create(ctx, node)).To(Succeed())
	return node
}

type running struct {
	agent *agent.Agent
	sim   *simulator.Simulator
	file  string
}

// startAgent runs an agent for node with the given scenario (empty: the node's real GPUs, with
// an empty sysfs unless extra names one) and extra flags, as the binary would: the settings go
// through config.Load. It stops the agent when the spec ends and checks that it stopped cleanly.
func startAgent(node string, scenario string, extra ...string) *running {
	r := &running{}
	args := []string{"--node-name=" + node, "--sample-interval=100ms", "--heartbeat-interval=1s",
		"--metrics-bind-address=0", "--health-probe-bind-address=0", "--simulator-control-bind-address=0", "--simulator-reload-interval=100ms",
		"--enable-kubelet-plugin=false", "--sysfs-root=" + GinkgoT().TempDir()}
	if scenario != "" {
		r.file = filepath.Join(GinkgoT().TempDir(), "scenario.yaml")
		Expect(os.WriteFile(r.file, []byte(scenario), 0o600)).To(Succeed())
		args = append(args, "--gpu-source=simulated", "--simulator-config="+r.file)
	}
	cfg, err := config.Load(append(args, extra...), func(string) string { return "" }, GinkgoWriter)
	Expect(err).NotTo(HaveOccurred())
	log := GinkgoLogr.WithName(node)
	src, sim, err := agent.OpenSource(cfg, log)
	Expect(err).NotTo(HaveOccurred())
	r.sim = sim
	r.agent, err = agent.New(cfg, k8s, src, sim, "test-version", log)
	Expect(err).NotTo(HaveOccurred())
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		defer GinkgoRecover()
		done <- r.agent.Run(runCtx)
	}()
	DeferCleanup(func() {
		cancel()
		Eventually(done).WithTimeout(10 * time.Second).Should(Receive(BeNil()))
	})
	return r
}

func gpuNode(name string) func(g Gomega) *sdfleetv1alpha1.GPUNode {
	return func(g Gomega) *sdfleetv1alpha1.GPUNode {
		var gn sdfleetv1alpha1.GPUNode
		g.Expect(k8s.Get(ctx, client.ObjectKey{Name: name}, &gn)).To(Succeed())
		return &gn
	}
}

// gpuOf returns one GPU's status from a fetched GPUNode.
func gpuOf(name string, index int) func(g Gomega) sdfleetv1alpha1.GPUStatus {
	return func(g Gomega) sdfleetv1alpha1.GPUStatus {
		gn := gpuNode(name)(g)
		g.Expect(len(gn.Status.GPUs)).To(BeNumerically(">", index))
		return gn.Status.GPUs[index]
	}
}

const twoGPUs = `
gpus:
- product: NVIDIA L40S
  memoryMiB: 46068
  memoryUsedPercent: 25
  utilizationPercent: 40
  temperatureCelsius: 51
  powerWatts: 180
- uuid: GPU-0b7d6f2e-1111-2222-3333-444455556666
`

func metricFamily(r *running, name string) *dto.MetricFamily {
	families, err := r.agent.Metrics().Registry().Gather()
	Expect(err).NotTo(HaveOccurred())
	for _, f := range families {
		if f.GetName() == name {
			return f
		}
	}
	return nil
}

// metricOfGPU picks the series of one GPU index; Gather sorts series by label values, not index.
func metricOfGPU(f *dto.MetricFamily, gpu string) *dto.Metric {
	for _, m := range f.GetMetric() {
		if labels(m)["gpu"] == gpu {
			return m
		}
	}
	Fail("no series for gpu " + gpu + " in " + f.GetName())
	return nil
}

func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

var _ = Describe("Node agent with simulated GPUs", func() {
	It("publishes a correct GPUNode owned by its Node, labels the Node and exports metrics", func() {
		node := newNode()
		r := startAgent(node.Name, twoGPUs)
		uuids := []string{r.sim.State()[0].UUID, r.sim.State()[1].UUID}

		Eventually(gpuNode(node.Name)).Should(WithTransform(func(gn *sdfleetv1alpha1.GPUNode) int32 { return gn.Status.GPUCount }, Equal(int32(2))))
		gn := gpuNode(node.Name)(Default)
		Expect(gn.OwnerReferences).To(ConsistOf(And(
			HaveField("APIVersion", "v1"), HaveField("Kind", "Node"), HaveField("Name", node.Name), HaveField("UID", node.UID))))
		st := gn.Status
		Expect(st.HealthyGPUs).To(Equal(int32(2)))
		Expect(st.Simulated).To(BeTrue())
		Expect(st.AgentVersion).To(Equal("test-version"))
		Expect(st.SampleIntervalSeconds).To(Equal(int32(1)))
		// The controller judges silence by the heartbeat interval the agent states.
		Expect(st.HeartbeatIntervalSeconds).To(BeNumerically(">=", st.SampleIntervalSeconds))
		Expect(st.LastHeartbeatTime).NotTo(BeNil())
		Expect(time.Since(st.LastHeartbeatTime.Time)).To(BeNumerically("<", time.Minute))
		l40s := int64(46068) << 20
		Expect(st.GPUs[0]).To(Equal(sdfleetv1alpha1.GPUStatus{
			Index: 0, UUID: uuids[0], Vendor: sdfleetv1alpha1.GPUVendorNVIDIA, ProductName: "NVIDIA L40S", MemoryTotalBytes: l40s, MemoryUsedBytes: l40s / 4,
			UtilizationPercent: 40, TemperatureCelsius: 51, PowerWatts: 180, Health: sdfleetv1alpha1.GPUHealthy,
			ResourceName: "sdfleet.io/gpu-0", Slots: 4,
		}))
		Expect(st.GPUs[1]).To(And(HaveField("UUID", "GPU-0b7d6f2e-1111-2222-3333-444455556666"),
			HaveField("ProductName", simulator.DefaultProduct), HaveField("MemoryTotalBytes", 80*gib),
			HaveField("MemoryUsedBytes", int64(0)), HaveField("ResourceName", "sdfleet.io/gpu-1")))
		// 25 % of the first GPU over both GPUs' memory.
		Expect(st.MemoryUsedPercent).To(Equal(int32((100*l40s/4 + (l40s+80*gib)/2) / (l40s + 80*gib))))

		managers := map[string]string{}
		for _, mf := range gn.ManagedFields {
			managers[mf.Subresource] = mf.Manager
			Expect(mf.Operation).To(Equal(metav1.ManagedFieldsOperationApply))
		}
		Expect(managers).To(Equal(map[string]string{"": publisher.DefaultFieldManager, "status": publisher.DefaultFieldManager}))

		Eventually(func(g Gomega) map[string]string {
			var n corev1.Node
			g.Expect(k8s.Get(ctx, client.ObjectKey{Name: node.Name}, &n)).To(Succeed())
			return n.Labels
		}).Should(And(HaveKeyWithValue(publisher.LabelGPUPresent, "true"), HaveKeyWithValue(publisher.LabelGPUCount, "2")))

		for _, name := range []string{"sdfleet_gpu_memory_used_bytes", "sdfleet_gpu_memory_total_bytes", "sdfleet_gpu_utilization_ratio",
			"sdfleet_gpu_temperature_celsius", "sdfleet_gpu_healthy", "sdfleet_gpu_info"} {
			f := metricFamily(r, name)
			Expect(f).NotTo(BeNil(), name)
			Expect(f.GetMetric()).To(HaveLen(2), name)
			for _, m := range f.GetMetric() {
				Expect(labels(m)).To(And(HaveKeyWithValue("node", node.Name), HaveKey("gpu"), HaveKey("UUID")), name)
			}
		}
		info := metricOfGPU(metricFamily(r, "sdfleet_gpu_info"), "0")
		Expect(labels(info)).To(And(HaveKeyWithValue("product", "NVIDIA L40S"), HaveKeyWithValue("resource", "sdfleet.io/gpu-0"), HaveKeyWithValue("UUID", uuids[0])))
		util := metricOfGPU(metricFamily(r, "sdfleet_gpu_utilization_ratio"), "0")
		Expect(util.GetGauge().GetValue()).To(BeNumerically("~", 0.4, 1e-9))
	})

	It("shows a scripted load change within 2 s, from the control endpoint and from the file", func() {
		node := newNode()
		r := startAgent(node.Name, twoGPUs)
		Eventually(gpuOf(node.Name, 1)).Should(HaveField("MemoryUsedBytes", int64(0)))

		Expect(r.sim.Inject([]simulator.Step{{GPU: ptr(1), Load: simulator.Load{MemoryUsedPercent: ptr(60.0)}}})).To(Succeed())
		Eventually(gpuOf(node.Name, 1)).WithTimeout(2 * time.Second).WithPolling(50 * time.Millisecond).
			Should(HaveField("MemoryUsedBytes", 80*gib*60/100))

		scenario := strings.Replace(twoGPUs, "  memoryUsedPercent: 25", "  memoryUsedPercent: 75", 1)
		Expect(os.WriteFile(r.file+".new", []byte(scenario), 0o600)).To(Succeed())
		Expect(os.Rename(r.file+".new", r.file)).To(Succeed())
		l40s := int64(46068) << 20
		Eventually(gpuOf(node.Name, 0)).WithTimeout(2 * time.Second).WithPolling(50 * time.Millisecond).
			Should(HaveField("MemoryUsedBytes", l40s*3/4))
	})

	It("writes at most one status update per heartbeat while the load is steady", func() {
		node := newNode()
		startAgent(node.Name, twoGPUs)
		Eventually(gpuNode(node.Name)).Should(WithTransform(func(gn *sdfleetv1alpha1.GPUNode) int32 { return gn.Status.GPUCount }, Equal(int32(2))))

		w, err := k8s.Watch(ctx, &sdfleetv1alpha1.GPUNodeList{}, client.MatchingFields{"metadata.name": node.Name})
		Expect(err).NotTo(HaveOccurred())
		defer w.Stop()
		start := time.Now()
		updates := 0
		count := func() int {
			for {
				select {
				case ev := <-w.ResultChan():
					if ev.Type == watch.Modified {
						updates++
					}
				default:
					return updates
				}
			}
		}
		// With 100 ms sampling and a 1 s heartbeat, writing every sample would be 10 per second.
		Consistently(func() bool {
			return count() <= int(time.Since(start)/time.Second)+1
		}).WithTimeout(3500 * time.Millisecond).WithPolling(20 * time.Millisecond).Should(BeTrue())
		Expect(count()).To(BeNumerically(">=", 2), "heartbeats must keep coming")
	})

	It("publishes a health change and the recovery, and ignores application Xids", func() {
		node := newNode()
		r := startAgent(node.Name, twoGPUs, "--health-recovery-quiet-period=300ms", "--health-recovery-probes=2")
		Eventually(gpuOf(node.Name, 0)).Should(HaveField("Health", sdfleetv1alpha1.GPUHealthy))

		Expect(r.sim.Inject([]simulator.Step{{GPU: ptr(0), XID: ptr(uint64(13))}})).To(Succeed())
		Eventually(func() float64 {
			f := metricFamily(r, "sdfleet_gpu_xid_errors_total")
			if f == nil {
				return 0
			}
			return f.GetMetric()[0].GetCounter().GetValue()
		}).Should(Equal(1.0))
		Expect(gpuOf(node.Name, 0)(Default).Health).To(Equal(sdfleetv1alpha1.GPUHealthy))

		Expect(r.sim.Inject([]simulator.Step{{GPU: ptr(0), XID: ptr(uint64(79))}})).To(Succeed())
		Eventually(gpuNode(node.Name)).WithTimeout(2 * time.Second).Should(And(
			HaveField("Status.HealthyGPUs", int32(1)),
			HaveField("Status.GPUs", ContainElement(And(HaveField("Index", int32(0)), HaveField("Health", sdfleetv1alpha1.GPUUnhealthy), HaveField("HealthReason", "XID 79")))),
		))
		Eventually(gpuOf(node.Name, 0)).WithTimeout(5 * time.Second).Should(And(HaveField("Health", sdfleetv1alpha1.GPUHealthy), HaveField("HealthReason", "")))

		Expect(r.sim.Inject([]simulator.Step{{GPU: ptr(1), NVMLError: "UNKNOWN"}})).To(Succeed())
		Eventually(gpuOf(node.Name, 1)).WithTimeout(2 * time.Second).Should(And(
			HaveField("Health", sdfleetv1alpha1.GPUUnhealthy), HaveField("HealthReason", ContainSubstring("NVML query failed"))))
		Expect(r.sim.Inject([]simulator.Step{{GPU: ptr(1), Recover: true}})).To(Succeed())
		Eventually(gpuOf(node.Name, 1)).WithTimeout(5 * time.Second).Should(HaveField("Health", sdfleetv1alpha1.GPUHealthy))

		transitions := metricFamily(r, "sdfleet_gpu_health_transitions_total")
		Expect(transitions).NotTo(BeNil())
		Expect(transitions.GetMetric()).To(HaveLen(4), "GPU 0 and GPU 1 each went Unhealthy and back")
	})

	It("re-creates a deleted GPUNode", func() {
		node := newNode()
		startAgent(node.Name, twoGPUs)
		first := gpuNode(node.Name)
		Eventually(first).Should(HaveField("Status.GPUCount", int32(2)))
		Expect(k8s.Delete(ctx, &sdfleetv1alpha1.GPUNode{ObjectMeta: metav1.ObjectMeta{Name: node.Name}})).To(Succeed())
		Eventually(func(g Gomega) *sdfleetv1alpha1.GPUNode {
			var gn sdfleetv1alpha1.GPUNode
			err := k8s.Get(ctx, client.ObjectKey{Name: node.Name}, &gn)
			g.Expect(apierrors.IsNotFound(err)).To(BeFalse())
			g.Expect(err).NotTo(HaveOccurred())
			return &gn
		}).WithTimeout(5 * time.Second).Should(And(HaveField("Status.GPUCount", int32(2)), HaveField("OwnerReferences", HaveLen(1))))
	})
})

var _ = Describe("Node agent without NVML", func() {
	It("publishes a GPUNode with zero GPUs and labels the Node as CPU-only", func() {
		node := newNode()
		startAgent(node.Name, "", "--enable-kubelet-plugin=true", "--plugin-dir="+GinkgoT().TempDir())
		Eventually(gpuNode(node.Name)).Should(And(
			HaveField("Status.GPUCount", int32(0)), HaveField("Status.GPUs", BeEmpty()),
			HaveField("Status.Simulated", false), HaveField("Status.LastHeartbeatTime", Not(BeNil()))))
		Eventually(func(g Gomega) map[string]string {
			var n corev1.Node
			g.Expect(k8s.Get(ctx, client.ObjectKey{Name: node.Name}, &n)).To(Succeed())
			return n.Labels
		}).Should(And(HaveKeyWithValue(publisher.LabelGPUPresent, "false"), HaveKeyWithValue(publisher.LabelGPUCount, "0")))
	})
})

func ptr[T any](v T) *T { return &v }
