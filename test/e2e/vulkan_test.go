//go:build e2e

package e2e

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// vulkanOnSimulatedGPU shows the GPU path for real on a cluster without GPU hardware: the
// device plugin marks its simulated GPUs, and sdgen computes on Mesa's software Vulkan
// device, which the sdgen image carries, and records that it did.
func vulkanOnSimulatedGPU() bool {
	return Describe("Vulkan on a simulated GPU", func() {
		It("runs sdgen on the software Vulkan device and records it with the chosen GPU", func() {
			setLoads(0, 90, 90, 90)
			job := MakeJob("vulkan", newNamespace()).Images(1).Obj()
			Expect(k8s.Create(ctx, job)).To(Succeed())
			done := waitComplete(job)
			pods := imagePods(done)
			Expect(pods).To(HaveLen(1))
			r := result(pods[0])
			Expect(r.Device).To(Equal("vulkan"))
			Expect(r.SimulatedGPU).To(BeTrue())
			Expect(r.DeviceName).To(ContainSubstring("llvmpipe"))
			Expect(r.DeviceUUID).To(HavePrefix("GPU-"))
			Expect(r.GPUUUID).To(Equal(gpuUUIDs()[0]))
			expectGPUsMatch(pods)
			expectImages(done)
		})
	})
}
