//go:build e2e

package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	"github.com/sdfleet/sdfleet/kubectlplugin/readerpod"
)

// kubectlPlugin runs the kubectl sdfleet binary against the cluster and the gateway, as a user
// would.
func kubectlPlugin() bool {
	return Describe("kubectl sdfleet", Ordered, func() {
		var base, ns, token, plugin, userConfig string
		BeforeAll(func() {
			By("building kubectl-sdfleet as go install would")
			plugin = filepath.Join(work, "kubectl-sdfleet")
			run("go", "build", "-o", plugin, "./cmd/kubectl-sdfleet")
			By("turning the gateway on (a no-op after the gateway's own tests)")
			values := filepath.Join(work, "gateway.yaml")
			Expect(os.WriteFile(values, []byte(gatewayValues()), 0o644)).To(Succeed())
			run(helm, "upgrade", "sdfleet", "charts/sdfleet", "--namespace", releaseNamespace, "--reuse-values",
				"--values", values, "--wait", "--timeout", "3m")
			base = fmt.Sprintf("http://127.0.0.1:%d", gatewayPort)
			ns = newNamespace()
			// Jobs, and the pods a download without the gateway reads them through.
			Expect(k8s.Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "images", Namespace: ns},
				Rules: []rbacv1.PolicyRule{
					{APIGroups: []string{"sdfleet.io"}, Resources: []string{"imagegenerationjobs"}, Verbs: []string{"create", "get", "list", "watch"}},
					{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"create", "get", "list", "watch", "delete"}},
					{APIGroups: []string{""}, Resources: []string{"pods/exec"}, Verbs: []string{"create", "get"}},
				}})).To(Succeed())
			Expect(k8s.Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "artist-images", Namespace: ns},
				RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "images"},
				Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "artist", Namespace: ns}}})).To(Succeed())
			token = serviceAccountToken(ns, "artist")
			userConfig = tokenKubeconfig(ns, token)
			setLoads(0, 0, 0, 0)
		})

		It("generates 4 images with --wait --out, whose files match the job's SHA-256s", func() {
			dir := filepath.Join(GinkgoT().TempDir(), "fox")
			out := run(plugin, "-n", ns, "generate", "a red fox in the snow", "-i", "4", "--size", "64x64",
				"--steps", "2", "--seed", "11", "--wait", "--out", dir, "--gateway", base, "--token", token)
			job := gatewayJob(ns, "native")
			Expect(out).To(ContainSubstring("imagegenerationjob.sdfleet.io/" + job.Name + " created in namespace " + ns))
			Expect(out).To(ContainSubstring(job.Name + ": 4/4 images done, 0 running, 0 failed (Complete)"))
			Expect(job.Status.Images).To(HaveLen(4))
			expectDownloaded(job, dir, out, "a red fox in the snow")
			expectEveryGPU(job)
		})

		It("shows the 4 simulated GPUs with top, and explains the placement", func() {
			out := run(plugin, "top", "-A")
			lines := strings.Split(strings.TrimSpace(out), "\n")
			Expect(lines).To(HaveLen(5), out)
			Expect(strings.Fields(lines[0])[:3]).To(Equal([]string{"NODE", "GPU", "PRODUCT"}))
			for i, line := range lines[1:] {
				Expect(strings.Fields(line)[1]).To(Equal(strconv.Itoa(i)), out)
				Expect(line).To(ContainSubstring("Healthy"))
			}
			job := gatewayJob(ns, "native")
			out = run(plugin, "-n", ns, "explain-placement", job.Name)
			// Each image pod carries the decision: the winner and the three other GPUs compared.
			Expect(strings.Count(out, "Compared at placement:")).To(Equal(4), out)
			Expect(strings.Count(out, "  Chosen (LeastLoaded, by ")).To(Equal(4), out)
			for _, img := range job.Status.Images {
				Expect(out).To(ContainSubstring(fmt.Sprintf("Image %d: Succeeded on %s GPU %d (%s)", img.Index, img.Node, *img.GPUIndex, img.GPUUUID)))
			}
		})

		It("without a gateway, creates the job as the user and reads its PNGs through a reader pod", func() {
			dir := filepath.Join(GinkgoT().TempDir(), "heron")
			out := run(plugin, "--kubeconfig", userConfig, "generate", "a grey heron at dusk", "-i", "2", "--size", "64x64",
				"--steps", "2", "--seed", "21", "--model-location", "host:"+modelDir, "--output-location", "host:"+outDir,
				"--wait", "--out", dir)
			m := regexp.MustCompile(`imagegenerationjob.sdfleet.io/(gen-\w+) created in namespace ` + ns).FindStringSubmatch(out)
			Expect(m).NotTo(BeNil(), out)
			job := &sdfleetv1alpha1.ImageGenerationJob{}
			Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: m[1]}, job)).To(Succeed())
			Expect(job.Status.Images).To(HaveLen(2))
			expectDownloaded(job, dir, out, "a grey heron at dusk")

			By("reading the gateway's job of the spec before through a reader pod too")
			gw := gatewayJob(ns, "native")
			dir = filepath.Join(GinkgoT().TempDir(), "fox")
			out = run(plugin, "--kubeconfig", userConfig, "images", gw.Name, "--out", dir)
			expectDownloaded(gw, dir, out, "a red fox in the snow")

			// Both readers were deleted (the plugin said so); the kubelet stops them within their
			// two-second grace period.
			Eventually(func(g Gomega) {
				var pods corev1.PodList
				g.Expect(k8s.List(ctx, &pods, client.InNamespace(ns),
					client.MatchingLabels{readerpod.LabelComponent: readerpod.ComponentReader})).To(Succeed())
				g.Expect(pods.Items).To(BeEmpty(), "every reader pod is gone")
			}).WithTimeout(time.Minute).WithPolling(time.Second).Should(Succeed())
		})
	})
}

// expectDownloaded checks that every image of job is in dir with the SHA-256 of the job's
// status and the prompt in its parameters, and that out says where it ran.
func expectDownloaded(job *sdfleetv1alpha1.ImageGenerationJob, dir, out, prompt string) {
	GinkgoHelper()
	for _, img := range job.Status.Images {
		Expect(img.Phase).To(Equal(sdfleetv1alpha1.ImageSucceeded))
		file := filepath.Join(dir, fmt.Sprintf("%s-%d.png", job.Name, img.Index))
		data, err := os.ReadFile(file)
		Expect(err).NotTo(HaveOccurred())
		sum := sha256.Sum256(data)
		Expect(hex.EncodeToString(sum[:])).To(Equal(img.SHA256), "image %d", img.Index)
		Expect(pngMetadata(data).Prompt).To(Equal(prompt))
		Expect(out).To(ContainSubstring(fmt.Sprintf("%s\t%s GPU %d (%s)\tseed %d", file, img.Node, *img.GPUIndex, img.GPUUUID, img.Seed)))
	}
}

// tokenKubeconfig is the suite's kubeconfig with token as its only credential (a client
// certificate would win over it), in namespace ns.
func tokenKubeconfig(ns, token string) string {
	GinkgoHelper()
	cfg, err := clientcmd.LoadFromFile(kubeconfig)
	Expect(err).NotTo(HaveOccurred())
	current := cfg.Contexts[cfg.CurrentContext]
	Expect(current).NotTo(BeNil())
	cfg.AuthInfos = map[string]*clientcmdapi.AuthInfo{"user": {Token: token}}
	cfg.Contexts = map[string]*clientcmdapi.Context{"user": {Cluster: current.Cluster, AuthInfo: "user", Namespace: ns}}
	cfg.CurrentContext = "user"
	path := filepath.Join(GinkgoT().TempDir(), "user.kubeconfig")
	Expect(clientcmd.WriteToFile(*cfg, path)).To(Succeed())
	return path
}
