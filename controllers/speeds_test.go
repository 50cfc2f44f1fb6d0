package controllers

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	sdtesting "github.com/sdfleet/sdfleet/controllers/testing"
)

// finishPodIn plays the kubelet: the pod runs, then succeeds with a result that says it took
// millis.
func finishPodIn(ns, name string, millis int64) {
	runPod(ns, name)
	setPodStatus(ns, name, func(p *corev1.Pod) {
		sdtesting.SetTerminated(p, 0, sdtesting.SuccessMessage(p, millis, "cuda:0"), time.Now())
	})
}

func learnedSpeeds(node string) func() []sdfleetv1alpha1.GPUSpeed {
	return func() []sdfleetv1alpha1.GPUSpeed {
		var gn sdfleetv1alpha1.GPUNode
		if err := k8s.Get(suiteCtx, types.NamespacedName{Name: node}, &gn); err != nil {
			return nil
		}
		return gn.Status.LearnedSpeeds
	}
}

var _ = Describe("Placement by expected finish", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })
	AfterEach(func() { deleteJobs(ns) })

	It("spreads images over idle GPUs before anything is measured, whatever their memory load", func() {
		// The demo's GPUs: 45/10/70/25% memory in use. Ranking by memory alone sent every
		// image to the two least used GPUs; by expected finish each GPU gets its share.
		node := "demo-" + ns
		createGPUNode(sdtesting.MakeGPUNode(node).GPU(0, 36, 80, 4).GPU(1, 8, 80, 4).GPU(2, 56, 80, 4).GPU(3, 20, 80, 4).Obj())
		Expect(k8s.Create(suiteCtx, sdtesting.MakeJob("demo", ns).Images(8).Obj())).To(Succeed())
		pods := eventuallyActivePods(ns, "demo", 8)
		Expect(podsPerGPU(pods)).To(Equal(map[string]int{
			sdtesting.GPUUUID(node, 0): 2, sdtesting.GPUUUID(node, 1): 2, sdtesting.GPUUUID(node, 2): 2, sdtesting.GPUUUID(node, 3): 2,
		}))
		for _, p := range pods {
			Expect(p.Annotations).To(HaveKeyWithValue(AnnotationWork, "5.24288"))
		}
	})

	It("learns each GPU's speed, publishes it, keeps it across a restart and sends images where they finish first", func() {
		node := "speed-" + ns
		fast, slow := sdtesting.GPUUUID(node, 0), sdtesting.GPUUUID(node, 1)
		createGPUNode(sdtesting.MakeGPUNode(node).GPU(0, 0, 80, 8).GPU(1, 0, 80, 8).Obj())
		Expect(k8s.Create(suiteCtx, sdtesting.MakeJob("warm", ns).Images(2).Obj())).To(Succeed())
		pods := eventuallyActivePods(ns, "warm", 2)
		Expect(podsPerGPU(pods)).To(Equal(map[string]int{fast: 1, slow: 1}))
		for _, p := range pods {
			// 512x512, 20 steps: 5.24288 megapixel-steps; 1 s on GPU 0, 3.5 s on GPU 1.
			millis := int64(1000)
			if p.Annotations[AnnotationGPUUUID] == slow {
				millis = 3500
			}
			finishPodIn(ns, p.Name, millis)
		}
		Eventually(learnedSpeeds(node)).Should(ConsistOf(
			sdfleetv1alpha1.GPUSpeed{UUID: fast, Index: 0, SecondsPerMegapixelStep: "0.191", Images: 1},
			sdfleetv1alpha1.GPUSpeed{UUID: slow, Index: 1, SecondsPerMegapixelStep: "0.668", Images: 1},
		))
		var gn sdfleetv1alpha1.GPUNode
		Expect(k8s.Get(suiteCtx, types.NamespacedName{Name: node}, &gn)).To(Succeed())
		Expect(gn.Status.Speeds).To(Equal("0=0.191 1=0.668"))
		// The agent's fields are untouched.
		Expect(gn.Status.GPUs).To(HaveLen(2))
		Expect(metricValue("sdfleet_gpu_seconds_per_megapixel_step", map[string]string{"node": node, "gpu": "0", "UUID": fast})).
			To(BeNumerically("~", 0.1907, 0.001))

		// GPU 0 finishes an image every second, GPU 1 every 3.5 s: the first three images
		// finish sooner on GPU 0 (1, 2, 3 s), the fourth on GPU 1 (3.5 s against 4 s).
		Expect(k8s.Create(suiteCtx, sdtesting.MakeJob("next", ns).Images(4).Obj())).To(Succeed())
		Expect(podsPerGPU(eventuallyActivePods(ns, "next", 4))).To(Equal(map[string]int{fast: 3, slow: 1}))
		for _, p := range activePods(ns, "next") {
			succeedPod(ns, p.Name)
		}
		Eventually(jobStatus(ns, "next")).Should(HaveField("Phase", sdfleetv1alpha1.JobPhaseComplete))

		// A new manager knows nothing but what the GPUNode says, and decides the same.
		stopManager()
		startManager()
		Expect(k8s.Create(suiteCtx, sdtesting.MakeJob("after", ns).Images(4).Obj())).To(Succeed())
		Expect(podsPerGPU(eventuallyActivePods(ns, "after", 4))).To(Equal(map[string]int{fast: 3, slow: 1}))
	})

	It("waits for silent GPUs instead of falling back to the CPU, and starts when they speak again with the same figures", func() {
		node := "silent-" + ns
		gn := sdtesting.MakeGPUNode(node).GPU(0, 0, 24, 4).Obj()
		gn.Status.HeartbeatIntervalSeconds = 1
		gn.Status.LastHeartbeatTime = &metav1.Time{Time: time.Now().Add(-time.Hour)}
		createGPUNode(gn)
		// CPU fallback is on (the default): the cluster has GPUs, they are only silent.
		Expect(k8s.Create(suiteCtx, sdtesting.MakeJob("quiet", ns).Images(2).Obj())).To(Succeed())
		Eventually(func() string {
			return conditionReason(jobStatus(ns, "quiet")(), sdfleetv1alpha1.JobProgressing)
		}).Should(Equal("True/WaitingForGPU"))
		Expect(jobPods(ns, "quiet")).To(BeEmpty())

		// The agent writes again, nothing but a fresh heartbeat.
		updateGPUNode(node, func(*sdfleetv1alpha1.GPUNode) {})
		pods := eventuallyActivePods(ns, "quiet", 2)
		Expect(podsPerGPU(pods)).To(Equal(map[string]int{sdtesting.GPUUUID(node, 0): 2}))
	})
})

var _ = Describe("Heartbeats on the manager's clock", func() {
	It("counts a heartbeat from an agent whose clock runs ahead as seen now, and a repeated one as old", func() {
		c := newHeartbeatClock()
		now := time.Now()
		ahead := metav1.NewTime(now.Add(time.Hour))
		gn := &sdfleetv1alpha1.GPUNode{ObjectMeta: metav1.ObjectMeta{Name: "n"}, Status: sdfleetv1alpha1.GPUNodeStatus{LastHeartbeatTime: &ahead}}
		c.observe(gn, now)
		Expect(c.seen(gn)).To(Equal(now))
		// The same heartbeat seen later is still from then: the node goes silent on time.
		c.observe(gn, now.Add(time.Minute))
		Expect(c.seen(gn)).To(Equal(now))
		behind := metav1.NewTime(now.Add(-time.Hour))
		gn.Status.LastHeartbeatTime = &behind
		c.observe(gn, now.Add(2*time.Minute))
		Expect(c.seen(gn)).To(Equal(now.Add(2 * time.Minute)))
		c.forget("n")
		Expect(c.seen(gn)).To(Equal(behind.Time))
	})
})
