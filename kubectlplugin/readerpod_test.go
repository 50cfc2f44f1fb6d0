package kubectlplugin_test

import (
	"context"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gbytes"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	sdtesting "github.com/sdfleet/sdfleet/controllers/testing"
	"github.com/sdfleet/sdfleet/kubectlplugin"
	"github.com/sdfleet/sdfleet/kubectlplugin/readerpod"
	"github.com/sdfleet/sdfleet/test/envtest"
)

// tokenKubeconfig is a kubeconfig of the API server that authenticates with token only (a
// client certificate would win over it), its context in namespace ns.
func tokenKubeconfig(ns, token string) string {
	GinkgoHelper()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["envtest"] = &clientcmdapi.Cluster{Server: env.Config.Host, CertificateAuthorityData: env.Config.CAData}
	cfg.AuthInfos["user"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["user"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "user", Namespace: ns}
	cfg.CurrentContext = "user"
	path := filepath.Join(GinkgoT().TempDir(), "kubeconfig")
	Expect(clientcmd.WriteToFile(*cfg, path)).To(Succeed())
	return path
}

// runAs runs `kubectl sdfleet ARGS` with kubeconfig under ctx.
func runAs(ctx context.Context, kubeconfig string, out *gbytes.Buffer, args ...string) error {
	cmd := kubectlplugin.NewCommand(genericiooptions.IOStreams{In: gbytes.NewBuffer(), Out: out, ErrOut: out})
	cmd.SetArgs(append([]string{"--kubeconfig", kubeconfig}, args...))
	return cmd.ExecuteContext(ctx)
}

// readerPods lists the reader pods of namespace ns.
func readerPods(ns string) []corev1.Pod {
	GinkgoHelper()
	var pods corev1.PodList
	Expect(k8s.List(suiteCtx, &pods, client.InNamespace(ns),
		client.MatchingLabels{readerpod.LabelComponent: readerpod.ComponentReader})).To(Succeed())
	return pods.Items
}

var podRules = []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"create", "get", "list", "watch", "delete"}}}
var execRule = rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods/exec"}, Verbs: []string{"create", "get"}}

var _ = Describe("Reading images without a gateway", Ordered, func() {
	const ns = "darkroom"
	var heron *sdfleetv1alpha1.ImageGenerationJob
	var reader, noExec, jobsOnly string // kubeconfigs of three service accounts

	BeforeAll(func() {
		Expect(k8s.Create(suiteCtx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
		tenants := envtest.Tenants{Client: k8s, Kube: kube}
		for _, sa := range []struct {
			name  string
			rules []rbacv1.PolicyRule
			out   *string
		}{
			{"reader", append(podRules, execRule), &reader},
			{"no-exec", podRules, &noExec},
			{"jobs-only", nil, &jobsOnly},
		} {
			token := serviceAccountToken(ns, sa.name, "create", "get", "list", "watch")
			if sa.rules != nil {
				Expect(tenants.Grant(suiteCtx, ns, sa.name, "pods", sa.rules...)).To(Succeed())
			}
			*sa.out = tokenKubeconfig(ns, token)
		}

		// A finished job whose images ran on two nodes, written to a host folder, and whose
		// first image pod is still there: its image is what a reader runs.
		job := sdtesting.MakeJob("heron", ns).Images(2).Obj()
		job.Spec.Placement.Tolerations = []corev1.Toleration{{Key: "gpu", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}
		img0 := placed(0, sdfleetv1alpha1.ImageSucceeded, "node-b", 0, 10)
		img1 := placed(1, sdfleetv1alpha1.ImageSucceeded, "node-a", 1, 10)
		img0.PodName, img1.PodName = "heron-0", "heron-1"
		heron = createJob(job, img0, img1)
		Expect(k8s.Create(suiteCtx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "heron-0", Namespace: ns, OwnerReferences: []metav1.OwnerReference{{
				APIVersion: sdfleetv1alpha1.GroupVersion.String(), Kind: "ImageGenerationJob", Name: heron.Name, UID: heron.UID, Controller: ptr.To(true)}}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "sdgen", Image: "registry.example/sdfleet/sdgen@sha256:" + sha64}}},
		})).To(Succeed())
	})

	It("starts a restricted, read-only reader pod per node with the job's image, and deletes it when the copy fails", func() {
		out := gbytes.NewBuffer()
		done := make(chan error, 1)
		go func() {
			defer GinkgoRecover()
			done <- runAs(suiteCtx, reader, out, "images", "heron", "--out", GinkgoT().TempDir())
		}()
		var pod corev1.Pod
		Eventually(func(g Gomega) {
			pods := readerPods(ns)
			g.Expect(pods).To(HaveLen(1))
			pod = pods[0]
		}).Should(Succeed())
		Expect(pod.Labels).To(HaveKeyWithValue(readerpod.LabelReaderFor, "heron"))
		Expect(pod.Labels).NotTo(HaveKey("sdfleet.io/job-uid"), "the job's controller must not count a reader as an image pod")
		Expect(pod.OwnerReferences).To(ConsistOf(And(
			HaveField("UID", heron.UID), HaveField("Controller", BeNil()), HaveField("BlockOwnerDeletion", BeNil()))))
		// The first node in name order, for the host folder exists there.
		terms := pod.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
		Expect(terms).To(HaveLen(1))
		Expect(terms[0].MatchExpressions[0].Values).To(Equal([]string{"node-a"}))
		Expect(pod.Spec.Tolerations).To(ContainElement(heron.Spec.Placement.Tolerations[0]), "the GPU nodes' taints, as its image pods")
		Expect(pod.Spec.AutomountServiceAccountToken).To(Equal(ptr.To(false)))
		Expect(pod.Spec.ActiveDeadlineSeconds).NotTo(BeNil())
		Expect(pod.Spec.SecurityContext.RunAsNonRoot).To(Equal(ptr.To(true)))
		Expect(pod.Spec.SecurityContext.SeccompProfile.Type).To(Equal(corev1.SeccompProfileTypeRuntimeDefault))
		Expect(pod.Spec.Volumes).To(HaveLen(1))
		Expect(pod.Spec.Volumes[0].HostPath.Path).To(Equal(hostOutput))
		Expect(*pod.Spec.Volumes[0].HostPath.Type).To(Equal(corev1.HostPathDirectory), "a reader never creates a host folder")
		Expect(pod.Spec.Containers).To(HaveLen(1))
		c := pod.Spec.Containers[0]
		Expect(c.Image).To(Equal("registry.example/sdfleet/sdgen@sha256:"+sha64), "the image the job's pods ran")
		Expect(c.Command).To(Equal([]string{"sdgen", "hold", "--for", readerpod.Lifetime.String()}))
		Expect(c.VolumeMounts).To(ConsistOf(And(HaveField("MountPath", "/sdfleet/output"), HaveField("ReadOnly", true))))
		Expect(*c.SecurityContext.AllowPrivilegeEscalation).To(BeFalse())
		Expect(*c.SecurityContext.Privileged).To(BeFalse())
		Expect(*c.SecurityContext.ReadOnlyRootFilesystem).To(BeTrue())
		Expect(c.SecurityContext.Capabilities.Drop).To(ConsistOf(corev1.Capability("ALL")))
		Expect(c.Resources.Limits.Cpu().Cmp(resource.MustParse("1"))).To(BeNumerically("<=", 0))
		Expect(c.Resources.Limits.Memory().Cmp(resource.MustParse("256Mi"))).To(BeNumerically("<=", 0))

		// No kubelet runs here: the pod is marked running, and the exec the plugin then
		// opens fails. The pod must be gone all the same.
		pod.Status.Phase = corev1.PodRunning
		Expect(k8s.Status().Update(suiteCtx, &pod)).To(Succeed())
		var err error
		Eventually(done).Should(Receive(&err))
		GinkgoWriter.Println("the copy failed with:", err)
		Expect(err).To(MatchError(ContainSubstring("read the images out of pod " + ns + "/" + pod.Name)))
		Expect(string(out.Contents())).To(ContainSubstring("reading 1 images of darkroom/heron through pod " + pod.Name + " on node node-a"))
		Expect(string(out.Contents())).To(ContainSubstring("deleted pod " + pod.Name))
		Expect(readerPods(ns)).To(BeEmpty())
	})

	It("deletes the reader pod when interrupted while it starts", func() {
		ctx, interrupt := context.WithCancel(suiteCtx)
		defer interrupt()
		out := gbytes.NewBuffer()
		done := make(chan error, 1)
		go func() {
			defer GinkgoRecover()
			done <- runAs(ctx, reader, out, "images", "heron", "--out", GinkgoT().TempDir())
		}()
		Eventually(func() []corev1.Pod { return readerPods(ns) }).Should(HaveLen(1))
		interrupt()
		var err error
		Eventually(done).Should(Receive(&err))
		Expect(err).To(MatchError(ContainSubstring("context canceled")))
		Expect(readerPods(ns)).To(BeEmpty())
	})

	It("says which access is missing, and starts no pod, when the user may not exec", func() {
		out := gbytes.NewBuffer()
		err := runAs(suiteCtx, noExec, out, "images", "heron", "--out", GinkgoT().TempDir())
		Expect(err).To(MatchError(ContainSubstring("you may not create pods/exec, get pods/exec there")))
		Expect(err).To(MatchError(ContainSubstring("--gateway")))
		err = runAs(suiteCtx, jobsOnly, out, "images", "heron", "--out", GinkgoT().TempDir())
		Expect(err).To(MatchError(ContainSubstring("you may not create pods, get pods, watch pods, create pods/exec, get pods/exec, delete pods there")))
		Expect(readerPods(ns)).To(BeEmpty())
	})

	It("creates a job with the user's own credentials from the locations given", func() {
		out := gbytes.NewBuffer()
		Expect(runAs(suiteCtx, reader, out, "generate", "a grey heron", "-i", "2", "--size", "64x64", "--seed", "3",
			"--model-location", "pvc:models/sd15", "--output-location", "host:/srv/images")).To(Succeed())
		Expect(out).To(gbytes.Say(`imagegenerationjob.sdfleet.io/(gen-\w+) created in namespace darkroom\n`))
		var jobs sdfleetv1alpha1.ImageGenerationJobList
		Expect(k8s.List(suiteCtx, &jobs, client.InNamespace(ns))).To(Succeed())
		var created *sdfleetv1alpha1.ImageGenerationJob
		for i := range jobs.Items {
			if jobs.Items[i].Spec.Prompt == "a grey heron" {
				created = &jobs.Items[i]
			}
		}
		Expect(created).NotTo(BeNil())
		Expect(created.Spec.Model.PersistentVolumeClaim).To(Equal(&sdfleetv1alpha1.PVCLocation{ClaimName: "models", Path: "sd15"}))
		Expect(created.Spec.Output.HostPath).To(Equal(&sdfleetv1alpha1.HostPathLocation{Path: "/srv/images"}))
		Expect(created.Spec.Images).To(BeEquivalentTo(2))
		Expect(created.Spec.Seed).To(Equal(ptr.To[int64](3)))
	})

	It("refuses before creating a job whose images it could not download", func() {
		var before sdfleetv1alpha1.ImageGenerationJobList
		Expect(k8s.List(suiteCtx, &before, client.InNamespace(ns))).To(Succeed())
		out := gbytes.NewBuffer()
		err := runAs(suiteCtx, jobsOnly, out, "generate", "a grey heron", "--model-location", "pvc:models",
			"--output-location", "pvc:images", "--out", GinkgoT().TempDir())
		Expect(err).To(MatchError(ContainSubstring("you may not create pods")))
		var after sdfleetv1alpha1.ImageGenerationJobList
		Expect(k8s.List(suiteCtx, &after, client.InNamespace(ns))).To(Succeed())
		Expect(after.Items).To(HaveLen(len(before.Items)))
	})

	DescribeTable("names the flag of a location it cannot use",
		func(args []string, want string) {
			err := runAs(suiteCtx, reader, gbytes.NewBuffer(), append([]string{"generate", "x"}, args...)...)
			Expect(err).To(MatchError(ContainSubstring(want)))
		},
		Entry("no location", nil, "without a gateway, --model-location and --output-location say where"),
		Entry("a bad form", []string{"--model-location", "s3://bucket", "--output-location", "pvc:images"},
			`--model-location "s3://bucket": want pvc:CLAIM[/PATH]`),
		Entry("a relative host path", []string{"--model-location", "pvc:m", "--output-location", "host:srv"},
			`--output-location "host:srv"`),
		Entry("a gateway model name", []string{"--model", "tiny"}, `--model "tiny" names one of a gateway's models`),
	)
})

const sha64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
