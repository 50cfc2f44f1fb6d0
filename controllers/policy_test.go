package controllers

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	sdtesting "github.com/sdfleet/sdfleet/controllers/testing"
)

// The suite's manager allows the host folders /models and /srv and the repository
// ghcr.io/sdfleet/sdgen. No admission policy runs on this API server, as on a cluster where the
// chart's policy was installed after the jobs were stored: the controller is the last layer.
var _ = Describe("The job policy", func() {
	var ns string
	BeforeEach(func() {
		ns = newNamespace()
		createGPUNode(sdtesting.MakeGPUNode("policy-"+ns).GPU(0, 0, 80, 0).Obj())
	})
	AfterEach(func() { deleteJobs(ns) })

	DescribeTable("fails a job it refuses without creating a pod, naming the field",
		func(name string, change func(*sdtesting.JobWrapper) *sdtesting.JobWrapper, field, value string) {
			Expect(k8s.Create(suiteCtx, change(sdtesting.MakeJob(name, ns)).Obj())).To(Succeed())
			Eventually(jobStatus(ns, name)).Should(HaveField("Phase", sdfleetv1alpha1.JobPhaseFailed))
			status := jobStatus(ns, name)()
			Expect(conditionReason(status, sdfleetv1alpha1.JobFailed)).To(Equal("True/" + ReasonNotAllowed))
			for _, c := range status.Conditions {
				if c.Type == sdfleetv1alpha1.JobFailed {
					Expect(c.Message).To(And(ContainSubstring(field), ContainSubstring(value)))
				}
			}
			Expect(jobPods(ns, name)).To(BeEmpty(), "no pod of a refused job is ever created")
			Eventually(jobEvents).WithArguments(ns, name).Should(HaveKeyWithValue(ReasonNotAllowed,
				ContainElement(ContainSubstring(field))))
		},
		Entry("the host's /etc as output", "etc", func(w *sdtesting.JobWrapper) *sdtesting.JobWrapper { return w.OutputHostPath("/etc") },
			"spec.output.hostPath.path", "/etc"),
		Entry("a model whose mounted folder is the kubelet's", "kubelet",
			func(w *sdtesting.JobWrapper) *sdtesting.JobWrapper { return w.ModelHostPath("/var/lib/kubelet/x") },
			"spec.model.hostPath.path", "/var/lib/kubelet"),
		Entry("an image from another registry", "busybox",
			func(w *sdtesting.JobWrapper) *sdtesting.JobWrapper { return w.Image("docker.io/library/busybox:1") },
			"spec.image", "docker.io/library/busybox:1"),
	)

	It("runs a job within the policy, its image by digest", func() {
		Expect(k8s.Create(suiteCtx, sdtesting.MakeJob("ok", ns).Images(1).
			Image("ghcr.io/sdfleet/sdgen@sha256:0123456789abcdef").Obj())).To(Succeed())
		pods := eventuallyActivePods(ns, "ok", 1)
		Expect(pods[0].Spec.Containers[0].Image).To(Equal("ghcr.io/sdfleet/sdgen@sha256:0123456789abcdef"))
		Expect(pods[0].Spec.Volumes[0].HostPath.Path).To(Equal("/models"))
	})
})
