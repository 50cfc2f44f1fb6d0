package controllers

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	sdtesting "github.com/sdfleet/sdfleet/controllers/testing"
)

// finishWithPeak plays the kubelet: the pod runs, then succeeds with a result reporting the
// model family and the peak GPU memory, as sdgen does.
func finishWithPeak(ns, name, family string, peak int64) {
	runPod(ns, name)
	setPodStatus(ns, name, func(p *corev1.Pod) {
		msg := sdtesting.SuccessMessage(p, 1500, "vulkan:0")
		msg = strings.TrimSuffix(msg, "}") + fmt.Sprintf(`,"family":%q,"peakHostMemoryBytes":%d,"peakDeviceMemoryBytes":%d}`, family, GiB, peak)
		sdtesting.SetTerminated(p, 0, msg, time.Now())
	})
}

func memoryStatus(ns, job string) func() *sdfleetv1alpha1.MemoryEstimate {
	return func() *sdfleetv1alpha1.MemoryEstimate {
		var j sdfleetv1alpha1.ImageGenerationJob
		if err := k8s.Get(suiteCtx, types.NamespacedName{Namespace: ns, Name: job}, &j); err != nil {
			return nil
		}
		return j.Status.MemoryPerImage
	}
}

func reservedBytes(p corev1.Pod) int64 {
	v, _ := strconv.ParseInt(p.Annotations[AnnotationReservedBytes], 10, 64)
	return v
}

var _ = Describe("Memory per image", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })
	AfterEach(func() { deleteJobs(ns) })

	It("starts from the family's default, learns the model's peak per pixel from finished images and shows it in the status", func() {
		node := "mem-" + ns
		createGPUNode(sdtesting.MakeGPUNode(node).GPU(0, 0, 80, 4).Obj())
		model := "/models/" + ns + "/sd_xl_base_1.0.safetensors"
		xl := sdtesting.MakeJob("xl", ns).Images(2).Parallelism(1).ModelHostPath(model).Obj()
		xl.Spec.Width, xl.Spec.Height = 1024, 1024
		Expect(k8s.Create(suiteCtx, xl)).To(Succeed())

		// Before any image finished: SDXL's default, the family guessed from the file name.
		first := eventuallyActivePods(ns, "xl", 1)[0]
		Expect(reservedBytes(first)).To(Equal(8 * GiB))
		Eventually(memoryStatus(ns, "xl")).Should(Equal(&sdfleetv1alpha1.MemoryEstimate{
			Bytes: 8 * GiB, BytesPerPixel: 8 * GiB / (1024 * 1024), Source: sdfleetv1alpha1.MemoryDefault, Family: "sdxl"}))

		// The first image peaked at 10 GiB of GPU memory: the second reserves that.
		finishWithPeak(ns, first.Name, "sdxl", 10*GiB)
		Eventually(memoryStatus(ns, "xl")).Should(Equal(&sdfleetv1alpha1.MemoryEstimate{
			Bytes: 10 * GiB, BytesPerPixel: 10 * GiB / (1024 * 1024), Source: sdfleetv1alpha1.MemoryLearned, Family: "sdxl", Images: 1}))
		Eventually(func() int64 {
			for _, p := range activePods(ns, "xl") {
				if p.Name != first.Name {
					return reservedBytes(p)
				}
			}
			return 0
		}).Should(Equal(10 * GiB))

		// Another job of the same model at a quarter of the pixels reserves a quarter.
		small := sdtesting.MakeJob("small", ns).Images(1).ModelHostPath(model).Obj()
		Expect(k8s.Create(suiteCtx, small)).To(Succeed())
		Expect(reservedBytes(eventuallyActivePods(ns, "small", 1)[0])).To(Equal(10 * GiB / 4))
		// A job that sets spec.gpuMemoryPerImage keeps it.
		fixed := sdtesting.MakeJob("fixed", ns).Images(1).ModelHostPath(model).GPUMemoryPerImage(12).Obj()
		Expect(k8s.Create(suiteCtx, fixed)).To(Succeed())
		Expect(reservedBytes(eventuallyActivePods(ns, "fixed", 1)[0])).To(Equal(12 * GiB))
		Eventually(memoryStatus(ns, "fixed")).Should(HaveField("Source", sdfleetv1alpha1.MemoryFromSpec))
	})
})
