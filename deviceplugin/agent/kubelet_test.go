package agent_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/sdfleet/sdfleet/deviceplugin/agent"
	"github.com/sdfleet/sdfleet/deviceplugin/config"
	"github.com/sdfleet/sdfleet/deviceplugin/kubelet"
	"github.com/sdfleet/sdfleet/deviceplugin/simulator"
)

// registrar is a kubelet stand-in that records registrations.
type registrar struct {
	pluginapi.UnimplementedRegistrationServer
	resources chan string
}

func (r *registrar) Register(_ context.Context, req *pluginapi.RegisterRequest) (*pluginapi.Empty, error) {
	r.resources <- req.ResourceName
	return &pluginapi.Empty{}, nil
}

var _ = Describe("Node agent and the kubelet", func() {
	It("registers every GPU and withdraws an unhealthy one on its ListAndWatch stream", func() {
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
		r := startAgent(node.Name, twoGPUs, "--enable-kubelet-plugin=true", "--plugin-dir="+dir, "--kubelet-poll-interval=50ms")
		Eventually(reg.resources).Should(Receive(Equal("sdfleet.io/gpu-0")))
		Eventually(reg.resources).Should(Receive(Equal("sdfleet.io/gpu-1")))

		conn, err := grpc.NewClient("unix://"+filepath.Join(dir, kubelet.SocketName(0)), grpc.WithTransportCredentials(insecure.NewCredentials()))
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(conn.Close)
		streamCtx, cancel := context.WithCancel(context.Background())
		DeferCleanup(cancel)
		stream, err := pluginapi.NewDevicePluginClient(conn).ListAndWatch(streamCtx, &pluginapi.Empty{})
		Expect(err).NotTo(HaveOccurred())
		healthOf := func() string {
			list, err := stream.Recv()
			Expect(err).NotTo(HaveOccurred())
			Expect(list.Devices).To(HaveLen(4))
			return list.Devices[0].Health
		}
		Expect(healthOf()).To(Equal(pluginapi.Healthy))
		Expect(r.sim.Inject([]simulator.Step{{GPU: ptr(0), XID: ptr(uint64(79))}})).To(Succeed())
		Expect(healthOf()).To(Equal(pluginapi.Unhealthy))
		Expect(r.agent.Plugins().Registered()).To(BeTrue())
	})

	It("stops with an error when the plugin sockets cannot be served", func() {
		node := newNode()
		file := filepath.Join(GinkgoT().TempDir(), "scenario.yaml")
		Expect(os.WriteFile(file, []byte(twoGPUs), 0o600)).To(Succeed())
		cfg, err := config.Load([]string{"--node-name=" + node.Name, "--gpu-source=simulated", "--simulator-config=" + file,
			"--metrics-bind-address=0", "--health-probe-bind-address=0", "--simulator-control-bind-address=0", "--plugin-dir=/nonexistent/plugins"},
			func(string) string { return "" }, GinkgoWriter)
		Expect(err).NotTo(HaveOccurred())
		src, sim, err := agent.OpenSource(cfg, GinkgoLogr)
		Expect(err).NotTo(HaveOccurred())
		a, err := agent.New(cfg, k8s, src, sim, "test-version", GinkgoLogr)
		Expect(err).NotTo(HaveOccurred())
		done := make(chan error, 1)
		go func() { done <- a.Run(context.Background()) }()
		Eventually(done).WithTimeout(10 * time.Second).Should(Receive(MatchError(ContainSubstring("/nonexistent/plugins"))))
	})
})
