package controllers

import (
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	"github.com/sdfleet/sdfleet/controllers/podcontract"
	sdtesting "github.com/sdfleet/sdfleet/controllers/testing"
)

var _ = Describe("Failures", func() {
	var ns, node string
	BeforeEach(func() {
		ns = newNamespace()
		node = "fail-" + ns
	})
	AfterEach(func() { deleteJobs(ns) })

	twoGPUs := func() {
		createGPUNode(sdtesting.MakeGPUNode(node).GPU(0, 0, 24, 8).GPU(1, 0, 24, 8).Obj())
	}
	gpu := func(p corev1.Pod) string { return p.Annotations[AnnotationGPUUUID] }

	DescribeTable("retries an image on the other GPU after an out-of-memory or device error, recording the GPU",
		func(exitCode int32, reason string) {
			twoGPUs()
			Expect(k8s.Create(suiteCtx, sdtesting.MakeJob("retry", ns).Images(1).Obj())).To(Succeed())
			first := eventuallyActivePods(ns, "retry", 1)[0]
			Expect(first.Name).To(Equal("retry-0"))
			failPod(ns, first.Name, exitCode, `{"error":"CUDA says no"}`)

			retry := eventuallyActivePods(ns, "retry", 1)[0]
			Expect(retry.Name).To(Equal("retry-0-r1"))
			Expect(gpu(retry)).NotTo(Equal(gpu(first)), "a retry must avoid the GPU the image failed on")
			Eventually(jobStatus(ns, "retry")).Should(HaveField("Images", ConsistOf(And(
				HaveField("Attempts", int32(2)), HaveField("FailedGPUs", ConsistOf(gpu(first))),
				HaveField("PodName", "retry-0-r1"), HaveField("Message", ContainSubstring("CUDA says no"))))))
			Eventually(jobEvents).WithArguments(ns, "retry").Should(HaveKeyWithValue("Retrying",
				ContainElement(ContainSubstring("Retrying image 0 on another GPU after "+reason+" on "+gpu(first)))))

			succeedPod(ns, retry.Name)
			Eventually(jobStatus(ns, "retry")).Should(And(HaveField("Phase", sdfleetv1alpha1.JobPhaseComplete),
				HaveField("Succeeded", int32(1))))
		},
		Entry("exit 71: out of GPU memory", int32(podcontract.ExitOutOfMemory), "OOM"),
		Entry("exit 69: device error", int32(podcontract.ExitDeviceError), "a device error"),
	)

	It("keeps a job going when one GPU fails part-way, and never returns an image to it", func() {
		twoGPUs()
		Expect(k8s.Create(suiteCtx, sdtesting.MakeJob("partial", ns).Images(4).Obj())).To(Succeed())
		pods := eventuallyActivePods(ns, "partial", 4)
		bad := gpu(pods[0])
		var failed []string
		for _, p := range pods {
			if gpu(p) == bad {
				failPod(ns, p.Name, podcontract.ExitDeviceError, "XID 79")
				failed = append(failed, p.Name)
			} else {
				succeedPod(ns, p.Name)
			}
		}
		Expect(failed).To(HaveLen(2))
		updateGPUNode(node, func(gn *sdfleetv1alpha1.GPUNode) {
			for i := range gn.Status.GPUs {
				if gn.Status.GPUs[i].UUID == bad {
					gn.Status.GPUs[i].Health = sdfleetv1alpha1.GPUUnhealthy
					gn.Status.GPUs[i].HealthReason = "XID 79"
				}
			}
		})
		retries := eventuallyActivePods(ns, "partial", 2)
		for _, p := range retries {
			Expect(p.Name).To(HaveSuffix("-r1"))
			Expect(gpu(p)).NotTo(Equal(bad))
			succeedPod(ns, p.Name)
		}
		Eventually(jobStatus(ns, "partial")).Should(And(HaveField("Succeeded", int32(4)), HaveField("Failed", int32(0)),
			HaveField("CompletedIndexes", "0-3"), HaveField("Phase", sdfleetv1alpha1.JobPhaseComplete)))
	})

	It("fails an image at once on invalid input, and completes the job with the others", func() {
		twoGPUs()
		Expect(k8s.Create(suiteCtx, sdtesting.MakeJob("invalid", ns).Images(2).Obj())).To(Succeed())
		eventuallyActivePods(ns, "invalid", 2)
		failPod(ns, "invalid-0", podcontract.ExitInvalidInput, `{"error":"--width 500 is not a multiple of 8"}`)
		succeedPod(ns, "invalid-1")
		Eventually(jobStatus(ns, "invalid")).Should(And(HaveField("Failed", int32(1)), HaveField("FailedIndexes", "0"),
			HaveField("Succeeded", int32(1)), HaveField("Phase", sdfleetv1alpha1.JobPhaseComplete)))
		status := jobStatus(ns, "invalid")()
		Expect(conditionReason(status, sdfleetv1alpha1.JobComplete)).To(Equal("True/CompletedWithFailures"))
		Expect(status.Images).To(ContainElement(And(HaveField("Index", int32(0)), HaveField("Phase", sdfleetv1alpha1.ImageFailed),
			HaveField("Attempts", int32(1)), HaveField("Message", ContainSubstring("invalid input (exit code 65)")))))
		Expect(jobPods(ns, "invalid")).To(HaveLen(2), "an invalid image is not retried")
	})

	It("fails the whole job on a model error and stops its other pods", func() {
		twoGPUs()
		Expect(k8s.Create(suiteCtx, sdtesting.MakeJob("model", ns).Images(3).Obj())).To(Succeed())
		eventuallyActivePods(ns, "model", 3)
		failPod(ns, "model-1", podcontract.ExitModelError, `{"error":"model.safetensors: no UNet tensors"}`)
		Eventually(jobStatus(ns, "model")).Should(HaveField("Phase", sdfleetv1alpha1.JobPhaseFailed))
		status := jobStatus(ns, "model")()
		Expect(conditionReason(status, sdfleetv1alpha1.JobFailed)).To(Equal("True/ModelError"))
		Expect(status.Conditions).To(ContainElement(And(HaveField("Type", sdfleetv1alpha1.JobFailed),
			HaveField("Message", ContainSubstring("no UNet tensors")))))
		Eventually(func() []corev1.Pod { return activePods(ns, "model") }).Should(BeEmpty())
		Expect(jobPods(ns, "model")).To(HaveLen(1), "no image is retried after a model error")
	})

	It("retries other failures up to backoffLimitPerImage, then fails the image; maxFailedImages fails the job", func() {
		createGPUNode(sdtesting.MakeGPUNode(node).GPU(0, 0, 24, 8).Obj())
		Expect(k8s.Create(suiteCtx, sdtesting.MakeJob("flaky", ns).Images(2).BackoffLimit(1).MaxFailedImages(0).Obj())).To(Succeed())
		eventuallyActivePods(ns, "flaky", 2)
		failPod(ns, "flaky-0", 1, "segfault")
		// One GPU only: the retry may go back to it, since no other GPU is available.
		retry := eventuallyActivePods(ns, "flaky", 2)
		Expect(retry[0].Name).To(Equal("flaky-0-r1"))
		Expect(gpu(retry[0])).To(Equal(sdtesting.GPUUUID(node, 0)))
		failPod(ns, "flaky-0-r1", 137, "")
		Eventually(jobStatus(ns, "flaky")).Should(HaveField("Phase", sdfleetv1alpha1.JobPhaseFailed))
		status := jobStatus(ns, "flaky")()
		Expect(conditionReason(status, sdfleetv1alpha1.JobFailed)).To(Equal("True/TooManyFailedImages"))
		Expect(status.FailedIndexes).To(Equal("0"))
		Expect(status.Images).To(ContainElement(And(HaveField("Index", int32(0)), HaveField("Attempts", int32(2)),
			HaveField("Message", ContainSubstring("gave up after 2 failed attempts")))))
		// The failed job stops its other image: only the two failed attempts remain.
		Eventually(func() []string { return podNames(jobPods(ns, "flaky")) }).Should(ConsistOf("flaky-0", "flaky-0-r1"))
	})

	It("places an evicted or externally deleted pod again without counting an attempt", func() {
		twoGPUs()
		Expect(k8s.Create(suiteCtx, sdtesting.MakeJob("lost", ns).Images(2).BackoffLimit(0).Obj())).To(Succeed())
		eventuallyActivePods(ns, "lost", 2)
		setPodStatus(ns, "lost-0", sdtesting.SetEvicted)
		Expect(k8s.Delete(suiteCtx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "lost-1"}})).To(Succeed())

		Eventually(func() []string { return podNames(activePods(ns, "lost")) }).Should(ConsistOf("lost-0-r1", "lost-1"))
		Eventually(jobStatus(ns, "lost")).Should(HaveField("Images", ConsistOf(
			And(HaveField("Index", int32(0)), HaveField("Attempts", int32(1)), HaveField("Phase", sdfleetv1alpha1.ImagePending)),
			And(HaveField("Index", int32(1)), HaveField("Attempts", int32(1)), HaveField("Phase", sdfleetv1alpha1.ImagePending)))))
	})

	It("moves a pod that has not started off a GPU that turned unhealthy", func() {
		twoGPUs()
		Expect(k8s.Create(suiteCtx, sdtesting.MakeJob("moved", ns).Images(1).Obj())).To(Succeed())
		first := eventuallyActivePods(ns, "moved", 1)[0]
		updateGPUNode(node, func(gn *sdfleetv1alpha1.GPUNode) {
			for i := range gn.Status.GPUs {
				if gn.Status.GPUs[i].UUID == gpu(first) {
					gn.Status.GPUs[i].Health = sdfleetv1alpha1.GPUUnhealthy
					gn.Status.GPUs[i].HealthReason = "XID 48"
				}
			}
		})
		Eventually(func() string {
			pods := activePods(ns, "moved")
			if len(pods) != 1 {
				return ""
			}
			return pods[0].Name + " " + gpu(pods[0])
		}).Should(And(HavePrefix("moved-0-r1 "), Not(HaveSuffix(gpu(first)))))
		Eventually(jobStatus(ns, "moved")).Should(HaveField("Images", ConsistOf(HaveField("Attempts", int32(1)))))
		Eventually(jobEvents).WithArguments(ns, "moved").Should(HaveKeyWithValue("Replacing",
			ContainElement(ContainSubstring("XID 48"))))
	})

	It("retries a Go runtime crash (exit 2) and takes the log tail when the binary died before writing its result", func() {
		createGPUNode(sdtesting.MakeGPUNode(node).GPU(0, 0, 24, 8).Obj())
		Expect(k8s.Create(suiteCtx, sdtesting.MakeJob("crash", ns).Images(1).BackoffLimit(1).Obj())).To(Succeed())
		eventuallyActivePods(ns, "crash", 1)
		crashLog := "fatal error: runtime: out of memory\n" + strings.Repeat("x", 2000)
		failPod(ns, "crash-0", 2, crashLog)
		Expect(eventuallyActivePods(ns, "crash", 1)[0].Name).To(Equal("crash-0-r1"), "a crash is not a verdict on the image")
		failPod(ns, "crash-0-r1", 2, crashLog)
		Eventually(jobStatus(ns, "crash")).Should(HaveField("Images", ConsistOf(And(
			HaveField("Phase", sdfleetv1alpha1.ImageFailed), HaveField("Attempts", int32(2)),
			HaveField("Message", And(ContainSubstring("gave up after 2 failed attempts"),
				ContainSubstring("runtime: out of memory"), HaveLen(podcontract.MaxMessageLength)))))))
	})
})
