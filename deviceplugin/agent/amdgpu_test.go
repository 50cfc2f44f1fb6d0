package agent_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	"github.com/sdfleet/sdfleet/controllers/podcontract"
	"github.com/sdfleet/sdfleet/deviceplugin/amdgpu/amdgputest"
	"github.com/sdfleet/sdfleet/deviceplugin/kubelet"
)

// fakeSysfs writes a fake amdgpu sysfs tree for the spec.
func fakeSysfs(cards []amdgputest.Card) *amdgputest.Tree {
	tr, err := amdgputest.New(GinkgoT().TempDir(), cards...)
	Expect(err).NotTo(HaveOccurred())
	return tr
}

var _ = Describe("Node agent with AMD GPUs", func() {
	It("finds an MI25 node's four GPUs with --gpu-source=auto, publishes their loads, follows a change and exports the same metrics", func() {
		node := newNode()
		tr := fakeSysfs(amdgputest.MI25Node())
		r := startAgent(node.Name, "", "--sysfs-root="+tr.Root) // auto is the default: no libnvidia-ml here, AMD GPUs in sysfs

		Eventually(gpuNode(node.Name)).Should(HaveField("Status.GPUCount", int32(4)))
		st := gpuNode(node.Name)(Default).Status
		Expect(st.HealthyGPUs).To(Equal(int32(4)))
		Expect(st.Simulated).To(BeFalse())
		for i, g := range st.GPUs {
			Expect(g.Vendor).To(Equal(sdfleetv1alpha1.GPUVendorAMD))
			Expect(g.ProductName).To(Equal("Radeon Instinct MI25"))
			Expect(g.MemoryTotalBytes).To(Equal(16 * gib))
			Expect(g.MemoryUsedBytes).To(Equal(int64(i) * gib))
			Expect(g.UtilizationPercent).To(Equal(int32(10 * i)))
			Expect(g.TemperatureCelsius).To(Equal(int32(40 + i)))
			Expect(g.PowerWatts).To(Equal(int32(60 + i)))
			Expect(g.ResourceName).To(Equal(sdfleetv1alpha1.ResourcePrefix + string(rune('0'+i))))
			Expect(g.UUID).To(HavePrefix("GPU-"))
		}

		Expect(tr.SetLoad(3, uint64(12*gib), 95)).To(Succeed()) // card3 is GPU 2
		Eventually(gpuOf(node.Name, 2)).WithTimeout(2 * time.Second).Should(And(
			HaveField("MemoryUsedBytes", 12*gib), HaveField("UtilizationPercent", int32(95))))

		for _, name := range []string{"sdfleet_gpu_memory_used_bytes", "sdfleet_gpu_memory_total_bytes", "sdfleet_gpu_utilization_ratio",
			"sdfleet_gpu_temperature_celsius", "sdfleet_gpu_healthy", "sdfleet_gpu_info"} {
			f := metricFamily(r, name)
			Expect(f).NotTo(BeNil(), name)
			Expect(f.GetMetric()).To(HaveLen(4), name)
		}
		info := metricOfGPU(metricFamily(r, "sdfleet_gpu_info"), "1")
		Expect(labels(info)).To(And(HaveKeyWithValue("vendor", "AMD"), HaveKeyWithValue("product", "Radeon Instinct MI25"),
			HaveKeyWithValue("UUID", st.GPUs[1].UUID), HaveKeyWithValue("node", node.Name)))
	})

	It("marks a vanished card, an unreadable file and rising RAS counters unhealthy with the reason, and recovers", func() {
		node := newNode()
		tr := fakeSysfs(amdgputest.MI25Node())
		startAgent(node.Name, "", "--gpu-source=amdgpu", "--sysfs-root="+tr.Root,
			"--health-recovery-quiet-period=300ms", "--health-recovery-probes=2")
		Eventually(gpuNode(node.Name)).Should(HaveField("Status.HealthyGPUs", int32(4)))

		Expect(tr.Vanish(4)).To(Succeed())
		Expect(tr.MakeUnreadable(2, "mem_info_vram_used")).To(Succeed())
		Expect(tr.SetRAS(3, "umc", 2, 0)).To(Succeed())
		Eventually(gpuNode(node.Name)).WithTimeout(3 * time.Second).Should(And(
			HaveField("Status.HealthyGPUs", int32(1)),
			HaveField("Status.GPUs", ContainElements(
				And(HaveField("Index", int32(1)), HaveField("Health", sdfleetv1alpha1.GPUUnhealthy),
					HaveField("HealthReason", And(ContainSubstring("amdgpu sysfs read failed"), ContainSubstring("mem_info_vram_used")))),
				And(HaveField("Index", int32(2)), HaveField("HealthReason", "uncorrectable RAS errors: umc 0 -> 2")),
				And(HaveField("Index", int32(3)), HaveField("HealthReason", "amdgpu: GPU 0000:63:00.0 (card4) vanished from sysfs")),
			))))

		Expect(tr.Restore(4)).To(Succeed())
		Expect(tr.MakeReadable(2, "mem_info_vram_used", "0")).To(Succeed())
		Eventually(gpuNode(node.Name)).WithTimeout(5 * time.Second).Should(HaveField("Status.HealthyGPUs", int32(4)))
	})

	It("cuts a long health reason to the API's limit without splitting a character", func() {
		// A sysfs root deep in folders named in Greek makes the read error's path long.
		root := GinkgoT().TempDir()
		for range 12 {
			root = filepath.Join(root, strings.Repeat("λ", 60))
		}
		Expect(os.MkdirAll(root, 0o755)).To(Succeed())
		tr, err := amdgputest.New(root, amdgputest.MI210Node()...)
		Expect(err).NotTo(HaveOccurred())
		node := newNode()
		startAgent(node.Name, "", "--gpu-source=amdgpu", "--sysfs-root="+tr.Root)
		Eventually(gpuNode(node.Name)).Should(HaveField("Status.HealthyGPUs", int32(1)))

		Expect(tr.MakeUnreadable(1, "mem_info_vram_used")).To(Succeed())
		Eventually(gpuOf(node.Name, 0)).WithTimeout(2 * time.Second).Should(HaveField("Health", sdfleetv1alpha1.GPUUnhealthy))
		reason := gpuOf(node.Name, 0)(Default).HealthReason
		Expect(len(reason)).To(And(BeNumerically("<=", podcontract.MaxMessageLength), BeNumerically(">", podcontract.MaxMessageLength-2)))
		Expect(utf8.ValidString(reason)).To(BeTrue(), "a 2-byte λ must not be cut in half")
		Expect(reason).To(HavePrefix("amdgpu sysfs read failed: read "))
	})

	It("publishes simulated NVIDIA and AMD GPUs side by side", func() {
		node := newNode()
		startAgent(node.Name, "gpus:\n- {}\n- {family: amd, memoryUsedPercent: 50}\n")
		Eventually(gpuNode(node.Name)).Should(HaveField("Status.GPUCount", int32(2)))
		st := gpuNode(node.Name)(Default).Status
		Expect(st.GPUs[0]).To(And(HaveField("Vendor", sdfleetv1alpha1.GPUVendorNVIDIA), HaveField("ProductName", "NVIDIA H100 80GB HBM3")))
		Expect(st.GPUs[1]).To(And(HaveField("Vendor", sdfleetv1alpha1.GPUVendorAMD), HaveField("ProductName", "AMD Instinct MI210"),
			HaveField("MemoryTotalBytes", 64*gib), HaveField("MemoryUsedBytes", 32*gib), HaveField("UUID", MatchRegexp(`^GPU-[0-9a-f]{16}$`))))
	})

	It("gives a container its AMD GPU's device nodes through the kubelet plugin", func() {
		dir, err := os.MkdirTemp("", "ag") // unix socket paths must stay short
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(os.RemoveAll, dir)
		lis, err := net.Listen("unix", filepath.Join(dir, "kubelet.sock"))
		Expect(err).NotTo(HaveOccurred())
		reg := &registrar{resources: make(chan string, 8)}
		srv := grpc.NewServer()
		pluginapi.RegisterRegistrationServer(srv, reg)
		go func() { _ = srv.Serve(lis) }()
		DeferCleanup(srv.Stop)

		node := newNode()
		tr := fakeSysfs(amdgputest.MI210Node())
		startAgent(node.Name, "", "--gpu-source=amdgpu", "--sysfs-root="+tr.Root,
			"--enable-kubelet-plugin=true", "--plugin-dir="+dir, "--kubelet-poll-interval=50ms")
		Eventually(reg.resources).Should(Receive(Equal("sdfleet.io/gpu-0")))

		conn, err := grpc.NewClient("unix://"+filepath.Join(dir, kubelet.SocketName(0)), grpc.WithTransportCredentials(insecure.NewCredentials()))
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(conn.Close)
		resp, err := pluginapi.NewDevicePluginClient(conn).Allocate(context.Background(), &pluginapi.AllocateRequest{
			ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{"GPU-8fd5a2c3b1e04a67::0"}}}})
		Expect(err).NotTo(HaveOccurred())
		c := resp.ContainerResponses[0]
		Expect(c.Devices).To(ConsistOf(
			&pluginapi.DeviceSpec{ContainerPath: "/dev/kfd", HostPath: "/dev/kfd", Permissions: "rw"},
			&pluginapi.DeviceSpec{ContainerPath: "/dev/dri/renderD129", HostPath: "/dev/dri/renderD129", Permissions: "rw"}))
		Expect(c.Envs).To(And(HaveKeyWithValue(podcontract.EnvGPUUUID, "GPU-8fd5a2c3b1e04a67"),
			HaveKeyWithValue(podcontract.EnvGPUPCIBusID, "0000:c1:00.0"), HaveKeyWithValue(podcontract.EnvROCRVisibleDevices, "0"),
			HaveKeyWithValue(podcontract.EnvHIPVisibleDevices, "0"), Not(HaveKey(podcontract.EnvNvidiaVisibleDevices))))
	})
})
