package controllers

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"

	sdtesting "github.com/sdfleet/sdfleet/controllers/testing"
)

var _ = Describe("Fair sharing between jobs", func() {
	var nsA, nsB string
	BeforeEach(func() { nsA, nsB = newNamespace(), newNamespace() })
	AfterEach(func() { deleteJobs(nsA); deleteJobs(nsB) })

	It("starts a small job behind a huge one from another namespace as soon as a slot frees", func() {
		createGPUNode(sdtesting.MakeGPUNode("fair-"+nsA).GPU(0, 0, 80, 4).Obj())
		Expect(k8s.Create(suiteCtx, sdtesting.MakeJob("huge", nsA).Images(40).Obj())).To(Succeed())
		huge := eventuallyActivePods(nsA, "huge", 4)

		// The GPU's 4 slots are shared 2 and 2 now; the huge job holds all 4 and places
		// nothing until it is down to its share.
		Expect(k8s.Create(suiteCtx, sdtesting.MakeJob("small", nsB).Images(2).Obj())).To(Succeed())
		Eventually(func() string {
			return conditionReason(jobStatus(nsB, "small")(), "Progressing")
		}).Should(Equal("True/WaitingForGPU"))

		succeedPod(nsA, huge[0].Name)
		eventuallyActivePods(nsB, "small", 1)
		Eventually(jobStatus(nsA, "huge")).Should(HaveField("Images", ContainElement(
			HaveField("Message", ContainSubstring("waiting for its fair share of the GPUs: 2 of 4 image slots")))))
		Consistently(func() []corev1.Pod { return activePods(nsA, "huge") }, 300*time.Millisecond).Should(HaveLen(3))

		succeedPod(nsA, huge[1].Name)
		eventuallyActivePods(nsB, "small", 2)
		Consistently(func() []corev1.Pod { return activePods(nsA, "huge") }, 300*time.Millisecond).Should(HaveLen(2))

		// When the small job is done, its share goes back to the huge one.
		for _, p := range activePods(nsB, "small") {
			succeedPod(nsB, p.Name)
		}
		eventuallyActivePods(nsA, "huge", 4)
	})
})
