package controllers

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	"github.com/sdfleet/sdfleet/controllers/jobpolicy"
	"github.com/sdfleet/sdfleet/controllers/placement"
	sdtesting "github.com/sdfleet/sdfleet/controllers/testing"
)

// cachedGPUNode reads a GPUNode as the manager sees it.
func cachedGPUNode(name string) func() *sdfleetv1alpha1.GPUNode {
	return func() *sdfleetv1alpha1.GPUNode {
		var gn sdfleetv1alpha1.GPUNode
		if err := mgrCache.Get(suiteCtx, types.NamespacedName{Name: name}, &gn); err != nil {
			return nil
		}
		return &gn
	}
}

var _ = Describe("Jobs waiting for a GPU", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })
	AfterEach(func() { deleteJobs(ns) })

	It("start when a heartbeat with unchanged figures shows the memory of running images, which ends their reservations", func() {
		// One 32 GiB GPU (30.4 GiB usable with the 5% headroom), 10 GiB per image, a 4 s
		// heartbeat, figures sampled over 10 s.
		node := "sample-" + ns
		gn := sdtesting.MakeGPUNode(node).GPU(0, 0, 32, 8).Obj()
		gn.Status.HeartbeatIntervalSeconds = 4
		gn.Status.SampleIntervalSeconds = 10
		createGPUNode(gn)
		Expect(k8s.Create(suiteCtx, sdtesting.MakeJob("first", ns).Images(2).GPUMemoryPerImage(10).Obj())).To(Succeed())
		pods := eventuallyActivePods(ns, "first", 2)
		// Both images started 20 s ago; the agent's next figures show their 20 GiB, from a
		// sample that began before they started: the reservations still hold.
		started := time.Now().Add(-20 * time.Second).Truncate(time.Second)
		for _, p := range pods {
			setPodStatus(ns, p.Name, func(p *corev1.Pod) { sdtesting.SetRunning(p, started) })
		}
		sampled := metav1.NewTime(started.Add(5 * time.Second))
		Eventually(func() error {
			var cur sdfleetv1alpha1.GPUNode
			if err := k8s.Get(suiteCtx, types.NamespacedName{Name: node}, &cur); err != nil {
				return err
			}
			cur.Status.GPUs[0].MemoryUsedBytes = 20 * GiB
			cur.Status.LastHeartbeatTime = &sampled
			return k8s.Status().Update(suiteCtx, &cur)
		}).Should(Succeed())
		Eventually(cachedGPUNode(node)).Should(And(
			HaveField("Status.GPUs", ContainElement(HaveField("MemoryUsedBytes", 20*GiB))),
			HaveField("Status.LastHeartbeatTime", Equal(&sampled))))

		// 20 GiB used plus 20 GiB reserved: a third image has no room.
		Expect(k8s.Create(suiteCtx, sdtesting.MakeJob("second", ns).Images(1).GPUMemoryPerImage(10).Obj())).To(Succeed())
		Eventually(func() string {
			return conditionReason(jobStatus(ns, "second")(), sdfleetv1alpha1.JobProgressing)
		}).Should(Equal("True/WaitingForGPU"))
		Expect(jobPods(ns, "second")).To(BeEmpty())

		// The next heartbeat repeats the figures, from a sample taken after the images
		// started: their memory is in the 20 GiB, and the third image fits.
		updateGPUNode(node, func(*sdfleetv1alpha1.GPUNode) {})
		second := eventuallyActivePods(ns, "second", 1)
		Expect(podsPerGPU(second)).To(Equal(map[string]int{sdtesting.GPUUUID(node, 0): 1}))
	})

	It("look again within one heartbeat interval of the GPUs, without any event, and write nothing when nothing changed", func() {
		node := "full-" + ns
		gn := sdtesting.MakeGPUNode(node).GPU(0, 23, 24, 8).Obj()
		gn.Status.HeartbeatIntervalSeconds = 4
		createGPUNode(gn)
		Expect(k8s.Create(suiteCtx, sdtesting.MakeJob("full", ns).Images(3).Obj())).To(Succeed())
		Eventually(func() string {
			return conditionReason(jobStatus(ns, "full")(), sdfleetv1alpha1.JobProgressing)
		}).Should(Equal("True/WaitingForGPU"))
		before := getJob(ns, "full")

		// A reconcile of the waiting job, as the manager's would run: it asks to be run again
		// after the 4 s heartbeat, long before the node could count as silent (12 s).
		r := NewReconciler(k8s, events.NewFakeRecorder(100), Config{
			DefaultImage: "ghcr.io/sdfleet/sdgen:test",
			Policy:       jobpolicy.Policy{HostPathPrefixes: []string{"/models", "/srv"}, ImagePrefixes: []string{"ghcr.io/sdfleet/sdgen"}},
			Placement:    placement.Config{SampleInterval: time.Hour},
		})
		res, err := r.Reconcile(suiteCtx, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(before)})
		Expect(err).NotTo(HaveOccurred())
		Expect(res.RequeueAfter).To(Equal(4 * time.Second))
		Expect(getJob(ns, "full").ResourceVersion).To(Equal(before.ResourceVersion), "a waiting job's look writes nothing")
		Expect(jobPods(ns, "full")).To(BeEmpty())
	})
})
