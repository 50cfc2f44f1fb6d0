package packaging

import (
	"os"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
)

// previousChart is the last released chart, kept packaged (`helm package`) in
// test/testdata/charts: `helm upgrade` from it must not lose or change a stored object. The
// end-to-end suite upgrades a running release from the same archive; the README's release
// procedure says when both move on.
const previousChart = "0.1.0"

var previousChartArchive = filepath.Join("..", "testdata", "charts", "sdfleet-"+previousChart+".tgz")

// crdsBeforeCleanHostPaths are the CRDs from before hostPath paths had to be clean: objects
// stored then must stay readable, suspendable and deletable under a rule that refuses them anew.
const crdsBeforeCleanHostPaths = "testdata/crds-before-clean-host-paths"

// replaceCRDSpecs sets the spec of each CRD on the API server to that of crds, as `helm upgrade`
// does with the chart's templates/crds.yaml.
func replaceCRDSpecs(crds []*unstructured.Unstructured) {
	GinkgoHelper()
	for _, u := range crds {
		want := &apiextensionsv1.CustomResourceDefinition{}
		Expect(runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, want)).To(Succeed())
		Eventually(func() error {
			crd := &apiextensionsv1.CustomResourceDefinition{}
			if err := k8s.Get(suiteCtx, client.ObjectKey{Name: want.Name}, crd); err != nil {
				return err
			}
			crd.Spec = want.Spec
			return k8s.Update(suiteCtx, crd)
		}).Should(Succeed(), "update CRD %s", want.Name)
	}
}

// crdsOfFiles are the CRDs in the YAML files of dir.
func crdsOfFiles(dir string) []*unstructured.Unstructured {
	GinkgoHelper()
	var out []*unstructured.Unstructured
	for _, name := range []string{"sdfleet.io_gpunodes.yaml", "sdfleet.io_imagegenerationjobs.yaml"} {
		f, err := os.Open(filepath.Join(dir, name))
		Expect(err).NotTo(HaveOccurred())
		objs, err := DecodeObjects(f)
		_ = f.Close()
		Expect(err).NotTo(HaveOccurred())
		out = append(out, objs...)
	}
	return out
}

// readBack reads the stored jobs back and checks that their specs are what they were.
func readBack(ns string, before map[string]sdfleetv1alpha1.ImageGenerationJobSpec) {
	GinkgoHelper()
	for name, spec := range before {
		got := &sdfleetv1alpha1.ImageGenerationJob{}
		Expect(k8s.Get(suiteCtx, client.ObjectKey{Namespace: ns, Name: name}, got)).To(Succeed())
		Expect(got.Spec).To(Equal(spec), "job %s after the upgrade", name)
	}
	var list sdfleetv1alpha1.ImageGenerationJobList
	Expect(k8s.List(suiteCtx, &list, client.InNamespace(ns))).To(Succeed())
	Expect(list.Items).To(HaveLen(len(before)))
}

// storedSpecs are the specs of the jobs as the API server stored them, by name.
func storedSpecs(jobs []*sdfleetv1alpha1.ImageGenerationJob) map[string]sdfleetv1alpha1.ImageGenerationJobSpec {
	GinkgoHelper()
	out := map[string]sdfleetv1alpha1.ImageGenerationJobSpec{}
	for _, job := range jobs {
		got := &sdfleetv1alpha1.ImageGenerationJob{}
		Expect(k8s.Get(suiteCtx, client.ObjectKeyFromObject(job), got)).To(Succeed())
		out[job.Name] = got.Spec
	}
	return out
}

var _ = Describe("the CRDs on an upgrade", Ordered, func() {
	var current []*unstructured.Unstructured

	BeforeAll(func() {
		current = OfKind(render(GinkgoT(), nil).Objects, "CustomResourceDefinition")
		// Whatever happens, the suite's other specs get the current CRDs back.
		DeferCleanup(func() { replaceCRDSpecs(current) })
	})

	It("reads back every object stored under chart "+previousChart+"'s CRDs, from its packaged archive", func() {
		rendered, err := RenderChart(previousChartArchive, Release{Name: releaseName, Namespace: releaseNamespace}, nil)
		Expect(err).NotTo(HaveOccurred())
		Expect(rendered.Objects).NotTo(BeEmpty())
		previous := OfKind(rendered.Objects, "CustomResourceDefinition")
		Expect(previous).To(HaveLen(len(current)))
		ns := namespace("upgrade", nil)
		replaceCRDSpecs(previous)

		By("storing jobs and a GPUNode as the previous release accepted them")
		plain := policyJob("plain", ns)
		claim := policyJob("claim", ns)
		claim.Spec.Model = sdfleetv1alpha1.StorageLocation{PersistentVolumeClaim: &sdfleetv1alpha1.PVCLocation{ClaimName: "models", Path: "sd15"}}
		claim.Spec.Output = sdfleetv1alpha1.StorageLocation{PersistentVolumeClaim: &sdfleetv1alpha1.PVCLocation{ClaimName: "out"}}
		claim.Spec.Seed, claim.Spec.Parallelism = ptr.To[int64](7), ptr.To[int32](1)
		stored := []*sdfleetv1alpha1.ImageGenerationJob{plain, claim}
		for _, job := range stored {
			Eventually(func() error { return k8s.Create(suiteCtx, job.DeepCopy()) }).Should(Succeed())
		}
		gn := &sdfleetv1alpha1.GPUNode{ObjectMeta: metav1.ObjectMeta{Name: "upgrade-node"}}
		Expect(k8s.Create(suiteCtx, gn)).To(Succeed())
		DeferCleanup(func() { Expect(client.IgnoreNotFound(k8s.Delete(suiteCtx, gn))).To(Succeed()) })
		before := storedSpecs(stored)

		By("upgrading the CRDs to the chart's and reading every stored object back unchanged")
		replaceCRDSpecs(current)
		readBack(ns, before)
		Expect(k8s.Get(suiteCtx, client.ObjectKeyFromObject(gn), &sdfleetv1alpha1.GPUNode{})).To(Succeed())
		for _, job := range stored {
			Expect(k8s.Delete(suiteCtx, job.DeepCopy())).To(Succeed())
		}
	})

	It("leaves a job stored before a rule refused it readable, suspendable and deletable", func() {
		ns := namespace("ratchet", nil)
		replaceCRDSpecs(crdsOfFiles(crdsBeforeCleanHostPaths))

		By("storing a job with a host path that is not clean, which the CRDs then accepted")
		unclean := policyJob("unclean", ns)
		unclean.Spec.Output = hostPath("/srv/sdfleet//out/")
		Eventually(func() error { return k8s.Create(suiteCtx, unclean.DeepCopy()) }).Should(Succeed())
		before := storedSpecs([]*sdfleetv1alpha1.ImageGenerationJob{unclean})

		By("upgrading the CRDs to the chart's, which refuse such a job anew")
		replaceCRDSpecs(current)
		Eventually(func() error {
			again := unclean.DeepCopy()
			again.Name = "unclean-again"
			return k8s.Create(suiteCtx, again, client.DryRunAll)
		}).Should(MatchError(ContainSubstring("spec.output.hostPath.path")), "the current CRD is in force")
		readBack(ns, before)

		By("still suspending and deleting it")
		Eventually(func() error {
			got := &sdfleetv1alpha1.ImageGenerationJob{}
			if err := k8s.Get(suiteCtx, client.ObjectKeyFromObject(unclean), got); err != nil {
				return err
			}
			got.Spec.Suspend = ptr.To(true)
			return k8s.Update(suiteCtx, got)
		}).Should(Succeed())
		Expect(k8s.Delete(suiteCtx, unclean.DeepCopy())).To(Succeed())
	})
})
