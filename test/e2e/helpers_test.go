//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	"github.com/sdfleet/sdfleet/controllers/podcontract"
)

// newNamespace creates a namespace for one test and deletes it afterwards.
func newNamespace() string {
	GinkgoHelper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-"}}
	Expect(k8s.Create(ctx, ns)).To(Succeed())
	DeferCleanup(func() { Expect(client.IgnoreNotFound(k8s.Delete(ctx, ns))).To(Succeed()) })
	return ns.Name
}

// jobWrapper builds the jobs of the suite: MakeJob("a", ns).Images(4).Obj().
type jobWrapper struct {
	sdfleetv1alpha1.ImageGenerationJob
}

func MakeJob(name, ns string) *jobWrapper {
	return &jobWrapper{sdfleetv1alpha1.ImageGenerationJob{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: sdfleetv1alpha1.ImageGenerationJobSpec{
			Prompt: "a red fox in the snow",
			Images: 4,
			Width:  64, Height: 64, Steps: 2,
			Seed:   ptr.To[int64](1000),
			Model:  sdfleetv1alpha1.StorageLocation{HostPath: &sdfleetv1alpha1.HostPathLocation{Path: modelDir}},
			Output: sdfleetv1alpha1.StorageLocation{HostPath: &sdfleetv1alpha1.HostPathLocation{Path: outDir}},
		},
	}}
}

func (w *jobWrapper) Images(n int32) *jobWrapper { w.Spec.Images = n; return w }
func (w *jobWrapper) Policy(p sdfleetv1alpha1.PlacementPolicy) *jobWrapper {
	w.Spec.Placement.Policy = p
	return w
}
func (w *jobWrapper) Parallelism(n int32) *jobWrapper { w.Spec.Parallelism = ptr.To(n); return w }
func (w *jobWrapper) ModelPath(p string) *jobWrapper {
	w.Spec.Model = sdfleetv1alpha1.StorageLocation{HostPath: &sdfleetv1alpha1.HostPathLocation{Path: p}}
	return w
}
func (w *jobWrapper) Obj() *sdfleetv1alpha1.ImageGenerationJob {
	return w.ImageGenerationJob.DeepCopy()
}

// setLoads sets the memory load, in percent, of every simulated GPU through the node agent's
// simulator endpoint, and waits until the GPUNode shows it.
func setLoads(percents ...float64) {
	GinkgoHelper()
	Expect(percents).To(HaveLen(gpus))
	var steps []map[string]any
	for i, p := range percents {
		steps = append(steps, map[string]any{"at": "0s", "gpu": i, "memoryUsedPercent": p})
	}
	postSimulator(map[string]any{"steps": steps})
	Eventually(func(g Gomega) {
		gn := &sdfleetv1alpha1.GPUNode{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Name: node}, gn)).To(Succeed())
		for _, gpu := range gn.Status.GPUs {
			got := 100 * float64(gpu.MemoryUsedBytes) / float64(gpu.MemoryTotalBytes)
			g.Expect(got).To(BeNumerically("~", percents[gpu.Index], 1), "GPU %d", gpu.Index)
		}
	}).WithTimeout(30 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
}

func postSimulator(body any) {
	GinkgoHelper()
	data, err := json.Marshal(body)
	Expect(err).NotTo(HaveOccurred())
	resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/simulator", agentPort), "application/json", bytes.NewReader(data))
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	Expect(resp.StatusCode).To(Equal(http.StatusOK), "simulator answered %s", msg)
}

// gpuUUIDs maps GPU index to UUID, as the GPUNode publishes them.
func gpuUUIDs() map[int32]string {
	GinkgoHelper()
	gn := &sdfleetv1alpha1.GPUNode{}
	Expect(k8s.Get(ctx, client.ObjectKey{Name: node}, gn)).To(Succeed())
	out := map[int32]string{}
	for _, g := range gn.Status.GPUs {
		out[g.Index] = g.UUID
	}
	return out
}

// waitComplete waits for the job's Complete condition, through `kubectl wait` as a user would.
func waitComplete(job *sdfleetv1alpha1.ImageGenerationJob) *sdfleetv1alpha1.ImageGenerationJob {
	GinkgoHelper()
	run(kubectl, "wait", "--for=condition=Complete", "--timeout=5m", "-n", job.Namespace, "imagegenerationjob/"+job.Name)
	got := &sdfleetv1alpha1.ImageGenerationJob{}
	Expect(k8s.Get(ctx, client.ObjectKeyFromObject(job), got)).To(Succeed())
	Expect(meta.IsStatusConditionTrue(got.Status.Conditions, sdfleetv1alpha1.JobComplete)).To(BeTrue())
	return got
}

// imagePods are the succeeded pods of a job, one per image, keyed by image index.
func imagePods(job *sdfleetv1alpha1.ImageGenerationJob) map[int]corev1.Pod {
	GinkgoHelper()
	pods := &corev1.PodList{}
	Expect(k8s.List(ctx, pods, client.InNamespace(job.Namespace), client.MatchingLabels{"sdfleet.io/job": job.Name})).To(Succeed())
	out := map[int]corev1.Pod{}
	for _, p := range pods.Items {
		if p.Status.Phase != corev1.PodSucceeded {
			continue
		}
		i, err := strconv.Atoi(p.Labels["sdfleet.io/image-index"])
		Expect(err).NotTo(HaveOccurred())
		Expect(out).NotTo(HaveKey(i), "two succeeded pods for image %d", i)
		out[i] = p
	}
	return out
}

// gpuIndexCounts is how many images of the job ran on each GPU index, from the pods'
// placement annotations, sorted by GPU index.
func gpuIndexCounts(pods map[int]corev1.Pod) []int {
	GinkgoHelper()
	counts := map[int]int{}
	for _, p := range pods {
		i, err := strconv.Atoi(p.Annotations["sdfleet.io/gpu-index"])
		Expect(err).NotTo(HaveOccurred(), "pod %s has no GPU index annotation", p.Name)
		counts[i]++
	}
	var idx []int
	for i := range counts {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	var out []int
	for _, i := range idx {
		out = append(out, counts[i])
	}
	return out
}

// result is the JSON sdgen left in the pod's termination message.
func result(p corev1.Pod) podcontract.Result {
	GinkgoHelper()
	Expect(p.Status.ContainerStatuses).NotTo(BeEmpty())
	term := p.Status.ContainerStatuses[0].State.Terminated
	Expect(term).NotTo(BeNil(), "pod %s has not terminated", p.Name)
	var r podcontract.Result
	Expect(json.Unmarshal([]byte(term.Message), &r)).To(Succeed(), "termination message of %s: %q", p.Name, term.Message)
	return r
}

// expectGPUsMatch checks that every image ran on exactly the GPU the controller chose: the
// kubelet's SDFLEET_GPU_UUID, as sdgen recorded it, is the pod's placement annotation.
func expectGPUsMatch(pods map[int]corev1.Pod) {
	GinkgoHelper()
	for i, p := range pods {
		chosen := p.Annotations["sdfleet.io/gpu-uuid"]
		Expect(chosen).NotTo(BeEmpty(), "image %d has no GPU annotation", i)
		Expect(result(p).GPUUUID).To(Equal(chosen), "image %d ran on another GPU than the one chosen", i)
	}
}

// pngFile is where image i of the job is written on the node.
func pngFile(job *sdfleetv1alpha1.ImageGenerationJob, i int) string {
	return filepath.Join(outDir, job.Namespace, job.Name, fmt.Sprintf("%d.png", i))
}

// expectImages checks that every image of the job is a valid PNG whose embedded parameters
// match the job.
func expectImages(job *sdfleetv1alpha1.ImageGenerationJob) {
	GinkgoHelper()
	for i := 0; i < int(job.Spec.Images); i++ {
		data, err := os.ReadFile(pngFile(job, i))
		Expect(err).NotTo(HaveOccurred())
		meta := pngMetadata(data)
		Expect(meta.Prompt).To(Equal(job.Spec.Prompt))
		Expect(meta.Seed).To(Equal(*job.Spec.Seed + int64(i)))
		Expect(meta.Steps).To(Equal(int(job.Spec.Steps)))
		Expect(meta.Width).To(Equal(int(job.Spec.Width)))
		Expect(meta.Height).To(Equal(int(job.Spec.Height)))
	}
}
