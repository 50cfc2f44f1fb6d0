//go:build e2e

package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
)

// kubectlPlugin runs the kubectl sdfleet binary against the cluster and the gateway, as a user
// would.
func kubectlPlugin() bool {
	return Describe("kubectl sdfleet", Ordered, func() {
		var base, ns, token, plugin string
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
			Expect(k8s.Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "images", Namespace: ns},
				Rules: []rbacv1.PolicyRule{{APIGroups: []string{"sdfleet.io"}, Resources: []string{"imagegenerationjobs"},
					Verbs: []string{"create", "get", "list", "watch"}}}})).To(Succeed())
			Expect(k8s.Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "artist-images", Namespace: ns},
				RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "images"},
				Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "artist", Namespace: ns}}})).To(Succeed())
			token = serviceAccountToken(ns, "artist")
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
			for _, img := range job.Status.Images {
				Expect(img.Phase).To(Equal(sdfleetv1alpha1.ImageSucceeded))
				file := filepath.Join(dir, fmt.Sprintf("%s-%d.png", job.Name, img.Index))
				data, err := os.ReadFile(file)
				Expect(err).NotTo(HaveOccurred())
				sum := sha256.Sum256(data)
				Expect(hex.EncodeToString(sum[:])).To(Equal(img.SHA256), "image %d", img.Index)
				Expect(pngMetadata(data).Prompt).To(Equal("a red fox in the snow"))
				Expect(out).To(ContainSubstring(fmt.Sprintf("%s\t%s GPU %d (%s)\tseed %d", file, img.Node, *img.GPUIndex, img.GPUUUID, img.Seed)))
			}
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
			Expect(strings.Count(out, "Candidates now:")).To(Equal(4), out)
			for _, img := range job.Status.Images {
				Expect(out).To(ContainSubstring(fmt.Sprintf("Image %d: Succeeded on %s GPU %d (%s)", img.Index, img.Node, *img.GPUIndex, img.GPUUUID)))
			}
		})
	})
}
