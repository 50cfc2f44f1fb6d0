package v1alpha1_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/sdfleet/sdfleet/api/v1alpha1"
)

var _ = Describe("GPUNode status", func() {
	It("takes both vendors and refuses another, naming the field", func() {
		gn := &v1.GPUNode{ObjectMeta: metav1.ObjectMeta{Name: "vendor-check"}}
		Expect(k8s.Create(ctx, gn)).To(Succeed())
		DeferCleanup(func() { Expect(k8s.Delete(ctx, gn)).To(Succeed()) })
		gpu := func(index int32, vendor v1.GPUVendor) v1.GPUStatus {
			return v1.GPUStatus{Index: index, UUID: "GPU-8fd5a2c3b1e04a6" + string(rune('0'+index)), Vendor: vendor,
				MemoryTotalBytes: 1, Health: v1.GPUHealthy, ResourceName: "sdfleet.io/gpu-0", Slots: 1}
		}
		gn.Status.GPUs = []v1.GPUStatus{gpu(0, v1.GPUVendorNVIDIA), gpu(1, v1.GPUVendorAMD)}
		Expect(k8s.Status().Update(ctx, gn)).To(Succeed())

		gn.Status.GPUs = append(gn.Status.GPUs, gpu(2, "Intel"))
		err := k8s.Status().Update(ctx, gn)
		Expect(err).To(MatchError(And(ContainSubstring("status.gpus[2].vendor"), ContainSubstring(`"NVIDIA", "AMD"`))))
	})
})
