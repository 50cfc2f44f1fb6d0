package controllers

import (
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

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

		// The evicted pod still exists, so its image takes the next name. Whether the deleted
		// pod's replacement reuses its freed name or takes the next one depends on when the
		// controller's cache shows the deletion; either way the image is placed again.
		Eventually(func() []string { return podNames(activePods(ns, "lost")) }).Should(ConsistOf(
			"lost-0-r1", BeElementOf("lost-1", "lost-1-r1")))
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

var _ = Describe("Failures that are not the image's", func() {
	var ns, node string
	BeforeEach(func() {
		ns = newNamespace()
		node = "notimage-" + ns
		createGPUNode(sdtesting.MakeGPUNode(node).GPU(0, 0, 120, 32).GPU(1, 0, 120, 32).Obj())
	})
	AfterEach(func() { deleteJobs(ns) })

	It("does not count a pod stopped by its deletion or a disruption as a failed attempt", func() {
		Expect(k8s.Create(suiteCtx, sdtesting.MakeJob("stopped", ns).Images(1).BackoffLimit(0).Obj())).To(Succeed())
		first := eventuallyActivePods(ns, "stopped", 1)[0]
		// The finalizer plays the kubelet, which keeps a deleted pod while its container stops.
		release := holdPod(ns, first.Name)
		runPod(ns, first.Name)
		Expect(k8s.Delete(suiteCtx, &first)).To(Succeed())
		failPod(ns, first.Name, 137, "")

		// Preempted, or evicted by a taint: the condition says so, whatever the exit code.
		second := eventuallyActivePods(ns, "stopped", 1)[0]
		Expect(second.Name).To(Equal("stopped-0-r1"))
		setPodStatus(ns, second.Name, func(p *corev1.Pod) {
			sdtesting.SetTerminated(p, podcontract.ExitDeviceError, "", time.Now())
			p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: corev1.DisruptionTarget,
				Status: corev1.ConditionTrue, Reason: "PreemptionByScheduler", LastTransitionTime: metav1.Now()})
		})

		third := eventuallyActivePods(ns, "stopped", 1)[0]
		Expect(third.Name).To(Equal("stopped-0-r2"), "with backoffLimitPerImage 0, a counted attempt would have failed the image")
		Eventually(jobStatus(ns, "stopped")).Should(HaveField("Images", ConsistOf(And(HaveField("PodName", "stopped-0-r2"),
			HaveField("Attempts", int32(1)), HaveField("FailedGPUs", BeEmpty())))))
		release()
		succeedPod(ns, third.Name)
		Eventually(jobStatus(ns, "stopped")).Should(And(HaveField("Phase", sdfleetv1alpha1.JobPhaseComplete),
			HaveField("Failed", int32(0)), HaveField("Images", ConsistOf(HaveField("Attempts", int32(1))))))
	})

	It("retries a pod that exited 0 without a valid result instead of counting the image as written", func() {
		Expect(k8s.Create(suiteCtx, sdtesting.MakeJob("noresult", ns).Images(1).Obj())).To(Succeed())
		first := eventuallyActivePods(ns, "noresult", 1)[0]
		setPodStatus(ns, first.Name, func(p *corev1.Pod) {
			sdtesting.SetTerminated(p, 0, `{"outputPath":"/sdfleet/output/0.png"}`, time.Now())
		})
		Expect(eventuallyActivePods(ns, "noresult", 1)[0].Name).To(Equal("noresult-0-r1"))
		status := jobStatus(ns, "noresult")()
		Expect(status.Succeeded).To(BeZero())
		Eventually(jobStatus(ns, "noresult")).Should(HaveField("Images", ConsistOf(And(HaveField("Attempts", int32(2)),
			HaveField("Message", ContainSubstring("exit code 0 without a valid result: result sha256"))))))
		succeedPod(ns, "noresult-0-r1")
		Eventually(jobStatus(ns, "noresult")).Should(And(HaveField("Phase", sdfleetv1alpha1.JobPhaseComplete),
			HaveField("Succeeded", int32(1)), HaveField("Images", ConsistOf(HaveField("SHA256", HaveLen(64))))))
	})

	It("reports a pod of the same name that the job does not control, and never adopts it", func() {
		foreign := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "taken-0", Namespace: ns, Labels: map[string]string{"app": "other"}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx"}}},
		}
		Expect(k8s.Create(suiteCtx, foreign)).To(Succeed())
		Expect(k8s.Create(suiteCtx, sdtesting.MakeJob("taken", ns).Images(2).Obj())).To(Succeed())

		Eventually(jobEvents).WithArguments(ns, "taken").Should(HaveKeyWithValue(ReasonPodNameTaken,
			ContainElement(ContainSubstring("Cannot create pod taken-0 for image 0"))))
		Eventually(jobStatus(ns, "taken")).Should(HaveField("Images", ContainElement(And(HaveField("Index", int32(0)),
			HaveField("Phase", sdfleetv1alpha1.ImageWaiting), HaveField("Message", ContainSubstring("pod taken-0 already exists"))))))
		Expect(podNames(activePods(ns, "taken"))).To(ConsistOf("taken-1"))
		var still corev1.Pod
		Expect(k8s.Get(suiteCtx, client.ObjectKeyFromObject(foreign), &still)).To(Succeed())
		Expect(still.OwnerReferences).To(BeEmpty())
		Expect(still.Labels).To(Equal(map[string]string{"app": "other"}))
		Expect(still.DeletionTimestamp).To(BeNil())

		Expect(k8s.Delete(suiteCtx, &still)).To(Succeed())
		job := getJob(ns, "taken")
		Eventually(func() []metav1.OwnerReference {
			var pod corev1.Pod
			if err := k8s.Get(suiteCtx, client.ObjectKeyFromObject(foreign), &pod); err != nil {
				return nil
			}
			return pod.OwnerReferences
		}).Should(ConsistOf(HaveField("UID", job.UID)))
	})

	It("caps the Replacing and Retrying events of one sync and summarises the rest", func() {
		const images = 24
		Expect(k8s.Create(suiteCtx, sdtesting.MakeJob("many", ns).Images(images).Obj())).To(Succeed())
		pods := eventuallyActivePods(ns, "many", images)
		bad := sdtesting.GPUUUID(node, 0)
		onBad := podsPerGPU(pods)[bad]
		Expect(onBad).To(BeNumerically(">", 10))
		// The sync that sees the GPU turn unhealthy must see every pod on it.
		Eventually(func() int {
			var cached corev1.PodList
			Expect(mgrCache.List(suiteCtx, &cached, client.InNamespace(ns), client.MatchingLabels{LabelJob: "many"})).To(Succeed())
			return len(cached.Items)
		}).Should(Equal(images))
		updateGPUNode(node, func(gn *sdfleetv1alpha1.GPUNode) {
			gn.Status.GPUs[0].Health = sdfleetv1alpha1.GPUUnhealthy
			gn.Status.GPUs[0].HealthReason = "XID 79"
		})
		Eventually(func() []string { return emittedEvents(ns, "many")["Replacing"] }).Should(And(HaveLen(11),
			ContainElement(fmt.Sprintf("Placing %d more images again: their GPUs turned unhealthy or went away before they ran", onBad-10))))

		// Every image fails at once while no controller runs: one sync retries them all.
		moved := eventuallyActivePods(ns, "many", images)
		updateGPUNode(node, func(gn *sdfleetv1alpha1.GPUNode) { gn.Status.GPUs[0].Health = sdfleetv1alpha1.GPUHealthy })
		stopManager()
		for _, p := range moved[:12] {
			failPod(ns, p.Name, podcontract.ExitOutOfMemory, "")
		}
		startManager()
		Eventually(func() []string { return emittedEvents(ns, "many")["Retrying"] }).Should(And(HaveLen(11),
			ContainElement("Retrying 2 more failed images")))
	})
})

// holdPod keeps a deleted pod in the API, as the kubelet does while the container stops,
// until release is called.
func holdPod(ns, name string) (release func()) {
	key := types.NamespacedName{Namespace: ns, Name: name}
	setFinalizers := func(finalizers []string) {
		Eventually(func() error {
			var pod corev1.Pod
			if err := k8s.Get(suiteCtx, key, &pod); err != nil {
				return client.IgnoreNotFound(err)
			}
			pod.Finalizers = finalizers
			return k8s.Update(suiteCtx, &pod)
		}).Should(Succeed())
	}
	setFinalizers([]string{"sdfleet.io/test-hold"})
	return func() { setFinalizers(nil) }
}
