package main_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gbytes"
	"github.com/onsi/gomega/gexec"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	"github.com/sdfleet/sdfleet/deviceplugin/amdgpu/amdgputest"
)

var ctx = context.Background()

// cleanEnv keeps the test's own SDFLEET_* variables away from the binary.
func cleanEnv() []string { return []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")} }

func start(args ...string) *gexec.Session {
	cmd := exec.Command(binary, args...)
	cmd.Env = cleanEnv()
	session, err := gexec.Start(cmd, GinkgoWriter, GinkgoWriter)
	Expect(err).NotTo(HaveOccurred())
	return session
}

func newNode(name string) {
	Expect(k8s.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}})).To(Succeed())
}

// agentArgs are the flags of a binary under test: fast intervals, ephemeral ports, a private
// plugin directory.
func agentArgs(node string, extra ...string) []string {
	dir, err := os.MkdirTemp("", "dp")
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(os.RemoveAll, dir)
	return append([]string{"--node-name=" + node, "--kubeconfig=" + kubeconfig, "--sample-interval=200ms",
		"--heartbeat-interval=2s", "--metrics-bind-address=127.0.0.1:0", "--health-probe-bind-address=127.0.0.1:0",
		"--simulator-control-bind-address=localhost:0", "--plugin-dir=" + dir, "--sysfs-root=" + GinkgoT().TempDir()}, extra...)
}

// servedAddresses reads the "serving HTTP" log lines for the ports the binary bound.
func servedAddresses(log []byte) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(string(log)))
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) == nil && line["msg"] == "serving HTTP" {
			out = append(out, fmt.Sprint(line["address"]))
		}
	}
	return out
}

func get(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// probeAddress finds which bound address serves path with 200.
func probeAddress(session *gexec.Session, path string) string {
	var found string
	Eventually(func() string {
		for _, a := range servedAddresses(session.Err.Contents()) {
			if code, _ := get("http://" + a + path); code == http.StatusOK {
				found = a
				return a
			}
		}
		return ""
	}).WithTimeout(20 * time.Second).ShouldNot(BeEmpty())
	return found
}

func gpuNode(name string) func(g Gomega) *sdfleetv1alpha1.GPUNode {
	return func(g Gomega) *sdfleetv1alpha1.GPUNode {
		var gn sdfleetv1alpha1.GPUNode
		g.Expect(k8s.Get(ctx, client.ObjectKey{Name: name}, &gn)).To(Succeed())
		return &gn
	}
}

var _ = Describe("deviceplugin binary", func() {
	It("documents every flag with --help and exits 0", func() {
		s := start("--help")
		Eventually(s).Should(gexec.Exit(0))
		for _, flag := range []string{"--node-name", "--gpu-source", "--simulator-config", "--slots-per-gpu", "--device-list-strategy",
			"--sample-interval", "--heartbeat-interval", "--ignored-xids", "--metrics-bind-address", "--health-probe-bind-address", "--simulator-control-bind-address"} {
			Expect(string(s.Err.Contents())).To(ContainSubstring(flag))
		}
	})

	It("refuses a wrong value with a message naming it", func() {
		s := start("--node-name=n", "--slots-per-gpu=0", "--device-list-strategy=magic")
		Eventually(s).Should(gexec.Exit(2))
		Expect(s.Err).To(gbytes.Say("--slots-per-gpu=0"))
		Expect(string(s.Err.Contents())).To(ContainSubstring("--device-list-strategy=magic"))
	})

	It("starts without libnvidia-ml, publishes a GPUNode with zero GPUs, serves probes and exits 0 on SIGTERM", func() {
		newNode("cpu-only")
		s := start(agentArgs("cpu-only")...)
		Eventually(s.Err).WithTimeout(20 * time.Second).Should(gbytes.Say("libnvidia-ml.so.1 not found"))
		Eventually(s.Err).WithTimeout(20 * time.Second).Should(gbytes.Say("no NVIDIA or AMD GPU on this node"))
		Eventually(gpuNode("cpu-only")).WithTimeout(20 * time.Second).Should(And(
			HaveField("Status.GPUCount", int32(0)), HaveField("Status.LastHeartbeatTime", Not(BeNil())),
			HaveField("Status.AgentVersion", "dev")))

		probes := probeAddress(s, "/readyz")
		code, _ := get("http://" + probes + "/healthz")
		Expect(code).To(Equal(http.StatusOK))
		metrics := probeAddress(s, "/metrics")
		_, body := get("http://" + metrics + "/metrics")
		Expect(body).To(ContainSubstring(`sdfleet_deviceplugin_api_writes_total{node="cpu-only",object="gpunode-status"}`))
		// Without simulation there is no control endpoint anywhere.
		for _, a := range servedAddresses(s.Err.Contents()) {
			code, _ := get("http://" + a + "/simulator")
			Expect(code).To(Equal(http.StatusNotFound), "%s/simulator", a)
		}

		Expect(s.Command.Process.Signal(syscall.SIGTERM)).To(Succeed())
		Eventually(s).WithTimeout(10 * time.Second).Should(gexec.Exit(0))
	})

	It("publishes the GPUs of a fake amdgpu sysfs tree with their loads", func() {
		newNode("amd")
		tree, err := amdgputest.New(GinkgoT().TempDir(), amdgputest.MI25Node()...)
		Expect(err).NotTo(HaveOccurred())
		s := start(agentArgs("amd", "--gpu-source", "amdgpu", "--sysfs-root", tree.Root)...)
		Eventually(gpuNode("amd")).WithTimeout(20 * time.Second).Should(And(
			HaveField("Status.GPUCount", int32(4)), HaveField("Status.HealthyGPUs", int32(4)),
			HaveField("Status.GPUs", ContainElement(And(HaveField("Vendor", sdfleetv1alpha1.GPUVendorAMD),
				HaveField("ProductName", "Radeon Instinct MI25"), HaveField("ResourceName", "sdfleet.io/gpu-3"),
				HaveField("MemoryUsedBytes", int64(3)<<30), HaveField("UtilizationPercent", int32(30)))))))
		s.Terminate()
		Eventually(s).WithTimeout(10 * time.Second).Should(gexec.Exit(0))
	})

	It("runs the sample simulator scenario and takes load changes at its control endpoint", func() {
		newNode("simulated")
		sample, err := filepath.Abs(filepath.Join("..", "..", "config", "samples", "simulator", "gpus.yaml"))
		Expect(err).NotTo(HaveOccurred())
		s := start(agentArgs("simulated", "--gpu-source=simulated", "--simulator-config="+sample)...)
		Eventually(gpuNode("simulated")).WithTimeout(20 * time.Second).Should(And(
			HaveField("Status.GPUCount", int32(4)), HaveField("Status.Simulated", true),
			HaveField("Status.GPUs", ContainElement(And(HaveField("ProductName", "NVIDIA L40S"), HaveField("ResourceName", "sdfleet.io/gpu-2"))))))

		// The control endpoint has its own loopback address, not the probes'.
		probes := probeAddress(s, "/readyz")
		control := probeAddress(s, "/simulator")
		Expect(control).NotTo(Equal(probes))
		Expect(control).To(Or(HavePrefix("127.0.0.1:"), HavePrefix("[::1]:")))
		code, _ := get("http://" + probes + "/simulator")
		Expect(code).To(Equal(http.StatusNotFound))
		resp, err := http.Post("http://"+control+"/simulator", "application/yaml", strings.NewReader("steps:\n- {gpu: 3, memoryUsedPercent: 50}\n"))
		Expect(err).NotTo(HaveOccurred())
		resp.Body.Close()
		Expect(resp.StatusCode).To(Equal(http.StatusOK))
		Eventually(func(g Gomega) int64 {
			gn := gpuNode("simulated")(g)
			g.Expect(gn.Status.GPUs).To(HaveLen(4))
			return gn.Status.GPUs[3].MemoryUsedBytes
		}).WithTimeout(5 * time.Second).Should(Equal(int64(81920) << 20 / 2))

		s.Terminate()
		Eventually(s).WithTimeout(10 * time.Second).Should(gexec.Exit(0))
	})
})
