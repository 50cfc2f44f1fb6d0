package controllers

import (
	"os"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	"github.com/sdfleet/sdfleet/test/envtest"
)

var _ = Describe("Sample jobs", func() {
	It("are accepted by the API server as they are", func() {
		files, err := filepath.Glob(filepath.Join(envtest.RepoRoot(), "config", "samples", "sdfleet_v1alpha1_imagegenerationjob*.yaml"))
		Expect(err).NotTo(HaveOccurred())
		Expect(len(files)).To(BeNumerically(">=", 3))
		ns := newNamespace()
		for _, file := range files {
			data, err := os.ReadFile(file)
			Expect(err).NotTo(HaveOccurred())
			var job sdfleetv1alpha1.ImageGenerationJob
			Expect(yaml.UnmarshalStrict(data, &job)).To(Succeed(), file)
			job.Namespace = ns
			Expect(k8s.Create(suiteCtx, &job, client.DryRunAll)).To(Succeed(), file)
			Expect(job.Spec.Images).To(BeNumerically(">", 0), file)
		}
	})
})
