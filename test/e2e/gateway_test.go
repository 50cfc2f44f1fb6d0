//go:build e2e

package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	"github.com/sdfleet/sdfleet/gateway"
)

// gatewayPort is where the gateway listens on the host network of the local cluster.
const gatewayPort = 18180

// gatewayValues turn the gateway on, on top of the suite's release (whose values name the
// gateway image of the local registry): the tiny model is the only model and the images go
// where the suite's jobs write theirs.
func gatewayValues() string {
	return fmt.Sprintf(`
gateway:
  enabled: true
  hostNetwork: true
  port: %d
  healthPort: %d
  extraEnv:
    - {name: KUBERNETES_SERVICE_HOST, value: 127.0.0.1}
    - {name: KUBERNETES_SERVICE_PORT, value: "16443"}
  models:
    tiny: {hostPath: {path: %s}}
  defaultModel: tiny
  output: {hostPath: {path: %s}}
  logLevel: debug
`, gatewayPort, gatewayPort+1, modelDir, outDir)
}

func gatewayClients() bool {
	return Describe("The HTTP gateway with real clients", Ordered, func() {
		var base, ns, appToken, strangerToken string
		BeforeAll(func() {
			By("installing the gateway with the release")
			values := filepath.Join(work, "gateway.yaml")
			Expect(os.WriteFile(values, []byte(gatewayValues()), 0o644)).To(Succeed())
			run(helm, "upgrade", "sdfleet", "charts/sdfleet", "--namespace", releaseNamespace, "--reuse-values",
				"--values", values, "--wait", "--timeout", "3m")
			base = fmt.Sprintf("http://127.0.0.1:%d", gatewayPort)

			By("creating a tenant: a service account allowed to make images and one that is not")
			ns = newNamespace()
			Expect(k8s.Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "images", Namespace: ns},
				Rules: []rbacv1.PolicyRule{{APIGroups: []string{"sdfleet.io"}, Resources: []string{"imagegenerationjobs"},
					Verbs: []string{"create", "get", "list", "watch"}}}})).To(Succeed())
			Expect(k8s.Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "app-images", Namespace: ns},
				RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "images"},
				Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "app", Namespace: ns}}})).To(Succeed())
			appToken, strangerToken = serviceAccountToken(ns, "app"), serviceAccountToken(ns, "stranger")
			// Equal load everywhere: the images must cover every GPU.
			setLoads(0, 0, 0, 0)
		})

		It("serves 4 PNGs to the official OpenAI client, one job spread over every GPU", func() {
			dir := GinkgoT().TempDir()
			By("installing the openai package from npm")
			run("npm", "install", "--prefix", dir, "--no-audit", "--no-fund", "--loglevel=error", "openai")
			script := filepath.Join(dir, "generate.mjs")
			Expect(os.WriteFile(script, []byte(openAIScript), 0o644)).To(Succeed())
			cmd := exec.Command("node", script)
			cmd.Env = append(os.Environ(), "OPENAI_API_KEY="+appToken, "OPENAI_BASE_URL="+base+"/v1")
			cmd.Stderr = GinkgoWriter
			out, err := cmd.Output()
			Expect(err).NotTo(HaveOccurred(), "node %s: %s", script, out)
			var images []string
			Expect(json.Unmarshal(out, &images)).To(Succeed(), "output %s", out)
			Expect(images).To(HaveLen(4))
			for _, b64 := range images {
				data, err := base64.StdEncoding.DecodeString(b64)
				Expect(err).NotTo(HaveOccurred())
				meta := pngMetadata(data)
				Expect(meta.Prompt).To(Equal("a lighthouse at dawn"))
				Expect(meta.Width).To(Equal(64))
			}
			job := gatewayJob(ns, "openai")
			Expect(job.Spec.Model.HostPath.Path).To(Equal(modelDir))
			Expect(job.Spec.Image).To(BeEmpty())
			expectEveryGPU(job)
		})

		It("drives txt2img with batch_size 4 and then progress with curl, as AUTOMATIC1111 clients do", func() {
			// The answer holds four base64 PNGs: into a file, not the log.
			answer := filepath.Join(GinkgoT().TempDir(), "txt2img.json")
			run("curl", "-sS", "--fail-with-body", "--max-time", "300", "-o", answer, base+"/sdapi/v1/txt2img",
				"-H", "Authorization: Bearer "+appToken, "-H", "Content-Type: application/json",
				"-d", `{"prompt": "a red fox in the snow", "negative_prompt": "blur", "steps": 2, "width": 64, "height": 64,
				        "seed": 7, "sampler_name": "Euler a", "batch_size": 4, "cfg_scale": 7}`)
			out, err := os.ReadFile(answer)
			Expect(err).NotTo(HaveOccurred())
			var body struct {
				Images []string `json:"images"`
				Info   string   `json:"info"`
			}
			Expect(json.Unmarshal(out, &body)).To(Succeed())
			Expect(body.Images).To(HaveLen(4))
			seeds := map[int64]bool{}
			for _, b64 := range body.Images {
				data, err := base64.StdEncoding.DecodeString(b64)
				Expect(err).NotTo(HaveOccurred())
				seeds[pngMetadata(data).Seed] = true
			}
			Expect(seeds).To(HaveLen(4))
			var info struct{ Job string }
			Expect(json.Unmarshal([]byte(body.Info), &info)).To(Succeed())
			job := gatewayJob(ns, "a1111")
			Expect(info.Job).To(Equal(ns + "/" + job.Name))
			Expect(job.Spec.Sampler).To(Equal(sdfleetv1alpha1.SamplerEulerAncestral))
			expectEveryGPU(job)

			progress := run("curl", "-sS", "--fail-with-body", base+"/sdapi/v1/progress", "-H", "Authorization: Bearer "+appToken)
			var p struct {
				Progress float64 `json:"progress"`
				State    struct {
					Job      string `json:"job"`
					JobCount int    `json:"job_count"`
					JobNo    int    `json:"job_no"`
				} `json:"state"`
			}
			Expect(json.Unmarshal([]byte(progress), &p)).To(Succeed())
			Expect(p.Progress).To(BeNumerically("==", 1))
			Expect(p.State.Job).To(Equal(info.Job))
			Expect(p.State.JobCount).To(Equal(4))
			Expect(p.State.JobNo).To(Equal(4))
		})

		It("refuses a token without rights with 403, naming the verb and namespace", func() {
			cmd := exec.Command("curl", "-sS", "-o", "-", "-w", "\n%{http_code}", base+"/sdapi/v1/txt2img",
				"-H", "Authorization: Bearer "+strangerToken, "-d", `{"prompt": "a"}`)
			out, err := cmd.Output()
			Expect(err).NotTo(HaveOccurred())
			text := strings.TrimSpace(string(out))
			cut := strings.LastIndexByte(text, '\n')
			Expect(cut).To(BeNumerically(">", 0), "curl printed %q", text)
			body, code := text[:cut], text[cut+1:]
			Expect(code).To(Equal("403"))
			Expect(body).To(ContainSubstring("may not create imagegenerationjobs.sdfleet.io in namespace " + ns))
			var list sdfleetv1alpha1.ImageGenerationJobList
			Expect(k8s.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
			Expect(list.Items).To(HaveLen(2), "only the two allowed requests made jobs")
		})
	})
}

// openAIScript asks the gateway for 4 images with the official client and prints their
// base64 PNGs as a JSON array.
const openAIScript = `import OpenAI from "openai";
const client = new OpenAI({ maxRetries: 0, timeout: 300000 });
const result = await client.images.generate({ prompt: "a lighthouse at dawn", n: 4, size: "64x64", response_format: "b64_json" });
console.log(JSON.stringify(result.data.map((d) => d.b64_json)));
`

// serviceAccountToken creates a service account and returns a token from the TokenRequest
// API, as ` + "`kubectl create token`" + ` would.
func serviceAccountToken(ns, name string) string {
	GinkgoHelper()
	Expect(k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}})).To(Succeed())
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	Expect(err).NotTo(HaveOccurred())
	kube, err := kubernetes.NewForConfig(cfg)
	Expect(err).NotTo(HaveOccurred())
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tr, err := kube.CoreV1().ServiceAccounts(ns).CreateToken(tctx, name,
		&authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}}, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	return tr.Status.Token
}

// gatewayJob is the one job the gateway created in ns through api.
func gatewayJob(ns, api string) *sdfleetv1alpha1.ImageGenerationJob {
	GinkgoHelper()
	var list sdfleetv1alpha1.ImageGenerationJobList
	Expect(k8s.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
	var found []sdfleetv1alpha1.ImageGenerationJob
	for _, j := range list.Items {
		if j.Annotations[gateway.AnnotationAPI] == api {
			found = append(found, j)
		}
	}
	Expect(found).To(HaveLen(1), "jobs made through %s in %s", api, ns)
	return &found[0]
}

// expectEveryGPU checks that the job's images ran on every simulated GPU, one each.
func expectEveryGPU(job *sdfleetv1alpha1.ImageGenerationJob) {
	GinkgoHelper()
	var used []string
	for _, img := range job.Status.Images {
		Expect(img.Phase).To(Equal(sdfleetv1alpha1.ImageSucceeded))
		used = append(used, img.GPUUUID)
	}
	var all []string
	for _, uuid := range gpuUUIDs() {
		all = append(all, uuid)
	}
	Expect(used).To(ConsistOf(all), "4 images on 4 GPUs of equal load")
}
