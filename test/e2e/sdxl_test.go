//go:build e2e

package e2e

import (
	"bytes"
	"os"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
)

// sdxl runs one image of the tiny SDXL model through the whole chain: the image pod runs
// sdgen on a simulated GPU (the software Vulkan device), whose result names the family and
// its peak GPU memory, and the controller learns that figure for the model.
func sdxl() bool {
	return Describe("SDXL", func() {
		It("runs an SDXL job end to end and learns the model's memory per pixel", func() {
			setLoads(0, 90, 90, 90)
			job := MakeJob("sdxl", newNamespace()).Images(1).ModelPath(sdxlModelDir).Obj()
			Expect(k8s.Create(ctx, job)).To(Succeed())
			done := waitComplete(job)
			pods := imagePods(done)
			Expect(pods).To(HaveLen(1))
			r := result(pods[0])
			Expect(r.Family).To(Equal("sdxl"))
			Expect(r.Device).To(Equal("vulkan"))
			Expect(r.PeakDeviceMemoryBytes).To(BeNumerically(">", 0))
			Expect(r.PeakHostMemoryBytes).To(BeNumerically(">", 0))
			expectImages(done)
			data, err := os.ReadFile(pngFile(done, 0))
			Expect(err).NotTo(HaveOccurred())
			Expect(bytes.Contains(data, []byte(", Model: SDXL"))).To(BeTrue(), "the PNG's parameters name SDXL")
			Expect(done.Status.MemoryPerImage).NotTo(BeNil())
			Expect(*done.Status.MemoryPerImage).To(Equal(sdfleetv1alpha1.MemoryEstimate{
				Bytes: r.PeakDeviceMemoryBytes, BytesPerPixel: (r.PeakDeviceMemoryBytes + 64*64/2) / (64 * 64),
				Source: sdfleetv1alpha1.MemoryLearned, Family: "sdxl", Images: 1,
			}))
		})
	})
}
