//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	"github.com/sdfleet/sdfleet/test/envtest"
)

const (
	// node is the local cluster's only node.
	node = "localhost"
	// namespace sdfleet is installed into; jobs run in their own namespaces.
	releaseNamespace = "sdfleet-system"
	// gpus is how many simulated GPUs the node agent serves.
	gpus = 4
	// agentPort is the simulator's control endpoint, on the node's loopback (the agent runs on
	// the host network of the local cluster; hack/cluster/sdfleet-values.yaml).
	agentPort = 18083
)

var (
	root       = envtest.RepoRoot()
	kubeconfig string
	k8s        client.Client
	ctx        = context.Background()
	// work holds the test model (read by the image pods through a hostPath) and the images
	// they write.
	work     = "/tmp/sdfleet-e2e"
	modelDir = filepath.Join(work, "models", "tiny")
	// sdxlModelDir holds the tiny SDXL test model, a diffusers folder.
	sdxlModelDir = filepath.Join(work, "models", "tiny-sdxl")
	outDir       = filepath.Join(work, "out")
	kubectl      = filepath.Join(root, "bin", "k8s", envtest.KubernetesVersion, "kubectl")
	helm         = filepath.Join(root, "bin", "helm", "v3.22.0", "helm")
)

func TestE2E(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "sdfleet end to end on a local cluster")
}

// run runs a command from the repository root, streams its output to the Ginkgo log and
// returns its standard output. It fails the test on a non-zero exit.
func run(name string, args ...string) string {
	GinkgoHelper()
	out, err := runErr(name, args...)
	Expect(err).NotTo(HaveOccurred(), "%s %s", name, strings.Join(args, " "))
	return out
}

func runErr(name string, args ...string) (string, error) {
	return runEnvErr(nil, name, args...)
}

// runWithEnv is run with more environment variables, as NAME=VALUE.
func runWithEnv(env []string, name string, args ...string) string {
	GinkgoHelper()
	out, err := runEnvErr(env, name, args...)
	Expect(err).NotTo(HaveOccurred(), "%s %s", name, strings.Join(args, " "))
	return out
}

func runEnvErr(env []string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = root
	cmd.Env = append(append(os.Environ(), "KUBECONFIG="+kubeconfig), env...)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = GinkgoWriter
	fmt.Fprintf(GinkgoWriter, "$ %s %s\n", name, strings.Join(args, " "))
	err := cmd.Run()
	fmt.Fprint(GinkgoWriter, stdout.String())
	return stdout.String(), err
}

var (
	// registry is the local registry the cluster pulls sdfleet's images from.
	registry *localRegistry
	// upgraded is the upgrade of the release from the previous chart, done while the suite is
	// set up, that the upgrade spec judges.
	upgraded *upgradeRun
)

var _ = BeforeSuite(func() {
	ctrllog.SetLogger(GinkgoLogr)
	Expect(os.Geteuid()).To(Equal(0), "the end-to-end suite starts containerd and a kubelet: run it as root")
	run("hack/build-helm.sh")
	previous, current := loadChart(previousChartArchive), loadChart(currentChartDir)

	By("pushing sdfleet's images to a local registry with make push")
	registry = startRegistry()
	registry.push(current.Metadata.AppVersion, previous.Metadata.AppVersion)

	By("starting the local cluster, whose containerd pulls from the registry")
	// A cluster left by an interrupted run is stopped first, so every run starts clean.
	run("hack/cluster/down.sh")
	kubeconfig = strings.TrimSpace(runWithEnv([]string{"LOCAL_REGISTRY=" + registry.host}, "hack/cluster/up.sh"))
	DeferCleanup(func() { run("hack/cluster/down.sh") })
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	Expect(err).NotTo(HaveOccurred())
	k8s, err = client.New(cfg, client.Options{Scheme: envtest.Scheme()})
	Expect(err).NotTo(HaveOccurred())

	By("generating the tiny test model and the output folder")
	Expect(os.RemoveAll(work)).To(Succeed())
	Expect(os.MkdirAll(outDir, 0o755)).To(Succeed())
	// Image pods run as the non-root user 65532 and write here.
	Expect(os.Chown(outDir, 65532, 65532)).To(Succeed())
	run("bin/sdgen", "testmodel", "--size", "tiny", "--layout", "diffusers", "--out", modelDir)
	run("bin/sdgen", "testmodel", "--family", "sdxl", "--size", "tiny", "--layout", "diffusers", "--out", sdxlModelDir)

	By("installing the previous release, chart " + previousChartVersion + ", with four simulated GPUs")
	values := []string{filepath.Join(root, "hack", "cluster", "sdfleet-values.yaml"), filepath.Join(work, "gpus.yaml"), filepath.Join(work, "registry.yaml")}
	Expect(os.WriteFile(values[1], []byte(scenarioValues), 0o644)).To(Succeed())
	// Every release runs the inference image of the current build.
	Expect(os.WriteFile(values[2], []byte(registry.values(current.Metadata.AppVersion)), 0o644)).To(Succeed())
	install := []string{"install", "sdfleet", previousChartArchive, "--namespace", releaseNamespace, "--create-namespace", "--wait", "--timeout", "3m"}
	for _, v := range values {
		install = append(install, "--values", v)
	}
	run(helm, install...)
	waitForGPUs()

	By("upgrading it to the current chart while a job runs")
	upgraded = upgradeWithRunningJob(values)
	forgetLearnedSpeeds()
	waitForGPUs()
})

// waitForGPUs waits for the kubelet to advertise every GPU and the node agent to publish them.
func waitForGPUs() {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		n := &corev1.Node{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Name: node}, n)).To(Succeed())
		for i := 0; i < gpus; i++ {
			q := n.Status.Allocatable[corev1.ResourceName(fmt.Sprintf("%s%d", sdfleetv1alpha1.ResourcePrefix, i))]
			g.Expect(q.Value()).To(BeNumerically(">", 0), "allocatable %s%d", sdfleetv1alpha1.ResourcePrefix, i)
		}
		gn := &sdfleetv1alpha1.GPUNode{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Name: node}, gn)).To(Succeed())
		g.Expect(gn.Status.GPUs).To(HaveLen(gpus))
		g.Expect(gn.Status.Simulated).To(BeTrue())
	}).WithTimeout(2 * time.Minute).WithPolling(time.Second).Should(Succeed())
}

// scenarioValues are four idle simulated GPUs and the suite's folder as the only host path
// jobs may use, on top of hack/cluster/sdfleet-values.yaml.
const scenarioValues = `
jobPolicy:
  allowedHostPathPrefixes: [/tmp/sdfleet-e2e]
simulate:
  scenario:
    gpus:
      - {product: NVIDIA H100 80GB HBM3, memoryMiB: 81920, memoryUsedPercent: 0}
      - {product: NVIDIA H100 80GB HBM3, memoryMiB: 81920, memoryUsedPercent: 0}
      - {product: NVIDIA H100 80GB HBM3, memoryMiB: 81920, memoryUsedPercent: 0}
      - {product: NVIDIA H100 80GB HBM3, memoryMiB: 81920, memoryUsedPercent: 0}
`
