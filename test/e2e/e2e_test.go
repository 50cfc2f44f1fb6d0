//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
)

// descending sorts image counts from the most to the fewest, the shape the expected spread has
// whatever GPU the round-robin tie-break starts from.
func descending(counts []int) []int {
	out := append([]int(nil), counts...)
	sort.Sort(sort.Reverse(sort.IntSlice(out)))
	return out
}

var _ = Describe("sdfleet end to end", Ordered, ContinueOnFailure, func() {
	upgradeFromPreviousChart()
	imagesFromRegistry()
	seedUseCases()
	gpuHealth()
	restarts()
	badInput()
	gatewayClients()
	vulkanOnSimulatedGPU()
	sdxl()
	jobPolicy()
	kubectlPlugin()
	// The CPU fallback runs last: it removes the device plugin.
	cpuFallback()
})

func seedUseCases() bool {
	return Describe("The basic use cases on real components", func() {
		DescribeTable("4 images over the available GPUs land one per GPU, doubling up only where GPUs are fewer",
			func(available int, want []int) {
				// GPUs beyond the available ones are full: no image fits there.
				loads := make([]float64, gpus)
				for i := available; i < gpus; i++ {
					loads[i] = 99
				}
				setLoads(loads...)
				job := MakeJob("seed", newNamespace()).Images(4).Obj()
				Expect(k8s.Create(ctx, job)).To(Succeed())
				done := waitComplete(job)
				pods := imagePods(done)
				Expect(pods).To(HaveLen(4))
				Expect(descending(gpuIndexCounts(pods))).To(Equal(want))
				for _, p := range pods {
					Expect(p.Annotations["sdfleet.io/gpu-index"]).To(BeElementOf(availableIndexes(available)))
				}
				expectGPUsMatch(pods)
				expectImages(done)
			},
			Entry("1 GPU: [4]", 1, []int{4}),
			Entry("2 GPUs: [2,2]", 2, []int{2, 2}),
			Entry("3 GPUs: [2,1,1]", 3, []int{2, 1, 1}),
			Entry("4 GPUs: [1,1,1,1]", 4, []int{1, 1, 1, 1}),
		)

		It("puts a single image on the least-loaded GPU (50/10/80/30% → GPU 1)", func() {
			setLoads(50, 10, 80, 30)
			job := MakeJob("single", newNamespace()).Images(1).Obj()
			Expect(k8s.Create(ctx, job)).To(Succeed())
			pods := imagePods(waitComplete(job))
			Expect(pods).To(HaveLen(1))
			Expect(pods[0].Annotations["sdfleet.io/gpu-index"]).To(Equal("1"))
			Expect(result(pods[0]).GPUUUID).To(Equal(gpuUUIDs()[1]))
		})
	})
}

func availableIndexes(n int) []string {
	var out []string
	for i := 0; i < n; i++ {
		out = append(out, fmt.Sprint(i))
	}
	return out
}

func gpuHealth() bool {
	return Describe("GPU health", func() {
		It("avoids a GPU after an XID and uses it again after recovery", func() {
			setLoads(0, 0, 0, 0)
			// The XID makes the GPU unhealthy; the failing queries keep it so until the test
			// lets it recover (the agent then needs a quiet period and good probes).
			postSimulator(map[string]any{"steps": []map[string]any{{"at": "0s", "gpu": 2, "xid": 79, "nvmlError": "UNKNOWN"}}})
			By("the GPUNode and the kubelet both see GPU 2 unhealthy")
			Eventually(func(g Gomega) {
				gn := &sdfleetv1alpha1.GPUNode{}
				g.Expect(k8s.Get(ctx, client.ObjectKey{Name: node}, gn)).To(Succeed())
				g.Expect(gn.Status.GPUs[2].Health).To(Equal(sdfleetv1alpha1.GPUUnhealthy))
				g.Expect(gn.Status.GPUs[2].HealthReason).NotTo(BeEmpty())
				n := &corev1.Node{}
				g.Expect(k8s.Get(ctx, client.ObjectKey{Name: node}, n)).To(Succeed())
				q := n.Status.Allocatable[corev1.ResourceName(sdfleetv1alpha1.ResourcePrefix+"2")]
				g.Expect(q.Value()).To(BeZero())
			}).WithTimeout(time.Minute).WithPolling(500 * time.Millisecond).Should(Succeed())

			By("new images avoid it")
			job := MakeJob("avoid", newNamespace()).Images(6).Obj()
			Expect(k8s.Create(ctx, job)).To(Succeed())
			pods := imagePods(waitComplete(job))
			Expect(pods).To(HaveLen(6))
			for _, p := range pods {
				Expect(p.Annotations["sdfleet.io/gpu-index"]).NotTo(Equal("2"))
			}
			expectGPUsMatch(pods)

			By("after recovery it is used again")
			postSimulator(map[string]any{"steps": []map[string]any{{"at": "0s", "gpu": 2, "recover": true}}})
			Eventually(func(g Gomega) {
				gn := &sdfleetv1alpha1.GPUNode{}
				g.Expect(k8s.Get(ctx, client.ObjectKey{Name: node}, gn)).To(Succeed())
				g.Expect(gn.Status.GPUs[2].Health).To(Equal(sdfleetv1alpha1.GPUHealthy))
			}).WithTimeout(time.Minute).WithPolling(500 * time.Millisecond).Should(Succeed())
			again := MakeJob("recovered", newNamespace()).Images(4).Obj()
			Expect(k8s.Create(ctx, again)).To(Succeed())
			pods = imagePods(waitComplete(again))
			used := map[string]bool{}
			for _, p := range pods {
				used[p.Annotations["sdfleet.io/gpu-index"]] = true
			}
			Expect(used).To(HaveKey("2"))
		})
	})
}

func restarts() bool {
	return Describe("Restarts", func() {
		BeforeEach(func() { setLoads(0, 0, 0, 0) })

		It("completes a job across a kubelet restart: the device plugin registers again", func() {
			job := MakeJob("kubelet-restart", newNamespace()).Images(8).Obj()
			Expect(k8s.Create(ctx, job)).To(Succeed())
			waitForActivePods(job)
			run("hack/cluster/restart-kubelet.sh")
			waitComplete(job)
			Eventually(func(g Gomega) {
				n := &corev1.Node{}
				g.Expect(k8s.Get(ctx, client.ObjectKey{Name: node}, n)).To(Succeed())
				for i := 0; i < gpus; i++ {
					q := n.Status.Allocatable[corev1.ResourceName(fmt.Sprintf("%s%d", sdfleetv1alpha1.ResourcePrefix, i))]
					g.Expect(q.Value()).To(BeNumerically(">", 0))
				}
			}).WithTimeout(time.Minute).WithPolling(time.Second).Should(Succeed())
		})

		It("loses and repeats nothing when the manager is killed mid-job", func() {
			job := MakeJob("manager-kill", newNamespace()).Images(8).Obj()
			Expect(k8s.Create(ctx, job)).To(Succeed())
			waitForActivePods(job)
			run(kubectl, "delete", "pod", "-n", releaseNamespace, "-l", "app.kubernetes.io/component=manager", "--wait=false")
			done := waitComplete(job)
			Expect(done.Status.Succeeded).To(Equal(int32(8)))
			pods := &corev1.PodList{}
			Expect(k8s.List(ctx, pods, client.InNamespace(job.Namespace), client.MatchingLabels{"sdfleet.io/job": job.Name})).To(Succeed())
			perImage := map[string]int{}
			for _, p := range pods.Items {
				perImage[p.Labels["sdfleet.io/image-index"]]++
			}
			Expect(perImage).To(HaveLen(8))
			for i, n := range perImage {
				Expect(n).To(Equal(1), "image %s has %d pods", i, n)
			}
			expectImages(done)
		})
	})
}

// waitForActivePods waits until the job has pods, so that what follows happens mid-job.
func waitForActivePods(job *sdfleetv1alpha1.ImageGenerationJob) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		pods := &corev1.PodList{}
		g.Expect(k8s.List(ctx, pods, client.InNamespace(job.Namespace), client.MatchingLabels{"sdfleet.io/job": job.Name})).To(Succeed())
		g.Expect(pods.Items).NotTo(BeEmpty())
	}).WithTimeout(time.Minute).WithPolling(200 * time.Millisecond).Should(Succeed())
}

func badInput() bool {
	return Describe("Bad input", func() {
		It("is refused by the API server", func() {
			ns := newNamespace()
			manifest := filepath.Join(work, "invalid.yaml")
			Expect(os.WriteFile(manifest, []byte(fmt.Sprintf(`apiVersion: sdfleet.io/v1alpha1
kind: ImageGenerationJob
metadata: {name: invalid, namespace: %s}
spec:
  prompt: a fox
  images: 0
  model: {hostPath: {path: %s}}
  output: {hostPath: {path: %s}}
`, ns, modelDir, outDir)), 0o644)).To(Succeed())
			out, err := runErr(kubectl, "apply", "-f", manifest)
			Expect(err).To(HaveOccurred(), "kubectl accepted images: 0: %s", out)
		})

		It("fails a job whose model folder is missing, naming the path", func() {
			missing := filepath.Join(work, "models", "missing")
			job := MakeJob("missing-model", newNamespace()).Images(2).ModelPath(missing).Obj()
			Expect(k8s.Create(ctx, job)).To(Succeed())
			Eventually(func(g Gomega) {
				got := &sdfleetv1alpha1.ImageGenerationJob{}
				g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(job), got)).To(Succeed())
				c := meta.FindStatusCondition(got.Status.Conditions, sdfleetv1alpha1.JobFailed)
				g.Expect(c).NotTo(BeNil())
				g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
				g.Expect(c.Message).To(ContainSubstring("missing"))
			}).WithTimeout(3 * time.Minute).WithPolling(time.Second).Should(Succeed())
		})
	})
}

func cpuFallback() bool {
	return Describe("CPU fallback", func() {
		It("completes a job on the CPU when the cluster has no GPU at all", func() {
			run(helm, "upgrade", "sdfleet", "charts/sdfleet", "--namespace", releaseNamespace, "--reuse-values",
				"--set", "devicePlugin.enabled=false", "--wait", "--timeout", "3m")
			// The agent's GPUNode outlives it; an operator removing GPUs from a cluster deletes it.
			gn := &sdfleetv1alpha1.GPUNode{}
			gn.Name = node
			Expect(client.IgnoreNotFound(k8s.Delete(ctx, gn))).To(Succeed())
			job := MakeJob("cpu", newNamespace()).Images(2).Obj()
			Expect(k8s.Create(ctx, job)).To(Succeed())
			done := waitComplete(job)
			pods := imagePods(done)
			Expect(pods).To(HaveLen(2))
			for _, p := range pods {
				Expect(p.Annotations["sdfleet.io/device"]).To(Equal("cpu"))
				Expect(strings.Join(p.Spec.Containers[0].Args, " ")).To(ContainSubstring("--device cpu"))
				Expect(result(p).Device).To(Equal("cpu"))
			}
			expectImages(done)
		})
	})
}
