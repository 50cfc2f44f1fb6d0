package packaging

import (
	"context"
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	"github.com/sdfleet/sdfleet/controllers"
	"github.com/sdfleet/sdfleet/controllers/jobpolicy"
	sdtesting "github.com/sdfleet/sdfleet/controllers/testing"
	"github.com/sdfleet/sdfleet/test/envtest"
)

// The job policy's release: its own namespace, so that it does not meet the dry-run specs'.
// The specs run in order: the hostile jobs are dry-runs, the last specs create jobs and pods.
const (
	policyNamespace = "sdfleet-policy"
	// allowedFolder is the only host folder the tests' administrator allows.
	allowedFolder = "/srv/sdfleet"
	// tenant is a user who may write jobs in its namespace but not pods.
	tenant = "tenant@example.com"
)

// policyJob is a job the policy allows, in the allowed folder, as each hostile case starts.
func policyJob(name, ns string) *sdfleetv1alpha1.ImageGenerationJob {
	return &sdfleetv1alpha1.ImageGenerationJob{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: sdfleetv1alpha1.ImageGenerationJobSpec{
			Prompt: "a lighthouse at dawn", Images: 1, Width: 64, Height: 64, Steps: 1,
			Model:  sdfleetv1alpha1.StorageLocation{HostPath: &sdfleetv1alpha1.HostPathLocation{Path: allowedFolder + "/models/sd15"}},
			Output: sdfleetv1alpha1.StorageLocation{HostPath: &sdfleetv1alpha1.HostPathLocation{Path: allowedFolder + "/out"}},
		},
	}
}

func hostPath(p string) sdfleetv1alpha1.StorageLocation {
	return sdfleetv1alpha1.StorageLocation{HostPath: &sdfleetv1alpha1.HostPathLocation{Path: p}}
}

// impersonating returns a client that acts as user.
func impersonating(user string) client.Client {
	cfg := rest.CopyConfig(testEnv.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: []string{"system:authenticated"}}
	c, err := client.New(cfg, client.Options{Scheme: envtest.Scheme()})
	Expect(err).NotTo(HaveOccurred())
	return c
}

// canI asks the API server whether the client's user may do verb on resource.
func canI(c client.Client, verb, group, resource, ns string) bool {
	GinkgoHelper()
	res, sub, _ := strings.Cut(resource, "/")
	review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
		ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: verb, Group: group, Resource: res, Subresource: sub, Namespace: ns},
	}}
	Expect(c.Create(suiteCtx, review)).To(Succeed())
	return review.Status.Allowed
}

// createObjects creates rendered objects for real (the job policy must act, not be dry-run).
func createObjects(objs []*unstructured.Unstructured) {
	GinkgoHelper()
	for _, u := range objs {
		Expect(k8s.Create(suiteCtx, u.DeepCopy())).To(Succeed(), "create %s", Key(u))
	}
}

// namespace creates a namespace with labels.
func namespace(name string, labels map[string]string) string {
	GinkgoHelper()
	Expect(k8s.Create(suiteCtx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}})).To(Succeed())
	return name
}

var _ = Describe("the job policy", Ordered, func() {
	var (
		rendered *Rendered
		policy   jobpolicy.Policy
		tenantNS string
		// user is the tenant's client: edit in its namespace (what the built-in edit role
		// aggregates of sdfleet), no pods.
		user client.Client
	)

	BeforeAll(func() {
		r, err := RenderChart(chartDir, Release{Name: releaseName, Namespace: policyNamespace},
			set("jobPolicy.allowedHostPathPrefixes", []any{allowedFolder}))
		Expect(err).NotTo(HaveOccurred())
		rendered = r
		namespace(policyNamespace, nil)
		namespace("psa-restricted", map[string]string{"pod-security.kubernetes.io/enforce": "restricted"})
		namespace("psa-baseline", map[string]string{"pod-security.kubernetes.io/enforce": "baseline"})
		var policyObjects []*unstructured.Unstructured
		for _, u := range rendered.Objects {
			if u.GetLabels()["app.kubernetes.io/component"] == "job-policy" || strings.HasPrefix(u.GetName(), "sdfleet-gpunode-reader") ||
				u.GetName() == "sdfleet-view" || u.GetName() == "sdfleet-edit" {
				policyObjects = append(policyObjects, u)
			}
		}
		Expect(keys(policyObjects)).To(ConsistOf(
			"ConfigMap "+policyNamespace+"/sdfleet-job-policy", "ValidatingAdmissionPolicy sdfleet-job-policy",
			"ValidatingAdmissionPolicyBinding sdfleet-job-policy", "ClusterRole sdfleet-view", "ClusterRole sdfleet-edit",
			"ClusterRole sdfleet-gpunode-reader", "ClusterRoleBinding sdfleet-gpunode-reader"))
		createObjects(policyObjects)
		DeferCleanup(func() {
			for _, u := range policyObjects {
				Expect(client.IgnoreNotFound(k8s.Delete(suiteCtx, u.DeepCopy()))).To(Succeed())
			}
		})

		// The operator's own view of the policy: the flags the chart gives it.
		manager := podSpec(GinkgoT(), mustFind(GinkgoT(), rendered.Objects, "Deployment", "sdfleet-manager"))
		flags := map[string]string{}
		for _, a := range args(container(GinkgoT(), manager)) {
			name, value, _ := strings.Cut(a, "=")
			flags[name] = value
		}
		policy, err = jobpolicy.New(splitList(flags["--allowed-host-path-prefixes"]), splitList(flags["--allowed-image-prefixes"]),
			flags["--default-image"])
		Expect(err).NotTo(HaveOccurred())
		Expect(policy.HostPathPrefixes).To(Equal([]string{allowedFolder}))
		Expect(policy.ImagePrefixes).To(Equal([]string{"ghcr.io/sdfleet/sdgen"}), "by default only the chart's inference image")

		// The tenant holds the built-in edit role in its namespace. envtest's API server runs no
		// controller manager, so nothing aggregates edit's rules: the tenant is bound to what
		// edit's aggregationRule selects of sdfleet's roles, read from the API server's own
		// edit role.
		tenantNS = namespace("tenant", nil)
		edit := &rbacv1.ClusterRole{}
		Expect(k8s.Get(suiteCtx, client.ObjectKey{Name: "edit"}, edit)).To(Succeed())
		Expect(edit.AggregationRule).NotTo(BeNil())
		aggregated := map[string]bool{}
		for _, sel := range edit.AggregationRule.ClusterRoleSelectors {
			selector, err := metav1.LabelSelectorAsSelector(&sel)
			Expect(err).NotTo(HaveOccurred())
			var roles rbacv1.ClusterRoleList
			Expect(k8s.List(suiteCtx, &roles, client.MatchingLabelsSelector{Selector: selector})).To(Succeed())
			for _, role := range roles.Items {
				if strings.HasPrefix(role.Name, "sdfleet-") {
					aggregated[role.Name] = true
				}
			}
		}
		Expect(aggregated).To(Equal(map[string]bool{"sdfleet-edit": true, "sdfleet-view": true}))
		for role := range aggregated {
			Expect(k8s.Create(suiteCtx, &rbacv1.RoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: "tenant-" + role, Namespace: tenantNS},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
				Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: tenant}},
			})).To(Succeed())
		}
		user = impersonating(tenant)
		Eventually(func() bool { return canI(user, "create", "sdfleet.io", "imagegenerationjobs", tenantNS) }).Should(BeTrue())
		Expect(canI(user, "create", "", "pods", tenantNS)).To(BeFalse(), "the tenant may not create pods itself")

		// The policy acts once the API server has compiled it and read its parameters.
		Eventually(func() error {
			job := policyJob("probe", tenantNS)
			job.Spec.Output = hostPath("/etc")
			return k8s.Create(suiteCtx, job, client.DryRunAll)
		}).Should(MatchError(ContainSubstring("spec.output.hostPath.path")))
	})

	It("allows a job within the policy, with the default image or another tag of it", func() {
		Expect(user.Create(suiteCtx, policyJob("fine", tenantNS), client.DryRunAll)).To(Succeed())
		job := policyJob("tagged", tenantNS)
		job.Spec.Image = "ghcr.io/sdfleet/sdgen:0.2.0"
		Expect(user.Create(suiteCtx, job, client.DryRunAll)).To(Succeed())
		job.Spec.Model = sdfleetv1alpha1.StorageLocation{PersistentVolumeClaim: &sdfleetv1alpha1.PVCLocation{ClaimName: "models"}}
		job.Spec.Output = sdfleetv1alpha1.StorageLocation{PersistentVolumeClaim: &sdfleetv1alpha1.PVCLocation{ClaimName: "out"}}
		Expect(user.Create(suiteCtx, job, client.DryRunAll)).To(Succeed())
		Expect(policy.Check(&job.Spec)).To(BeEmpty())
	})

	// Each hostile or malformed job, sent by the tenant with a server-side dry-run, is refused by
	// the CRD's schema or the job policy with the offending field named.
	DescribeTable("refuses a hostile or malformed job, naming the field",
		func(ns string, change func(*sdfleetv1alpha1.ImageGenerationJob), field string, more ...string) {
			if ns == "" {
				ns = "tenant"
			}
			job := policyJob("hostile", ns)
			change(job)
			c := user
			if ns != "tenant" {
				c = k8s // the tenant has no role in the Pod Security namespaces
			}
			err := c.Create(suiteCtx, job, client.DryRunAll)
			Expect(err).To(HaveOccurred(), "the API server accepted %s", toJSON(job.Spec))
			Expect(err.Error()).To(ContainSubstring(field))
			for _, m := range more {
				Expect(err.Error()).To(ContainSubstring(m))
			}
			if strings.Contains(err.Error(), "sdfleet-job-policy") && !strings.Contains(err.Error(), "Pod Security") {
				// What the admission policy refuses, the operator refuses too.
				Expect(policy.Check(&job.Spec).ToAggregate()).To(MatchError(ContainSubstring(field)))
			}
		},
		// Host paths the administrator did not allow.
		Entry("the host's /etc as output", "", func(j *sdfleetv1alpha1.ImageGenerationJob) { j.Spec.Output = hostPath("/etc") },
			"spec.output.hostPath.path", "allowed host path prefixes: /srv/sdfleet"),
		Entry("the host's root as output", "", func(j *sdfleetv1alpha1.ImageGenerationJob) { j.Spec.Output = hostPath("/") },
			"spec.output.hostPath.path"),
		Entry("the kubelet's folder as output", "", func(j *sdfleetv1alpha1.ImageGenerationJob) { j.Spec.Output = hostPath("/var/lib/kubelet") },
			"spec.output.hostPath.path"),
		Entry("the containerd socket's folder", "", func(j *sdfleetv1alpha1.ImageGenerationJob) { j.Spec.Output = hostPath("/run/containerd") },
			"spec.output.hostPath.path"),
		Entry("/proc", "", func(j *sdfleetv1alpha1.ImageGenerationJob) { j.Spec.Output = hostPath("/proc") },
			"spec.output.hostPath.path"),
		Entry("a model in /etc", "", func(j *sdfleetv1alpha1.ImageGenerationJob) { j.Spec.Model = hostPath("/etc/shadow") },
			"spec.model.hostPath.path", "host folder /etc"),
		Entry("a model in the kubelet's pods", "", func(j *sdfleetv1alpha1.ImageGenerationJob) {
			j.Spec.Model = hostPath("/var/lib/kubelet/pods/x")
		}, "spec.model.hostPath.path"),
		Entry("a model that is the allowed folder, whose parent would be mounted", "", func(j *sdfleetv1alpha1.ImageGenerationJob) {
			j.Spec.Model = hostPath(allowedFolder)
		}, "spec.model.hostPath.path", "host folder /srv"),
		Entry("a model directly under /", "", func(j *sdfleetv1alpha1.ImageGenerationJob) { j.Spec.Model = hostPath("/sd15") },
			"spec.model.hostPath.path"),
		Entry("a folder sharing the allowed one's spelling", "", func(j *sdfleetv1alpha1.ImageGenerationJob) {
			j.Spec.Output = hostPath(allowedFolder + "-evil")
		}, "spec.output.hostPath.path"),
		// Paths the CRD refuses whatever the policy.
		Entry("a path leaving the allowed folder with ..", "", func(j *sdfleetv1alpha1.ImageGenerationJob) {
			j.Spec.Output = hostPath(allowedFolder + "/../../etc")
		}, "spec.output.hostPath.path", "'..'"),
		Entry("a relative host path", "", func(j *sdfleetv1alpha1.ImageGenerationJob) { j.Spec.Output = hostPath("srv/sdfleet") },
			"spec.output.hostPath.path", "absolute"),
		Entry("an empty segment", "", func(j *sdfleetv1alpha1.ImageGenerationJob) { j.Spec.Output = hostPath(allowedFolder + "//x") },
			"spec.output.hostPath.path", "clean"),
		Entry("a . segment", "", func(j *sdfleetv1alpha1.ImageGenerationJob) { j.Spec.Model = hostPath(allowedFolder + "/./m") },
			"spec.model.hostPath.path", "clean"),
		Entry("a trailing /", "", func(j *sdfleetv1alpha1.ImageGenerationJob) { j.Spec.Output = hostPath(allowedFolder + "/out/") },
			"spec.output.hostPath.path", "clean"),
		Entry("an absolute path in a claim", "", func(j *sdfleetv1alpha1.ImageGenerationJob) {
			j.Spec.Model = sdfleetv1alpha1.StorageLocation{PersistentVolumeClaim: &sdfleetv1alpha1.PVCLocation{ClaimName: "m", Path: "/etc"}}
		}, "spec.model.persistentVolumeClaim.path"),
		Entry("a path leaving a claim", "", func(j *sdfleetv1alpha1.ImageGenerationJob) {
			j.Spec.Output = sdfleetv1alpha1.StorageLocation{PersistentVolumeClaim: &sdfleetv1alpha1.PVCLocation{ClaimName: "o", Path: "a/../../b"}}
		}, "spec.output.persistentVolumeClaim.path"),
		Entry("a claim and a host path at once", "", func(j *sdfleetv1alpha1.ImageGenerationJob) {
			j.Spec.Model.PersistentVolumeClaim = &sdfleetv1alpha1.PVCLocation{ClaimName: "m"}
		}, "spec.model", "exactly one of persistentVolumeClaim or hostPath"),
		Entry("a claim name that is not a DNS name", "", func(j *sdfleetv1alpha1.ImageGenerationJob) {
			j.Spec.Model = sdfleetv1alpha1.StorageLocation{PersistentVolumeClaim: &sdfleetv1alpha1.PVCLocation{ClaimName: "Models_1"}}
		}, "spec.model.persistentVolumeClaim.claimName"),
		// Images the administrator did not allow.
		Entry("an image from another registry", "", func(j *sdfleetv1alpha1.ImageGenerationJob) { j.Spec.Image = "docker.io/library/busybox:1.36" },
			"spec.image", "allowed image prefixes: ghcr.io/sdfleet/sdgen"),
		Entry("a repository sharing the allowed one's spelling", "", func(j *sdfleetv1alpha1.ImageGenerationJob) {
			j.Spec.Image = "ghcr.io/sdfleet/sdgen-evil:latest"
		}, "spec.image"),
		Entry("a repository below the allowed one", "", func(j *sdfleetv1alpha1.ImageGenerationJob) { j.Spec.Image = "ghcr.io/sdfleet/sdgen/x:1" },
			"spec.image"),
		Entry("an image name longer than 512 characters", "", func(j *sdfleetv1alpha1.ImageGenerationJob) {
			j.Spec.Image = "ghcr.io/sdfleet/sdgen:" + strings.Repeat("a", 500)
		}, "spec.image"),
		// Pod Security of the job's namespace.
		Entry("a host path in a namespace enforcing restricted", "psa-restricted", func(*sdfleetv1alpha1.ImageGenerationJob) {},
			"spec.model.hostPath", `enforces Pod Security "restricted"`),
		Entry("a host path output in a namespace enforcing baseline", "psa-baseline", func(j *sdfleetv1alpha1.ImageGenerationJob) {
			j.Spec.Model = sdfleetv1alpha1.StorageLocation{PersistentVolumeClaim: &sdfleetv1alpha1.PVCLocation{ClaimName: "m"}}
		}, "spec.output.hostPath", `enforces Pod Security "baseline"`),
		// Names, sizes and the rest of the schema.
		Entry("a name that is not a DNS name", "", func(j *sdfleetv1alpha1.ImageGenerationJob) { j.Name = "Hostile_Job" },
			"metadata.name"),
		Entry("a width not a multiple of 8", "", func(j *sdfleetv1alpha1.ImageGenerationJob) { j.Spec.Width = 100 }, "spec.width"),
		Entry("a width beyond 2048", "", func(j *sdfleetv1alpha1.ImageGenerationJob) { j.Spec.Width = 8192 }, "spec.width"),
		Entry("a height below 64", "", func(j *sdfleetv1alpha1.ImageGenerationJob) { j.Spec.Height = 32 }, "spec.height"),
		Entry("no images", "", func(j *sdfleetv1alpha1.ImageGenerationJob) { j.Spec.Images = -1 }, "spec.images"),
		Entry("too many images", "", func(j *sdfleetv1alpha1.ImageGenerationJob) { j.Spec.Images = 10001 }, "spec.images"),
		Entry("too many steps", "", func(j *sdfleetv1alpha1.ImageGenerationJob) { j.Spec.Steps = 1000 }, "spec.steps"),
		Entry("a guidance scale that is not a number", "", func(j *sdfleetv1alpha1.ImageGenerationJob) { j.Spec.GuidanceScale = "1e9" },
			"spec.guidanceScale"),
		Entry("a guidance scale beyond 50", "", func(j *sdfleetv1alpha1.ImageGenerationJob) { j.Spec.GuidanceScale = "99.5" },
			"spec.guidanceScale"),
		Entry("an unknown sampler", "", func(j *sdfleetv1alpha1.ImageGenerationJob) { j.Spec.Sampler = "../../bin/sh" }, "spec.sampler"),
		Entry("a blank prompt", "", func(j *sdfleetv1alpha1.ImageGenerationJob) { j.Spec.Prompt = " \t " }, "spec.prompt"),
		Entry("a prompt beyond 4096 bytes", "", func(j *sdfleetv1alpha1.ImageGenerationJob) { j.Spec.Prompt = strings.Repeat("x", 5000) },
			"spec.prompt"),
		Entry("a negative seed", "", func(j *sdfleetv1alpha1.ImageGenerationJob) { j.Spec.Seed = ptr.To[int64](-1) }, "spec.seed"),
		Entry("more than 32 tolerations", "", func(j *sdfleetv1alpha1.ImageGenerationJob) {
			for i := range 33 {
				j.Spec.Placement.Tolerations = append(j.Spec.Placement.Tolerations,
					corev1.Toleration{Key: fmt.Sprintf("t%d", i), Operator: corev1.TolerationOpExists})
			}
		}, "spec.placement.tolerations"),
		Entry("more than 32 node selector labels", "", func(j *sdfleetv1alpha1.ImageGenerationJob) {
			j.Spec.Placement.NodeSelector = map[string]string{}
			for i := range 33 {
				j.Spec.Placement.NodeSelector[fmt.Sprintf("l%d", i)] = "x"
			}
		}, "spec.placement.nodeSelector"),
		Entry("a GPU requested by hand", "", func(j *sdfleetv1alpha1.ImageGenerationJob) {
			j.Spec.Resources = &sdfleetv1alpha1.ImageResources{Requests: corev1.ResourceList{"sdfleet.io/gpu-0": resource.MustParse("1")}}
		}, "spec.resources.requests", "GPUs are requested by the controller"),
		Entry("an NVIDIA GPU limit by hand", "", func(j *sdfleetv1alpha1.ImageGenerationJob) {
			j.Spec.Resources = &sdfleetv1alpha1.ImageResources{Limits: corev1.ResourceList{"nvidia.com/gpu": resource.MustParse("8")}}
		}, "spec.resources.limits"),
		Entry("GPUs listed without the Pinned policy", "", func(j *sdfleetv1alpha1.ImageGenerationJob) {
			j.Spec.Placement.GPUs = []sdfleetv1alpha1.GPUSelector{{Node: "n", Index: ptr.To[int32](0)}}
		}, "spec.placement", "placement.gpus may only be set"),
		Entry("a Pinned policy without GPUs", "", func(j *sdfleetv1alpha1.ImageGenerationJob) {
			j.Spec.Placement.Policy = sdfleetv1alpha1.PlacementPinned
		}, "spec.placement", "at least one GPU"),
		Entry("parallelism beyond the images", "", func(j *sdfleetv1alpha1.ImageGenerationJob) { j.Spec.Parallelism = ptr.To[int32](5) },
			"spec.parallelism"),
	)

	It("never lets a tenant without pod permissions get a pod the policy does not allow", func() {
		startOperator(policy)

		By("refusing hostile jobs at admission, even when the tenant really creates them")
		for _, change := range []func(*sdfleetv1alpha1.ImageGenerationJob){
			func(j *sdfleetv1alpha1.ImageGenerationJob) { j.Spec.Output = hostPath("/etc") },
			func(j *sdfleetv1alpha1.ImageGenerationJob) { j.Spec.Model = hostPath("/var/lib/kubelet/x") },
			func(j *sdfleetv1alpha1.ImageGenerationJob) { j.Spec.Image = "docker.io/library/busybox:1.36" },
		} {
			job := policyJob("hostile", tenantNS)
			change(job)
			Expect(user.Create(suiteCtx, job)).To(MatchError(ContainSubstring("denied request")))
		}

		By("refusing a job stored while the admission policy was away, in the operator")
		binding := mustFind(GinkgoT(), rendered.Objects, "ValidatingAdmissionPolicyBinding", "sdfleet-job-policy")
		Expect(k8s.Delete(suiteCtx, binding.DeepCopy())).To(Succeed())
		Eventually(func() error {
			job := policyJob("stored-before", tenantNS)
			job.Spec.Output = hostPath("/etc")
			return user.Create(suiteCtx, job)
		}).Should(Succeed())
		Expect(k8s.Create(suiteCtx, binding.DeepCopy())).To(Succeed())
		// A healthy GPU for the allowed job: GPUNodes other specs left behind have gone silent,
		// and silent GPUs make images wait rather than run on the CPU.
		gn := sdtesting.MakeGPUNode("policy-node").GPU(0, 0, 80, 4).Obj()
		gn.Status.HeartbeatIntervalSeconds = 3600
		status := gn.Status.DeepCopy()
		Expect(k8s.Create(suiteCtx, gn)).To(Succeed())
		DeferCleanup(func() { Expect(client.IgnoreNotFound(k8s.Delete(suiteCtx, gn))).To(Succeed()) })
		gn.Status = *status
		Expect(k8s.Status().Update(suiteCtx, gn)).To(Succeed())
		Expect(user.Create(suiteCtx, policyJob("allowed", tenantNS))).To(Succeed())

		Eventually(func(g Gomega) {
			job := &sdfleetv1alpha1.ImageGenerationJob{}
			g.Expect(user.Get(suiteCtx, client.ObjectKey{Namespace: tenantNS, Name: "stored-before"}, job)).To(Succeed())
			g.Expect(job.Status.Phase).To(Equal(sdfleetv1alpha1.JobPhaseFailed))
			failed := findCondition(job.Status.Conditions, sdfleetv1alpha1.JobFailed)
			g.Expect(failed).NotTo(BeNil())
			g.Expect(failed.Reason).To(Equal(controllers.ReasonNotAllowed))
			g.Expect(failed.Message).To(ContainSubstring("spec.output.hostPath.path"))
		}).WithTimeout(time.Minute).Should(Succeed())

		By("creating pods for the allowed job only, each within the policy")
		Eventually(func(g Gomega) {
			var pods corev1.PodList
			g.Expect(k8s.List(suiteCtx, &pods, client.InNamespace(tenantNS))).To(Succeed())
			g.Expect(pods.Items).NotTo(BeEmpty())
			for _, pod := range pods.Items {
				g.Expect(pod.Labels).To(HaveKeyWithValue(controllers.LabelJob, "allowed"))
				for _, v := range pod.Spec.Volumes {
					if v.HostPath != nil {
						g.Expect(policy.HostPathAllowed(v.HostPath.Path)).To(BeTrue(), "pod %s mounts %s", pod.Name, v.HostPath.Path)
						g.Expect(v.HostPath.Path).To(HavePrefix(allowedFolder + "/"))
					}
				}
				for _, c := range pod.Spec.Containers {
					g.Expect(policy.ImageAllowed(c.Image)).To(BeTrue(), "pod %s runs %s", pod.Name, c.Image)
				}
			}
		}).WithTimeout(time.Minute).Should(Succeed())
	})

	It("gives a namespace user read access to GPUNodes and job writes, never GPUNode writes", func() {
		gn := &sdfleetv1alpha1.GPUNode{ObjectMeta: metav1.ObjectMeta{Name: "rbac-node"}}
		Expect(k8s.Create(suiteCtx, gn)).To(Succeed())
		DeferCleanup(func() { Expect(client.IgnoreNotFound(k8s.Delete(suiteCtx, gn))).To(Succeed()) })
		var nodes sdfleetv1alpha1.GPUNodeList
		Expect(user.List(suiteCtx, &nodes)).To(Succeed())
		Expect(nodes.Items).NotTo(BeEmpty())
		Expect(user.Get(suiteCtx, client.ObjectKeyFromObject(gn), &sdfleetv1alpha1.GPUNode{})).To(Succeed())
		for _, verb := range []string{"create", "update", "patch", "delete"} {
			Expect(canI(user, verb, "sdfleet.io", "gpunodes", "")).To(BeFalse(), "tenant may %s GPUNodes", verb)
		}
		Expect(canI(user, "update", "sdfleet.io", "imagegenerationjobs/status", tenantNS)).To(BeFalse())
		for _, verb := range []string{"create", "update", "patch", "delete", "list", "watch"} {
			Expect(canI(user, verb, "sdfleet.io", "imagegenerationjobs", tenantNS)).To(BeTrue(), "tenant may not %s jobs", verb)
		}
		Expect(canI(user, "create", "sdfleet.io", "imagegenerationjobs", "default")).To(BeFalse(), "only in its namespace")
	})
})

// splitList splits a comma-separated flag value as the manager does.
func splitList(v string) []string {
	var out []string
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

func findCondition(conds []metav1.Condition, t string) *metav1.Condition {
	for i := range conds {
		if conds[i].Type == t {
			return &conds[i]
		}
	}
	return nil
}

// startOperator runs the ImageGenerationJob controller with policy until ctx ends, as
// cmd/manager does.
func startOperator(policy jobpolicy.Policy) {
	ctx, cancel := context.WithCancel(suiteCtx)
	mgr, err := ctrl.NewManager(testEnv.Config, ctrl.Options{
		Scheme:                 envtest.Scheme(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  cache.Options{ByObject: controllers.CacheByObject()},
	})
	Expect(err).NotTo(HaveOccurred())
	r := controllers.NewReconciler(mgr.GetClient(), mgr.GetEventRecorder("sdfleet-controller"), controllers.Config{
		DefaultImage: "ghcr.io/sdfleet/sdgen:0.1.0", Policy: policy, SkipNameValidation: true,
	})
	Expect(r.SetupWithManager(mgr)).To(Succeed())
	done := make(chan struct{})
	go func() {
		defer GinkgoRecover()
		defer close(done)
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
	DeferCleanup(func() {
		cancel()
		Eventually(done).Should(BeClosed())
	})
}
