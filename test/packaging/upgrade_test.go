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

// previousChart is the chart version whose CRDs testdata/upgrade-from-<version> holds: the one
// `helm upgrade` must upgrade from without losing a stored object. The README's release
// procedure says when to move it on.
const previousChart = "0.1.0"

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

var _ = Describe("the CRDs on an upgrade from chart "+previousChart, Ordered, func() {
	var previous, current []*unstructured.Unstructured

	BeforeAll(func() {
		dir := filepath.Join("testdata", "upgrade-from-"+previousChart)
		for _, name := range []string{"sdfleet.io_gpunodes.yaml", "sdfleet.io_imagegenerationjobs.yaml"} {
			f, err := os.Open(filepath.Join(dir, name))
			Expect(err).NotTo(HaveOccurred())
			objs, err := DecodeObjects(f)
			_ = f.Close()
			Expect(err).NotTo(HaveOccurred())
			previous = append(previous, objs...)
		}
		current = OfKind(render(GinkgoT(), nil).Objects, "CustomResourceDefinition")
		Expect(current).To(HaveLen(len(previous)))
		// Whatever happens, the suite's other specs get the current CRDs back.
		DeferCleanup(func() { replaceCRDSpecs(current) })
	})

	It("reads back every object stored under the previous CRDs, which stay usable", func() {
		ns := namespace("upgrade", nil)
		replaceCRDSpecs(previous)

		By("storing jobs and a GPUNode as the previous version accepted them")
		stored := []*sdfleetv1alpha1.ImageGenerationJob{policyJob("plain", ns)}
		// A host path the current CRD refuses (not clean) that the previous one took.
		unclean := policyJob("unclean", ns)
		unclean.Spec.Output = hostPath("/srv/sdfleet//out/")
		Eventually(func() error { return k8s.Create(suiteCtx, unclean.DeepCopy()) }).Should(Succeed())
		stored = append(stored, unclean)
		claim := policyJob("claim", ns)
		claim.Spec.Model = sdfleetv1alpha1.StorageLocation{PersistentVolumeClaim: &sdfleetv1alpha1.PVCLocation{ClaimName: "models", Path: "sd15"}}
		claim.Spec.Output = sdfleetv1alpha1.StorageLocation{PersistentVolumeClaim: &sdfleetv1alpha1.PVCLocation{ClaimName: "out"}}
		claim.Spec.Seed, claim.Spec.Parallelism = ptr.To[int64](7), ptr.To[int32](1)
		stored = append(stored, claim)
		for _, job := range []*sdfleetv1alpha1.ImageGenerationJob{stored[0], claim} {
			Expect(k8s.Create(suiteCtx, job.DeepCopy())).To(Succeed())
		}
		gn := &sdfleetv1alpha1.GPUNode{ObjectMeta: metav1.ObjectMeta{Name: "upgrade-node"}}
		Expect(k8s.Create(suiteCtx, gn)).To(Succeed())
		DeferCleanup(func() { Expect(client.IgnoreNotFound(k8s.Delete(suiteCtx, gn))).To(Succeed()) })
		before := map[string]sdfleetv1alpha1.ImageGenerationJobSpec{}
		for _, job := range stored {
			got := &sdfleetv1alpha1.ImageGenerationJob{}
			Expect(k8s.Get(suiteCtx, client.ObjectKeyFromObject(job), got)).To(Succeed())
			before[job.Name] = got.Spec
		}

		By("upgrading the CRDs to the chart's")
		replaceCRDSpecs(current)
		Eventually(func() error {
			again := unclean.DeepCopy()
			again.Name = "unclean-again"
			return k8s.Create(suiteCtx, again, client.DryRunAll)
		}).Should(MatchError(ContainSubstring("spec.output.hostPath.path")), "the current CRD is in force")

		By("reading every stored object back unchanged")
		for _, job := range stored {
			got := &sdfleetv1alpha1.ImageGenerationJob{}
			Expect(k8s.Get(suiteCtx, client.ObjectKeyFromObject(job), got)).To(Succeed())
			Expect(got.Spec).To(Equal(before[job.Name]), "job %s after the upgrade", job.Name)
		}
		Expect(k8s.Get(suiteCtx, client.ObjectKeyFromObject(gn), &sdfleetv1alpha1.GPUNode{})).To(Succeed())
		var list sdfleetv1alpha1.ImageGenerationJobList
		Expect(k8s.List(suiteCtx, &list, client.InNamespace(ns))).To(Succeed())
		Expect(list.Items).To(HaveLen(len(stored)))

		By("still suspending and deleting a job the current CRD would not accept anew")
		Eventually(func() error {
			got := &sdfleetv1alpha1.ImageGenerationJob{}
			if err := k8s.Get(suiteCtx, client.ObjectKeyFromObject(unclean), got); err != nil {
				return err
			}
			got.Spec.Suspend = ptr.To(true)
			return k8s.Update(suiteCtx, got)
		}).Should(Succeed())
		for _, job := range stored {
			Expect(k8s.Delete(suiteCtx, job.DeepCopy())).To(Succeed())
		}
	})
})
