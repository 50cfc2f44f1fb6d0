package v1alpha1_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	"github.com/sdfleet/sdfleet/test/envtest"
)

// jobWrapper builds ImageGenerationJobs for the tests: MakeJob("a").Images(4).Obj().
type jobWrapper struct{ v1.ImageGenerationJob }

func MakeJob(name string) *jobWrapper {
	return &jobWrapper{v1.ImageGenerationJob{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1.ImageGenerationJobSpec{
			Prompt: "a red fox",
			Model:  v1.StorageLocation{PersistentVolumeClaim: &v1.PVCLocation{ClaimName: "models", Path: "sd15"}},
			Output: v1.StorageLocation{PersistentVolumeClaim: &v1.PVCLocation{ClaimName: "out"}},
		},
	}}
}

func (w *jobWrapper) Namespace(ns string) *jobWrapper { w.ObjectMeta.Namespace = ns; return w }
func (w *jobWrapper) Images(n int32) *jobWrapper      { w.Spec.Images = n; return w }
func (w *jobWrapper) Obj() *v1.ImageGenerationJob     { return w.ImageGenerationJob.DeepCopy() }
func (w *jobWrapper) Mutate(f func(*v1.ImageGenerationJobSpec)) *jobWrapper {
	f(&w.Spec)
	return w
}

// newNamespace creates a namespace of its own for one test.
func newNamespace() string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "api-"}}
	Expect(k8s.Create(ctx, ns)).To(Succeed())
	DeferCleanup(func() { Expect(client.IgnoreNotFound(k8s.Delete(ctx, ns))).To(Succeed()) })
	return ns.Name
}

var _ = Describe("CRDs", func() {
	It("are installed and established", func() {
		for _, name := range []string{"imagegenerationjobs.sdfleet.io", "gpunodes.sdfleet.io"} {
			crd := &apiextensionsv1.CustomResourceDefinition{}
			Expect(k8s.Get(ctx, client.ObjectKey{Name: name}, crd)).To(Succeed())
			established := false
			for _, c := range crd.Status.Conditions {
				if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
					established = true
				}
			}
			Expect(established).To(BeTrue(), "CRD %s is not established", name)
		}
	})

	It("describe every field, so that kubectl explain documents it", func() {
		for _, name := range []string{"imagegenerationjobs.sdfleet.io", "gpunodes.sdfleet.io"} {
			crd := &apiextensionsv1.CustomResourceDefinition{}
			Expect(k8s.Get(ctx, client.ObjectKey{Name: name}, crd)).To(Succeed())
			var missing []string
			collectUndescribed("", crd.Spec.Versions[0].Schema.OpenAPIV3Schema, &missing)
			Expect(missing).To(BeEmpty(), "fields of %s without a description", name)
		}
	})
})

// collectUndescribed appends the path of every property below s that has no description.
func collectUndescribed(path string, s *apiextensionsv1.JSONSchemaProps, missing *[]string) {
	if s == nil {
		return
	}
	for name, prop := range s.Properties {
		p := path + "." + name
		if prop.Description == "" && path != "" { // the root's apiVersion/kind/metadata are the API server's
			*missing = append(*missing, p)
		}
		collectUndescribed(p, &prop, missing)
	}
	if s.Items != nil {
		collectUndescribed(path+"[]", s.Items.Schema, missing)
	}
}

var _ = Describe("Samples", func() {
	It("are all accepted by the API server", func() {
		ns := newNamespace()
		files, err := filepath.Glob(filepath.Join(envtest.RepoRoot(), "config", "samples", "*.yaml"))
		Expect(err).NotTo(HaveOccurred())
		Expect(files).NotTo(BeEmpty())
		applied := 0
		for _, file := range files {
			if filepath.Base(file) == "kustomization.yaml" {
				continue // lists the samples; it is not one
			}
			data, err := os.ReadFile(file)
			Expect(err).NotTo(HaveOccurred())
			dec := yaml.NewYAMLOrJSONDecoder(strings.NewReader(string(data)), 4096)
			for {
				obj := &unstructured.Unstructured{}
				if err := dec.Decode(&obj.Object); err != nil {
					Expect(err.Error()).To(Equal("EOF"), "decode %s", file)
					break
				}
				if len(obj.Object) == 0 {
					continue
				}
				Expect(obj.GetAPIVersion()).To(HavePrefix("sdfleet.io/"), "%s holds a %s, not an sdfleet object", file, obj.GetKind())
				if obj.GetKind() != "GPUNode" {
					obj.SetNamespace(ns)
				}
				Expect(k8s.Create(ctx, obj, client.DryRunAll)).To(Succeed(), "sample %s (%s %s)", file, obj.GetKind(), obj.GetName())
				applied++
			}
		}
		Expect(applied).To(BeNumerically(">=", 1))
	})
})

var _ = Describe("ImageGenerationJob defaults", func() {
	It("fills images, size, steps, guidance, sampler, placement and retries", func() {
		ns := newNamespace()
		job := MakeJob("defaults").Namespace(ns).Obj()
		Expect(k8s.Create(ctx, job)).To(Succeed())
		got := &v1.ImageGenerationJob{}
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(job), got)).To(Succeed())
		Expect(got.Spec.Images).To(Equal(int32(4)))
		Expect(got.Spec.Width).To(Equal(int32(512)))
		Expect(got.Spec.Height).To(Equal(int32(512)))
		Expect(got.Spec.Steps).To(Equal(int32(20)))
		Expect(got.Spec.GuidanceScale).To(Equal("7.5"))
		Expect(got.Spec.Sampler).To(Equal(v1.SamplerDDIM))
		Expect(got.Spec.Placement.Policy).To(Equal(v1.PlacementLeastLoaded))
		Expect(got.Spec.Placement.AllowCPUFallback).To(Equal(ptr.To(true)))
		Expect(got.Spec.BackoffLimitPerImage).To(Equal(ptr.To[int32](2)))
		Expect(got.Spec.Suspend).To(Equal(ptr.To(false)))
	})
})

// invalidCase is a spec the API server must refuse, and the words its message must contain.
type invalidCase struct {
	mutate func(*v1.ImageGenerationJobSpec)
	want   []string
	// set writes raw values under spec after mutate, for values the typed client would omit
	// (a zero with omitempty) but a user's YAML sends.
	set map[string]any
}

var _ = Describe("ImageGenerationJob validation", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	hostPath := func(p string) v1.StorageLocation {
		return v1.StorageLocation{HostPath: &v1.HostPathLocation{Path: p}}
	}
	pvc := func(claim, p string) v1.StorageLocation {
		return v1.StorageLocation{PersistentVolumeClaim: &v1.PVCLocation{ClaimName: claim, Path: p}}
	}
	pinned := []v1.GPUSelector{{Node: "node-a", Index: ptr.To[int32](0)}}

	DescribeTable("refuses an invalid spec with a message that names the field",
		func(c invalidCase) {
			job := MakeJob("bad").Namespace(ns).Mutate(c.mutate).Obj()
			raw, err := runtime.DefaultUnstructuredConverter.ToUnstructured(job)
			Expect(err).NotTo(HaveOccurred())
			obj := &unstructured.Unstructured{Object: raw}
			obj.SetGroupVersionKind(v1.GroupVersion.WithKind("ImageGenerationJob"))
			for path, value := range c.set {
				Expect(unstructured.SetNestedField(obj.Object, value, append([]string{"spec"}, strings.Split(path, ".")...)...)).To(Succeed())
			}
			err = k8s.Create(ctx, obj)
			Expect(err).To(HaveOccurred(), "the API server accepted %+v", obj.Object["spec"])
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "expected an Invalid error, got %v", err)
			for _, w := range c.want {
				Expect(err.Error()).To(ContainSubstring(w))
			}
		},
		Entry("zero images", invalidCase{func(*v1.ImageGenerationJobSpec) {}, []string{"spec.images", "should be greater than or equal to 1"}, map[string]any{"images": int64(0)}}),
		Entry("10001 images", invalidCase{func(s *v1.ImageGenerationJobSpec) { s.Images = 10001 }, []string{"spec.images", "10000"}, nil}),
		Entry("width 500", invalidCase{func(s *v1.ImageGenerationJobSpec) { s.Width = 500 }, []string{"spec.width", "multiple of 8"}, nil}),
		Entry("width 32", invalidCase{func(s *v1.ImageGenerationJobSpec) { s.Width = 32 }, []string{"spec.width"}, nil}),
		Entry("height 4096", invalidCase{func(s *v1.ImageGenerationJobSpec) { s.Height = 4096 }, []string{"spec.height"}, nil}),
		Entry("height 100", invalidCase{func(s *v1.ImageGenerationJobSpec) { s.Height = 100 }, []string{"spec.height", "multiple of 8"}, nil}),
		Entry("steps 0", invalidCase{func(*v1.ImageGenerationJobSpec) {}, []string{"spec.steps"}, map[string]any{"steps": int64(0)}}),
		Entry("steps 151", invalidCase{func(s *v1.ImageGenerationJobSpec) { s.Steps = 151 }, []string{"spec.steps"}, nil}),
		Entry("sampler foo", invalidCase{func(s *v1.ImageGenerationJobSpec) { s.Sampler = "foo" }, []string{"spec.sampler", "ddim"}, nil}),
		Entry("guidance abc", invalidCase{func(s *v1.ImageGenerationJobSpec) { s.GuidanceScale = "abc" }, []string{"spec.guidanceScale"}, nil}),
		Entry("guidance 75", invalidCase{func(s *v1.ImageGenerationJobSpec) { s.GuidanceScale = "75" }, []string{"spec.guidanceScale", "at most 50"}, nil}),
		Entry("guidance -1", invalidCase{func(s *v1.ImageGenerationJobSpec) { s.GuidanceScale = "-1" }, []string{"spec.guidanceScale"}, nil}),
		Entry("empty prompt", invalidCase{func(s *v1.ImageGenerationJobSpec) { s.Prompt = "" }, []string{"spec.prompt"}, nil}),
		Entry("prompt missing", invalidCase{func(*v1.ImageGenerationJobSpec) {}, []string{"spec.prompt", "Required"}, map[string]any{"prompt": nil}}),
		Entry("blank prompt", invalidCase{func(s *v1.ImageGenerationJobSpec) { s.Prompt = "   " }, []string{"spec.prompt", "blank"}, nil}),
		Entry("prompt too long", invalidCase{func(s *v1.ImageGenerationJobSpec) { s.Prompt = strings.Repeat("a", 4097) }, []string{"spec.prompt"}, nil}),
		Entry("Pinned without gpus", invalidCase{func(s *v1.ImageGenerationJobSpec) { s.Placement.Policy = v1.PlacementPinned }, []string{"spec.placement", "placement.gpus must list"}, nil}),
		Entry("gpus without Pinned", invalidCase{func(s *v1.ImageGenerationJobSpec) { s.Placement.GPUs = pinned }, []string{"spec.placement", "only be set when placement.policy is Pinned"}, nil}),
		Entry("gpu with both uuid and index", invalidCase{func(s *v1.ImageGenerationJobSpec) {
			s.Placement.Policy = v1.PlacementPinned
			s.Placement.GPUs = []v1.GPUSelector{{Node: "n", UUID: "GPU-1", Index: ptr.To[int32](1)}}
		}, []string{"spec.placement.gpus[0]", "exactly one of uuid or index"}, nil}),
		Entry("gpu without node", invalidCase{func(s *v1.ImageGenerationJobSpec) {
			s.Placement.Policy = v1.PlacementPinned
			s.Placement.GPUs = []v1.GPUSelector{{UUID: "GPU-1"}}
		}, []string{"spec.placement.gpus[0].node"}, nil}),
		Entry("policy foo", invalidCase{func(s *v1.ImageGenerationJobSpec) { s.Placement.Policy = "Fastest" }, []string{"spec.placement.policy", "LeastLoaded"}, nil}),
		Entry("model path with ..", invalidCase{func(s *v1.ImageGenerationJobSpec) { s.Model = pvc("models", "sd/../../etc") }, []string{"spec.model.persistentVolumeClaim.path", "'..'"}, nil}),
		Entry("model path absolute in a PVC", invalidCase{func(s *v1.ImageGenerationJobSpec) { s.Model = pvc("models", "/sd15") }, []string{"spec.model.persistentVolumeClaim.path", "relative"}, nil}),
		Entry("output hostPath with ..", invalidCase{func(s *v1.ImageGenerationJobSpec) { s.Output = hostPath("/data/../etc") }, []string{"spec.output.hostPath.path", "'..'"}, nil}),
		Entry("output hostPath relative", invalidCase{func(s *v1.ImageGenerationJobSpec) { s.Output = hostPath("data") }, []string{"spec.output.hostPath.path", "absolute"}, nil}),
		Entry("model with both sources", invalidCase{func(s *v1.ImageGenerationJobSpec) {
			s.Model.HostPath = &v1.HostPathLocation{Path: "/models"}
		}, []string{"spec.model", "exactly one of persistentVolumeClaim or hostPath"}, nil}),
		Entry("output with no source", invalidCase{func(s *v1.ImageGenerationJobSpec) { s.Output = v1.StorageLocation{} }, []string{"spec.output", "exactly one of"}, nil}),
		Entry("bad claim name", invalidCase{func(s *v1.ImageGenerationJobSpec) { s.Model = pvc("Models_1", "") }, []string{"spec.model.persistentVolumeClaim.claimName"}, nil}),
		Entry("parallelism above images", invalidCase{func(s *v1.ImageGenerationJobSpec) { s.Images = 4; s.Parallelism = ptr.To[int32](8) }, []string{"spec.parallelism", "must not exceed images"}, nil}),
		Entry("parallelism 0", invalidCase{func(s *v1.ImageGenerationJobSpec) { s.Parallelism = ptr.To[int32](0) }, []string{"spec.parallelism"}, nil}),
		Entry("backoffLimitPerImage 11", invalidCase{func(s *v1.ImageGenerationJobSpec) { s.BackoffLimitPerImage = ptr.To[int32](11) }, []string{"spec.backoffLimitPerImage"}, nil}),
		Entry("maxFailedImages above images", invalidCase{func(s *v1.ImageGenerationJobSpec) { s.Images = 2; s.MaxFailedImages = ptr.To[int32](3) }, []string{"spec.maxFailedImages", "must not exceed images"}, nil}),
		Entry("negative seed", invalidCase{func(s *v1.ImageGenerationJobSpec) { s.Seed = ptr.To[int64](-1) }, []string{"spec.seed"}, nil}),
		Entry("activeDeadlineSeconds 0", invalidCase{func(s *v1.ImageGenerationJobSpec) { s.ActiveDeadlineSeconds = ptr.To[int64](0) }, []string{"spec.activeDeadlineSeconds"}, nil}),
		Entry("negative ttlSecondsAfterFinished", invalidCase{func(s *v1.ImageGenerationJobSpec) { s.TTLSecondsAfterFinished = ptr.To[int32](-1) }, []string{"spec.ttlSecondsAfterFinished"}, nil}),
		Entry("a GPU in resources", invalidCase{func(s *v1.ImageGenerationJobSpec) {
			s.Resources = &v1.ImageResources{Limits: corev1.ResourceList{"nvidia.com/gpu": resource.MustParse("1")}}
		}, []string{"spec.resources.limits", "GPUs are requested by the controller"}, nil}),
		Entry("too many tolerations", invalidCase{func(s *v1.ImageGenerationJobSpec) {
			for i := 0; i < 33; i++ {
				s.Placement.Tolerations = append(s.Placement.Tolerations, corev1.Toleration{Key: fmt.Sprintf("k%d", i), Operator: corev1.TolerationOpExists})
			}
		}, []string{"spec.placement.tolerations"}, nil}),
		Entry("toleration operator In", invalidCase{func(s *v1.ImageGenerationJobSpec) {
			s.Placement.Tolerations = []corev1.Toleration{{Key: "gpu", Operator: "In", Value: "a"}}
		}, []string{"spec.placement.tolerations", "operator must be Exists or Equal"}, nil}),
		Entry("toleration effect NoRun", invalidCase{func(s *v1.ImageGenerationJobSpec) {
			s.Placement.Tolerations = []corev1.Toleration{{Key: "gpu", Operator: corev1.TolerationOpExists, Effect: "NoRun"}}
		}, []string{"spec.placement.tolerations", "effect must be NoSchedule, PreferNoSchedule or NoExecute"}, nil}),
		Entry("toleration Exists with a value", invalidCase{func(s *v1.ImageGenerationJobSpec) {
			s.Placement.Tolerations = []corev1.Toleration{{Key: "gpu", Operator: corev1.TolerationOpExists, Value: "a100"}}
		}, []string{"spec.placement.tolerations", "operator Exists must have no value"}, nil}),
		Entry("toleration with an empty key and operator Equal", invalidCase{func(s *v1.ImageGenerationJobSpec) {
			s.Placement.Tolerations = []corev1.Toleration{{Operator: corev1.TolerationOpEqual, Value: "a100"}}
		}, []string{"spec.placement.tolerations", "empty key must have operator Exists"}, nil}),
		Entry("tolerationSeconds with NoSchedule", invalidCase{func(s *v1.ImageGenerationJobSpec) {
			s.Placement.Tolerations = []corev1.Toleration{{Key: "gpu", Operator: corev1.TolerationOpExists,
				Effect: corev1.TaintEffectNoSchedule, TolerationSeconds: ptr.To[int64](60)}}
		}, []string{"spec.placement.tolerations", "tolerationSeconds is only allowed", "NoExecute"}, nil}),
		Entry("tolerationSeconds without an effect", invalidCase{func(s *v1.ImageGenerationJobSpec) {
			s.Placement.Tolerations = []corev1.Toleration{{Key: "gpu", Operator: corev1.TolerationOpExists, TolerationSeconds: ptr.To[int64](60)}}
		}, []string{"spec.placement.tolerations", "tolerationSeconds is only allowed"}, nil}),
	)

	It("accepts exactly the tolerations a pod accepts", func() {
		tolerations := []corev1.Toleration{
			{Operator: corev1.TolerationOpExists},
			{Key: "gpu", Operator: corev1.TolerationOpExists},
			{Key: "gpu", Operator: corev1.TolerationOpEqual, Value: "a100", Effect: corev1.TaintEffectNoSchedule},
			{Key: "gpu", Value: "a100", Effect: corev1.TaintEffectPreferNoSchedule},
			{Key: "gpu", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](30)},
			{Key: "gpu"},
			{Key: "gpu", Operator: "In", Value: "a"},
			{Key: "gpu", Operator: corev1.TolerationOpExists, Effect: "NoRun"},
			{Key: "gpu", Operator: corev1.TolerationOpExists, Value: "a100"},
			{Operator: corev1.TolerationOpEqual, Value: "a100"},
			{Key: "gpu", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule, TolerationSeconds: ptr.To[int64](60)},
		}
		for _, t := range tolerations {
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: "tolerant", Namespace: ns},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "sdgen"}},
					Tolerations: []corev1.Toleration{t}},
			}
			podErr := k8s.Create(ctx, pod, client.DryRunAll)
			job := MakeJob("tolerant").Namespace(ns).Mutate(func(s *v1.ImageGenerationJobSpec) {
				s.Placement.Tolerations = []corev1.Toleration{t}
			}).Obj()
			jobErr := k8s.Create(ctx, job, client.DryRunAll)
			Expect(jobErr == nil).To(Equal(podErr == nil), "toleration %+v: pod %v, job %v", t, podErr, jobErr)
		}
	})

	It("refuses a name too long to name the job's pods", func() {
		ok := MakeJob(strings.Repeat("a", v1.MaxJobNameLength)).Namespace(ns).Obj()
		Expect(k8s.Create(ctx, ok, client.DryRunAll)).To(Succeed())
		long := MakeJob(strings.Repeat("a", v1.MaxJobNameLength+1)).Namespace(ns).Obj()
		err := k8s.Create(ctx, long, client.DryRunAll)
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "expected an Invalid error, got %v", err)
		Expect(err.Error()).To(And(ContainSubstring("metadata.name must be at most 244 characters"),
			ContainSubstring("<name>-<index>-r<retry>")))
	})

	It("refuses changes to what shapes the images and names the field", func() {
		job := MakeJob("immutable").Namespace(ns).Obj()
		Expect(k8s.Create(ctx, job)).To(Succeed())
		changes := map[string]func(*v1.ImageGenerationJobSpec){
			"prompt is immutable":         func(s *v1.ImageGenerationJobSpec) { s.Prompt = "a blue fox" },
			"images is immutable":         func(s *v1.ImageGenerationJobSpec) { s.Images = 5 },
			"steps is immutable":          func(s *v1.ImageGenerationJobSpec) { s.Steps = 30 },
			"sampler is immutable":        func(s *v1.ImageGenerationJobSpec) { s.Sampler = v1.SamplerEulerAncestral },
			"model is immutable":          func(s *v1.ImageGenerationJobSpec) { s.Model.PersistentVolumeClaim.Path = "other" },
			"seed is immutable":           func(s *v1.ImageGenerationJobSpec) { s.Seed = ptr.To[int64](7) },
			"negativePrompt is immutable": func(s *v1.ImageGenerationJobSpec) { s.NegativePrompt = "blurry" },
			"placement is immutable":      func(s *v1.ImageGenerationJobSpec) { s.Placement.Policy = v1.PlacementPack },
		}
		for want, change := range changes {
			current := &v1.ImageGenerationJob{}
			Expect(k8s.Get(ctx, client.ObjectKeyFromObject(job), current)).To(Succeed())
			change(&current.Spec)
			err := k8s.Update(ctx, current)
			Expect(err).To(HaveOccurred(), "the API server accepted a change where %q", want)
			Expect(err.Error()).To(ContainSubstring(want))
		}
	})

	It("allows suspend, parallelism and the deadlines to change", func() {
		job := MakeJob("mutable").Namespace(ns).Images(8).Obj()
		Expect(k8s.Create(ctx, job)).To(Succeed())
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(job), job)).To(Succeed())
		job.Spec.Suspend = ptr.To(true)
		job.Spec.Parallelism = ptr.To[int32](2)
		job.Spec.ActiveDeadlineSeconds = ptr.To[int64](600)
		job.Spec.TTLSecondsAfterFinished = ptr.To[int32](60)
		Expect(k8s.Update(ctx, job)).To(Succeed())
	})

	It("accepts a Pinned job, a hostPath model and CPU fallback off", func() {
		job := MakeJob("pinned").Namespace(ns).Mutate(func(s *v1.ImageGenerationJobSpec) {
			s.Placement.Policy = v1.PlacementPinned
			s.Placement.GPUs = []v1.GPUSelector{{Node: "node-a", UUID: "GPU-0f1e"}, {Node: "node-b", Index: ptr.To[int32](3)}}
			s.Placement.AllowCPUFallback = ptr.To(false)
			s.Model = hostPath("/var/lib/sdfleet/models/sd15.safetensors")
			s.Output = hostPath("/var/lib/sdfleet/out")
			s.GPUMemoryPerImage = ptr.To(resource.MustParse("6Gi"))
		}).Obj()
		Expect(k8s.Create(ctx, job)).To(Succeed())
	})
})
