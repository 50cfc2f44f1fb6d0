package controllers

import (
	"fmt"
	"slices"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	"github.com/sdfleet/sdfleet/controllers/placementrecord"
	"github.com/sdfleet/sdfleet/controllers/podcontract"
	sdtesting "github.com/sdfleet/sdfleet/controllers/testing"
)

var _ = Describe("Fan-out and placement", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })
	AfterEach(func() { deleteJobs(ns) })

	// The basic use case: 4 images on 1 to 4 equal idle GPUs.
	DescribeTable("4 images over equal idle GPUs land one per GPU, doubling up only where GPUs are fewer",
		func(policy sdfleetv1alpha1.PlacementPolicy, gpus int, want []int) {
			node := fmt.Sprintf("seed-%s", ns)
			gn := sdtesting.MakeGPUNode(node)
			for i := 0; i < gpus; i++ {
				gn.GPU(int32(i), 0, 24, 4)
			}
			createGPUNode(gn.Obj())
			Expect(k8s.Create(suiteCtx, sdtesting.MakeJob("seed", ns).Images(4).Policy(policy).Obj())).To(Succeed())

			pods := eventuallyActivePods(ns, "seed", 4)
			counts := []int{}
			for _, n := range podsPerGPU(pods) {
				counts = append(counts, n)
			}
			slices.Sort(counts)
			slices.Reverse(counts)
			Expect(counts).To(Equal(want))
			for _, p := range pods {
				Expect(p.Annotations).To(HaveKeyWithValue(AnnotationPolicy, string(policy)))
				idx := p.Annotations[AnnotationGPUIndex]
				Expect(p.Spec.Containers[0].Resources.Limits).To(HaveKeyWithValue(
					corev1.ResourceName(sdfleetv1alpha1.ResourcePrefix+idx), resource.MustParse("1")))
			}
		},
		Entry("1 GPU", sdfleetv1alpha1.PlacementLeastLoaded, 1, []int{4}),
		Entry("2 GPUs", sdfleetv1alpha1.PlacementLeastLoaded, 2, []int{2, 2}),
		Entry("3 GPUs", sdfleetv1alpha1.PlacementLeastLoaded, 3, []int{2, 1, 1}),
		Entry("4 GPUs", sdfleetv1alpha1.PlacementLeastLoaded, 4, []int{1, 1, 1, 1}),
		Entry("5 GPUs: one image each on four", sdfleetv1alpha1.PlacementLeastLoaded, 5, []int{1, 1, 1, 1}),
		Entry("3 GPUs, RoundRobin (sorted once by load, dealt in turn)", sdfleetv1alpha1.PlacementRoundRobin, 3, []int{2, 1, 1}),
		Entry("4 GPUs, RoundRobin", sdfleetv1alpha1.PlacementRoundRobin, 4, []int{1, 1, 1, 1}),
	)

	It("follows the pod contract and reports every image in the status", func() {
		node := "contract-" + ns
		createGPUNode(sdtesting.MakeGPUNode(node).GPU(0, 0, 24, 4).GPU(1, 0, 24, 4).Obj())
		job := sdtesting.MakeJob("cats", ns).Images(3).Resources("2", "4Gi").Toleration("gpu", "yes").Obj()
		Expect(k8s.Create(suiteCtx, job)).To(Succeed())
		job = getJob(ns, "cats")

		pods := eventuallyActivePods(ns, "cats", 3)
		for i, p := range pods {
			Expect(p.Name).To(Equal(fmt.Sprintf("cats-%d", i)))
			Expect(p.Labels).To(HaveKeyWithValue(LabelJob, "cats"))
			Expect(p.Labels).To(HaveKeyWithValue(LabelImageIndex, fmt.Sprint(i)))
			Expect(metav1.IsControlledBy(&p, job)).To(BeTrue(), "pod %s must be owned by its job", p.Name)
			Expect(*p.OwnerReferences[0].BlockOwnerDeletion).To(BeTrue())
			Expect(p.Annotations).To(HaveKeyWithValue(AnnotationNode, node))
			Expect(p.Annotations).To(HaveKey(AnnotationGPUUUID))
			Expect(p.Annotations).To(HaveKeyWithValue(AnnotationPolicy, "LeastLoaded"))
			Expect(p.Annotations).To(HaveKey(AnnotationGPULoad))

			term := p.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms[0]
			Expect(term.MatchExpressions[0].Key).To(Equal(corev1.LabelHostname))
			Expect(term.MatchExpressions[0].Values).To(Equal([]string{node}))
			Expect(p.Spec.Tolerations).To(ContainElement(HaveField("Key", "gpu")))
			Expect(p.Spec.RestartPolicy).To(Equal(corev1.RestartPolicyNever))

			c := p.Spec.Containers[0]
			Expect(c.Image).To(Equal("ghcr.io/sdfleet/sdgen:test"))
			Expect(c.Command).To(Equal([]string{"sdgen", "generate"}))
			args := strings.Join(c.Args, " ")
			Expect(args).To(ContainSubstring(fmt.Sprintf("--seed %d", 42+i)))
			Expect(args).To(ContainSubstring("--prompt a lighthouse at dawn"))
			Expect(args).To(ContainSubstring("--steps 20 --width 512 --height 512 --guidance 7.5 --sampler ddim"))
			Expect(args).To(ContainSubstring("--model /sdfleet/model"))
			Expect(args).To(ContainSubstring(fmt.Sprintf("--output /sdfleet/output/%s/cats/%d.png", ns, i)))
			Expect(args).To(ContainSubstring("--device auto --result-file /dev/termination-log"))
			Expect(c.TerminationMessagePolicy).To(Equal(corev1.TerminationMessageFallbackToLogsOnError))
			Expect(c.Resources.Requests).To(HaveKeyWithValue(corev1.ResourceCPU, resource.MustParse("2")))

			// Pod Security "restricted".
			Expect(*p.Spec.SecurityContext.RunAsNonRoot).To(BeTrue())
			Expect(p.Spec.SecurityContext.SeccompProfile.Type).To(Equal(corev1.SeccompProfileTypeRuntimeDefault))
			Expect(*c.SecurityContext.AllowPrivilegeEscalation).To(BeFalse())
			Expect(*c.SecurityContext.ReadOnlyRootFilesystem).To(BeTrue())
			Expect(c.SecurityContext.Capabilities.Drop).To(ConsistOf(corev1.Capability("ALL")))
			Expect(c.VolumeMounts).To(ContainElement(And(HaveField("Name", "model"), HaveField("ReadOnly", true))))
			Expect(c.VolumeMounts).To(ContainElement(And(HaveField("Name", "output"), HaveField("ReadOnly", false))))
		}
		Eventually(jobEvents).WithArguments(ns, "cats").Should(HaveKeyWithValue("Placed",
			ContainElement(MatchRegexp(`^Placed image \d on contract-t\d+ GPU \d \(GPU-contract-t\d+-\d\) at \d+% memory$`))))

		runPod(ns, "cats-0")
		succeedPod(ns, "cats-1")
		Eventually(jobStatus(ns, "cats")).Should(And(
			HaveField("Running", int32(1)), HaveField("Succeeded", int32(1)), HaveField("Pending", int32(1)),
			HaveField("CompletedIndexes", "1"), HaveField("Phase", sdfleetv1alpha1.JobPhaseRunning),
			HaveField("ObservedGeneration", job.Generation)))
		status := jobStatus(ns, "cats")()
		Expect(conditionReason(status, sdfleetv1alpha1.JobProgressing)).To(Equal("True/Running"))
		Expect(status.Conditions).To(HaveEach(HaveField("ObservedGeneration", job.Generation)))
		Expect(status.Images).To(ContainElement(And(
			HaveField("Index", int32(1)), HaveField("Phase", sdfleetv1alpha1.ImageSucceeded),
			HaveField("OutputPath", fmt.Sprintf("/srv/images/%s/cats/1.png", ns)),
			HaveField("SHA256", strings.Repeat("ab", 32)), HaveField("DurationMilliseconds", HaveValue(Equal(int64(1500)))),
			HaveField("Seed", int64(43)), HaveField("Attempts", int32(1)), HaveField("Node", node),
			HaveField("GPUMemoryLoadPercent", Not(BeNil())))))
		Expect(status.Images).To(ContainElement(And(HaveField("Index", int32(0)), HaveField("Phase", sdfleetv1alpha1.ImageRunning),
			HaveField("StartTime", Not(BeNil())))))

		succeedPod(ns, "cats-0")
		succeedPod(ns, "cats-2")
		Eventually(jobStatus(ns, "cats")).Should(And(HaveField("Succeeded", int32(3)), HaveField("CompletedIndexes", "0-2"),
			HaveField("Phase", sdfleetv1alpha1.JobPhaseComplete), HaveField("CompletionTime", Not(BeNil()))))
		Expect(conditionReason(jobStatus(ns, "cats")(), sdfleetv1alpha1.JobComplete)).To(Equal("True/Completed"))
		Eventually(jobEvents).WithArguments(ns, "cats").Should(HaveKeyWithValue("Completed",
			ContainElement(MatchRegexp(`^Completed 3/3 images in \d+s$`))))
	})

	It("sends a single image to the least-loaded GPU", func() {
		node := "loads-" + ns
		// 50%, 10%, 80%, 30% of 40 GiB.
		createGPUNode(sdtesting.MakeGPUNode(node).GPU(0, 20, 40, 4).GPU(1, 4, 40, 4).GPU(2, 32, 40, 4).GPU(3, 12, 40, 4).Obj())
		Expect(k8s.Create(suiteCtx, sdtesting.MakeJob("one", ns).Images(1).Obj())).To(Succeed())
		pods := eventuallyActivePods(ns, "one", 1)
		Expect(pods[0].Annotations).To(HaveKeyWithValue(AnnotationGPUUUID, sdtesting.GPUUUID(node, 1)))
		Expect(pods[0].Annotations).To(HaveKeyWithValue(AnnotationGPULoad, "10"))
		// The decision's candidates, for explain-placement.
		record, err := placementrecord.Decode(pods[0].Annotations[placementrecord.Annotation])
		Expect(err).NotTo(HaveOccurred())
		Expect(record.Policy).To(Equal(sdfleetv1alpha1.PlacementLeastLoaded))
		// Idle GPUs of one product are expected to finish an image at the same time: the load
		// decides between them.
		Expect(record.RankedBy).To(Equal(placementrecord.RankedByFinish))
		Expect(record.Chosen).To(And(HaveField("UUID", sdtesting.GPUUUID(node, 1)), HaveField("Node", node),
			HaveField("Index", HaveValue(Equal(int32(1)))), HaveField("LoadPercent", int32(10)),
			HaveField("ExpectedFinishSeconds", BeNumerically(">", 0)),
			HaveField("Why", ContainSubstring("the earliest expected finish"))))
		Expect(record.Others).To(ContainElement(And(HaveField("UUID", sdtesting.GPUUUID(node, 3)),
			HaveField("LoadPercent", int32(30)), HaveField("ExpectedFinishSeconds", record.Chosen.ExpectedFinishSeconds),
			HaveField("Why", MatchRegexp(`^expected to finish as early \(.*s\) but more loaded \(30% against 10%\)$`)))))
	})

	It("never chooses an unhealthy GPU while another works", func() {
		node := "sick-" + ns
		createGPUNode(sdtesting.MakeGPUNode(node).GPU(0, 0, 24, 8).GPU(1, 0, 24, 8).Unhealthy(0, "NVML query failed").Obj())
		Expect(k8s.Create(suiteCtx, sdtesting.MakeJob("avoid", ns).Images(4).Obj())).To(Succeed())
		pods := eventuallyActivePods(ns, "avoid", 4)
		Expect(podsPerGPU(pods)).To(Equal(map[string]int{sdtesting.GPUUUID(node, 1): 4}))
	})

	It("runs images on the CPU when the cluster has no GPU, and waits when fallback is off", func() {
		createGPUNode(sdtesting.MakeGPUNode("cpuonly-" + ns).Obj())
		Expect(k8s.Create(suiteCtx, sdtesting.MakeJob("cpu", ns).Images(2).Obj())).To(Succeed())
		pods := eventuallyActivePods(ns, "cpu", 2)
		for _, p := range pods {
			Expect(strings.Join(p.Spec.Containers[0].Args, " ")).To(ContainSubstring("--device cpu"))
			for name := range p.Spec.Containers[0].Resources.Limits {
				Expect(string(name)).NotTo(HavePrefix("sdfleet.io/"))
			}
			Expect(p.Spec.Affinity).To(BeNil())
			Expect(p.Annotations).To(HaveKeyWithValue(AnnotationDevice, DeviceCPU))
		}
		Eventually(jobEvents).WithArguments(ns, "cpu").Should(HaveKey("FellBackToCPU"))

		Expect(k8s.Create(suiteCtx, sdtesting.MakeJob("nocpu", ns).Images(2).CPUFallback(false).Obj())).To(Succeed())
		Eventually(func() string {
			return conditionReason(jobStatus(ns, "nocpu")(), sdfleetv1alpha1.JobProgressing)
		}).Should(Equal("True/WaitingForGPU"))
		Expect(jobPods(ns, "nocpu")).To(BeEmpty())
		Expect(jobStatus(ns, "nocpu")().Images).To(HaveEach(HaveField("Phase", sdfleetv1alpha1.ImageWaiting)))
		Eventually(jobEvents).WithArguments(ns, "nocpu").Should(HaveKey("WaitingForGPU"))

		// A GPU appearing wakes the waiting job: no polling.
		createGPUNode(sdtesting.MakeGPUNode("late-"+ns).GPU(0, 0, 24, 4).Obj())
		pods = eventuallyActivePods(ns, "nocpu", 2)
		Expect(podsPerGPU(pods)).To(Equal(map[string]int{sdtesting.GPUUUID("late-"+ns, 0): 2}))
	})

	It("keeps a large job that has no room waiting, with bounded status detail", func() {
		createGPUNode(sdtesting.MakeGPUNode("small-"+ns).GPU(0, 0, 8, 4).Obj())
		Expect(k8s.Create(suiteCtx, sdtesting.MakeJob("big", ns).Images(600).CPUFallback(false).GPUMemoryPerImage(3).Obj())).To(Succeed())
		// Two 3 GiB images fit in 8 GiB less the headroom; the other 598 wait.
		pods := eventuallyActivePods(ns, "big", 2)
		Eventually(jobStatus(ns, "big")).Should(And(HaveField("Pending", int32(600)),
			HaveField("Images", HaveLen(sdfleetv1alpha1.MaxImageDetails))))
		status := jobStatus(ns, "big")()
		Expect(status.Images).To(HaveEach(HaveField("Phase", BeElementOf(sdfleetv1alpha1.ImagePending, sdfleetv1alpha1.ImageWaiting))))
		Expect(conditionReason(status, sdfleetv1alpha1.JobProgressing)).To(Equal("True/CreatingPods"))
		Expect(metricValue("sdfleet_images_waiting", nil)).To(BeNumerically(">=", 598))
		succeedPod(ns, pods[0].Name)
		Eventually(func() []corev1.Pod { return jobPods(ns, "big") }).Should(HaveLen(3))
	})

	It("honours parallelism", func() {
		createGPUNode(sdtesting.MakeGPUNode("par-"+ns).GPU(0, 0, 80, 0).Obj())
		Expect(k8s.Create(suiteCtx, sdtesting.MakeJob("par", ns).Images(5).Parallelism(2).Obj())).To(Succeed())
		pods := eventuallyActivePods(ns, "par", 2)
		Consistently(func() []corev1.Pod { return activePods(ns, "par") }, 300*time.Millisecond).Should(HaveLen(2))
		succeedPod(ns, pods[0].Name)
		Eventually(func() []corev1.Pod { return jobPods(ns, "par") }).Should(HaveLen(3))
		Expect(activePods(ns, "par")).To(HaveLen(2))
	})

	It("uses only the pinned GPUs, and packs with Pack", func() {
		node := "pin-" + ns
		createGPUNode(sdtesting.MakeGPUNode(node).GPU(0, 0, 24, 8).GPU(1, 0, 24, 8).GPU(2, 10, 24, 8).Obj())
		Expect(k8s.Create(suiteCtx, sdtesting.MakeJob("pinned", ns).Images(3).PinnedGPU(node, sdtesting.GPUUUID(node, 0)).Obj())).To(Succeed())
		pods := eventuallyActivePods(ns, "pinned", 3)
		Expect(podsPerGPU(pods)).To(Equal(map[string]int{sdtesting.GPUUUID(node, 0): 3}))
		Expect(pods[0].Annotations).To(HaveKeyWithValue(AnnotationPolicy, "Pinned"))

		// Pack fills the most loaded GPU that still fits: GPU 0 holds 3 reserved images
		// (3 x 3 GiB = 9 GiB), GPU 2 has 10 GiB in use.
		Expect(k8s.Create(suiteCtx, sdtesting.MakeJob("pack", ns).Images(2).Policy(sdfleetv1alpha1.PlacementPack).Obj())).To(Succeed())
		pods = eventuallyActivePods(ns, "pack", 2)
		Expect(podsPerGPU(pods)).To(Equal(map[string]int{sdtesting.GPUUUID(node, 2): 2}))
		Expect(pods[0].Annotations).To(HaveKeyWithValue(AnnotationPolicy, "Pack"))
	})

	It("does not put two jobs created at the same instant on one of two idle GPUs", func() {
		node := "burst-" + ns
		// Each GPU holds one image (8 GiB each on 10 GiB GPUs).
		createGPUNode(sdtesting.MakeGPUNode(node).GPU(0, 0, 10, 4).GPU(1, 0, 10, 4).Obj())
		a := sdtesting.MakeJob("a", ns).Images(1).GPUMemoryPerImage(8).Obj()
		b := sdtesting.MakeJob("b", ns).Images(1).GPUMemoryPerImage(8).Obj()
		done := make(chan error, 2)
		go func() { done <- k8s.Create(suiteCtx, a) }()
		go func() { done <- k8s.Create(suiteCtx, b) }()
		Expect(<-done).To(Succeed())
		Expect(<-done).To(Succeed())
		podsA := eventuallyActivePods(ns, "a", 1)
		podsB := eventuallyActivePods(ns, "b", 1)
		Expect(podsA[0].Annotations[AnnotationGPUUUID]).NotTo(Equal(podsB[0].Annotations[AnnotationGPUUUID]))

		// A third image has no room: it waits, and starts when one of the two finishes.
		Expect(k8s.Create(suiteCtx, sdtesting.MakeJob("c", ns).Images(1).GPUMemoryPerImage(8).Obj())).To(Succeed())
		Eventually(func() string {
			return conditionReason(jobStatus(ns, "c")(), sdfleetv1alpha1.JobProgressing)
		}).Should(Equal("True/WaitingForGPU"))
		Expect(jobPods(ns, "c")).To(BeEmpty())
		succeedPod(ns, podsA[0].Name)
		podsC := eventuallyActivePods(ns, "c", 1)
		Expect(podsC[0].Annotations[AnnotationGPUUUID]).To(Equal(podsA[0].Annotations[AnnotationGPUUUID]))
	})

	It("writes images inside the output claim and reads the model from its claim", func() {
		createGPUNode(sdtesting.MakeGPUNode("pvc-"+ns).GPU(0, 0, 24, 4).Obj())
		for _, name := range []string{"models", "images"} {
			Expect(k8s.Create(suiteCtx, claim(ns, name))).To(Succeed())
		}
		job := sdtesting.MakeJob("vol", ns).Images(1).ModelClaim("models", "sd//v1-5/.").OutputClaim("images", "runs").Obj()
		Expect(k8s.Create(suiteCtx, job)).To(Succeed())
		pod := eventuallyActivePods(ns, "vol", 1)[0]
		args := strings.Join(pod.Spec.Containers[0].Args, " ")
		Expect(args).To(ContainSubstring("--model " + podcontract.ModelMountPath + "/sd/v1-5 "))
		Expect(args).To(ContainSubstring(fmt.Sprintf("--output %s/runs/%s/vol/0.png", podcontract.OutputMountPath, ns)))
		Expect(pod.Spec.Volumes).To(ContainElement(And(HaveField("Name", "model"),
			HaveField("PersistentVolumeClaim.ClaimName", "models"), HaveField("PersistentVolumeClaim.ReadOnly", true))))
		succeedPod(ns, pod.Name)
		Eventually(jobStatus(ns, "vol")).Should(HaveField("Images", ContainElement(
			HaveField("OutputPath", fmt.Sprintf("runs/%s/vol/0.png", ns)))))
	})
})

func claim(ns, name string) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany},
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{
				corev1.ResourceStorage: resource.MustParse("1Gi"),
			}},
		},
	}
}
