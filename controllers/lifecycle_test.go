package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-logr/logr/funcr"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	sdtesting "github.com/sdfleet/sdfleet/controllers/testing"
	"github.com/sdfleet/sdfleet/test/envtest"
)

var _ = Describe("Lifecycle", func() {
	var ns, node string
	BeforeEach(func() {
		ns = newNamespace()
		node = "life-" + ns
		createGPUNode(sdtesting.MakeGPUNode(node).GPU(0, 0, 80, 0).GPU(1, 0, 80, 0).Obj())
	})
	AfterEach(func() { deleteJobs(ns) })

	setSuspend := func(name string, suspend bool) {
		Eventually(func() error {
			job := getJob(ns, name)
			job.Spec.Suspend = ptr.To(suspend)
			return k8s.Update(suiteCtx, job)
		}).Should(Succeed())
	}

	It("suspends by deleting active pods and resumes without losing finished images", func() {
		Expect(k8s.Create(suiteCtx, sdtesting.MakeJob("pause", ns).Images(4).Obj())).To(Succeed())
		eventuallyActivePods(ns, "pause", 4)
		succeedPod(ns, "pause-0")
		runPod(ns, "pause-1")
		Eventually(jobStatus(ns, "pause")).Should(HaveField("Succeeded", int32(1)))

		setSuspend("pause", true)
		Eventually(func() []corev1.Pod { return activePods(ns, "pause") }).Should(BeEmpty())
		Eventually(jobStatus(ns, "pause")).Should(And(HaveField("Phase", sdfleetv1alpha1.JobPhaseSuspended),
			HaveField("Succeeded", int32(1)), HaveField("Running", int32(0))))
		status := jobStatus(ns, "pause")()
		Expect(conditionReason(status, sdfleetv1alpha1.JobSuspended)).To(Equal("True/Suspended"))
		Expect(conditionReason(status, sdfleetv1alpha1.JobProgressing)).To(Equal("False/Suspended"))
		Expect(status.ObservedGeneration).To(Equal(getJob(ns, "pause").Generation))

		setSuspend("pause", false)
		pods := eventuallyActivePods(ns, "pause", 3)
		Expect(podNames(pods)).NotTo(ContainElement("pause-0"), "a finished image is not generated again")
		Eventually(func() string { return conditionReason(jobStatus(ns, "pause")(), sdfleetv1alpha1.JobSuspended) }).
			Should(Equal("False/Resumed"))
		for _, p := range pods {
			succeedPod(ns, p.Name)
		}
		Eventually(jobStatus(ns, "pause")).Should(And(HaveField("Phase", sdfleetv1alpha1.JobPhaseComplete),
			HaveField("Succeeded", int32(4)), HaveField("Images", HaveEach(HaveField("Attempts", int32(1))))))
		Eventually(jobEvents).WithArguments(ns, "pause").Should(And(HaveKey("Suspended"), HaveKey("Resumed")))
	})

	It("fails the job when activeDeadlineSeconds passes and stops its pods", func() {
		Expect(k8s.Create(suiteCtx, sdtesting.MakeJob("late", ns).Images(2).ActiveDeadline(1).Obj())).To(Succeed())
		eventuallyActivePods(ns, "late", 2)
		succeedPod(ns, "late-0")
		// The deadline wakes the controller by itself: no pod or job change is needed.
		Eventually(jobStatus(ns, "late"), 15*time.Second).Should(HaveField("Phase", sdfleetv1alpha1.JobPhaseFailed))
		Expect(conditionReason(jobStatus(ns, "late")(), sdfleetv1alpha1.JobFailed)).To(Equal("True/DeadlineExceeded"))
		Eventually(func() []corev1.Pod { return activePods(ns, "late") }).Should(BeEmpty())
		Expect(jobStatus(ns, "late")().Succeeded).To(Equal(int32(1)))
	})

	It("deletes a finished job and its pods after ttlSecondsAfterFinished", func() {
		Expect(k8s.Create(suiteCtx, sdtesting.MakeJob("brief", ns).Images(1).TTL(1).Obj())).To(Succeed())
		pod := eventuallyActivePods(ns, "brief", 1)[0]
		succeedPod(ns, pod.Name)
		Eventually(jobStatus(ns, "brief")).Should(HaveField("Phase", sdfleetv1alpha1.JobPhaseComplete))
		Eventually(func() bool {
			return isNotFound(k8s.Get(suiteCtx, types.NamespacedName{Namespace: ns, Name: "brief"}, &sdfleetv1alpha1.ImageGenerationJob{}))
		}, 15*time.Second).Should(BeTrue())
		Eventually(func() []corev1.Pod { return jobPods(ns, "brief") }).Should(BeEmpty())
	})

	It("does not count time spent suspended against activeDeadlineSeconds", func() {
		const deadline = 3
		Expect(k8s.Create(suiteCtx, sdtesting.MakeJob("nap", ns).Images(1).ActiveDeadline(deadline).Obj())).To(Succeed())
		eventuallyActivePods(ns, "nap", 1)
		setSuspend("nap", true)
		Eventually(jobStatus(ns, "nap")).Should(And(HaveField("Phase", sdfleetv1alpha1.JobPhaseSuspended),
			HaveField("StartTime", BeNil())))
		// Suspended for longer than the deadline.
		Consistently(func() sdfleetv1alpha1.JobPhase { return jobStatus(ns, "nap")().Phase }, (deadline+1)*time.Second).
			Should(Equal(sdfleetv1alpha1.JobPhaseSuspended))

		resumed := metav1.Now().Rfc3339Copy()
		setSuspend("nap", false)
		pod := eventuallyActivePods(ns, "nap", 1)[0]
		Expect(pod.Name).To(HavePrefix("nap-0"))
		Eventually(func() *metav1.Time { return jobStatus(ns, "nap")().StartTime }).Should(
			Satisfy(func(t *metav1.Time) bool { return t != nil && !t.Before(&resumed) }),
			"the deadline's clock starts again on resume")
		Expect(jobStatus(ns, "nap")().Phase).NotTo(Equal(sdfleetv1alpha1.JobPhaseFailed))
	})

	It("keeps the completion event of a job that ttlSecondsAfterFinished: 0 deletes at once", func() {
		Expect(k8s.Create(suiteCtx, sdtesting.MakeJob("instant", ns).Images(1).TTL(0).Obj())).To(Succeed())
		pod := eventuallyActivePods(ns, "instant", 1)[0]
		succeedPod(ns, pod.Name)
		Eventually(func() bool {
			return isNotFound(k8s.Get(suiteCtx, types.NamespacedName{Namespace: ns, Name: "instant"}, &sdfleetv1alpha1.ImageGenerationJob{}))
		}).Should(BeTrue())
		Eventually(jobEvents).WithArguments(ns, "instant").Should(HaveKeyWithValue(ReasonCompleted,
			ContainElement(HavePrefix("Completed 1/1 images"))))
	})

	It("stops, rather than generating finished images again, when the status's index ranges do not parse", func() {
		Expect(k8s.Create(suiteCtx, sdtesting.MakeJob("garbled", ns).Images(2).Obj())).To(Succeed())
		eventuallyActivePods(ns, "garbled", 2)
		succeedPod(ns, "garbled-0")
		Eventually(jobStatus(ns, "garbled")).Should(HaveField("CompletedIndexes", "0"))
		Eventually(func() error {
			job := getJob(ns, "garbled")
			job.Status.CompletedIndexes = "0-7"
			return k8s.Status().Update(suiteCtx, job)
		}).Should(Succeed())
		// Finished pods are not kept forever; the status is what remembers that image 0 is done.
		Expect(k8s.Delete(suiteCtx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "garbled-0"}})).To(Succeed())

		Eventually(jobEvents).WithArguments(ns, "garbled").Should(HaveKeyWithValue(ReasonInvalidStatus,
			ContainElement(ContainSubstring(`status.completedIndexes "0-7": index range "0-7": index 7 is outside [0, 2)`))))
		Consistently(func() []string { return podNames(jobPods(ns, "garbled")) }, time.Second).Should(ConsistOf("garbled-1"))
		Expect(jobStatus(ns, "garbled")().CompletedIndexes).To(Equal("0-7"), "the status is left for a person to correct")
	})

	It("removes the pods of a deleted job", func() {
		Expect(k8s.Create(suiteCtx, sdtesting.MakeJob("gone", ns).Images(3).Obj())).To(Succeed())
		pods := eventuallyActivePods(ns, "gone", 3)
		job := getJob(ns, "gone")
		for _, p := range pods {
			// In a full cluster the garbage collector follows this reference.
			Expect(p.OwnerReferences).To(ConsistOf(And(HaveField("UID", job.UID), HaveField("Controller", HaveValue(BeTrue())))))
		}
		succeedPod(ns, "gone-0")
		Expect(k8s.Delete(suiteCtx, job)).To(Succeed())
		Eventually(func() []corev1.Pod { return jobPods(ns, "gone") }).Should(BeEmpty())
	})

	It("reports a missing PersistentVolumeClaim without retrying in a loop, and starts once it exists", func() {
		job := sdtesting.MakeJob("novol", ns).Images(2).ModelClaim("weights", "sd15").Obj()
		Expect(k8s.Create(suiteCtx, job)).To(Succeed())
		Eventually(jobStatus(ns, "novol")).Should(HaveField("Conditions", ContainElement(And(
			HaveField("Type", sdfleetv1alpha1.JobProgressing), HaveField("Status", BeEquivalentTo("False")),
			HaveField("Reason", ReasonMissingVolume),
			HaveField("Message", ContainSubstring(`PersistentVolumeClaim "weights" named by spec.model`))))))
		Expect(jobStatus(ns, "novol")().Phase).To(Equal(sdfleetv1alpha1.JobPhasePending))
		before := getJob(ns, "novol").ResourceVersion
		// No crash loop: nothing changes while the claim is missing.
		Consistently(func() string { return getJob(ns, "novol").ResourceVersion }, 500*time.Millisecond).Should(Equal(before))
		Expect(jobPods(ns, "novol")).To(BeEmpty())
		Expect(jobEvents(ns, "novol")[ReasonMissingVolume]).To(HaveLen(1))

		Expect(k8s.Create(suiteCtx, claim(ns, "weights"))).To(Succeed())
		eventuallyActivePods(ns, "novol", 2)
	})

	It("logs a failed lookup of the jobs that name a new claim instead of dropping it silently", func() {
		c, err := client.NewWithWatch(env.Config, client.Options{Scheme: envtest.Scheme()})
		Expect(err).NotTo(HaveOccurred())
		failing := interceptor.NewClient(c, interceptor.Funcs{
			List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
				return errors.New("the cache is not started")
			},
		})
		var logged strings.Builder
		ctx := logf.IntoContext(suiteCtx, funcr.New(func(prefix, args string) { logged.WriteString(prefix + " " + args + "\n") },
			funcr.Options{}))
		r := NewReconciler(failing, nil, Config{})
		Expect(r.jobsNamingClaim(ctx, claim(ns, "weights"))).To(BeEmpty())
		Expect(logged.String()).To(And(ContainSubstring("cannot list the ImageGenerationJobs"),
			ContainSubstring("the cache is not started"), ContainSubstring(`"persistentVolumeClaim"="weights"`)))
	})

	It("is restart-safe: a new manager mid-way through 50 images creates no duplicate and loses no image", func() {
		const images, parallelism = 50, 10
		Expect(k8s.Create(suiteCtx, sdtesting.MakeJob("restart", ns).Images(images).Parallelism(parallelism).Obj())).To(Succeed())
		pods := eventuallyActivePods(ns, "restart", parallelism)
		for i, p := range pods {
			if i < 5 {
				succeedPod(ns, p.Name)
			} else {
				runPod(ns, p.Name)
			}
		}
		Eventually(jobStatus(ns, "restart")).Should(HaveField("Succeeded", int32(5)))
		eventuallyActivePods(ns, "restart", parallelism)

		stopManager()
		// While no controller runs, two running images finish.
		running := activePods(ns, "restart")
		Expect(running).To(HaveLen(parallelism))
		for _, p := range running[:2] {
			if p.Status.Phase == corev1.PodRunning {
				succeedPod(ns, p.Name)
			}
		}
		startManager()

		// Play the kubelet until every image is done, checking the parallelism all along.
		Eventually(func(g Gomega) {
			active := activePods(ns, "restart")
			g.Expect(len(active)).To(BeNumerically("<=", parallelism))
			for _, p := range active {
				succeedPod(ns, p.Name)
			}
			g.Expect(jobStatus(ns, "restart")()).To(And(HaveField("Succeeded", int32(images)),
				HaveField("Phase", sdfleetv1alpha1.JobPhaseComplete)))
		}, 60*time.Second, 50*time.Millisecond).Should(Succeed())

		all := jobPods(ns, "restart")
		Expect(all).To(HaveLen(images), "one pod per image: no duplicate, no image generated twice")
		want := make([]string, images)
		for i := range want {
			want[i] = fmt.Sprintf("restart-%d", i)
		}
		Expect(podNames(all)).To(ConsistOf(want))
		status := jobStatus(ns, "restart")()
		Expect(status.CompletedIndexes).To(Equal("0-49"))
		Expect(status.Images).To(HaveLen(images))
		Expect(status.Images).To(HaveEach(HaveField("Attempts", int32(1))))
	})
})
