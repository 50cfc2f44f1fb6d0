package kubelet_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/sdfleet/sdfleet/controllers/podcontract"
	"github.com/sdfleet/sdfleet/deviceplugin/gpu"
	"github.com/sdfleet/sdfleet/deviceplugin/kubelet"
)

var testGPUs = []kubelet.GPU{
	{Index: 0, UUID: "GPU-aaaa", ResourceName: "sdfleet.io/gpu-0"},
	{Index: 1, UUID: "GPU-bbbb", ResourceName: "sdfleet.io/gpu-1", Simulated: true},
}

// standIn is a kubelet stand-in: it serves the Registration API on kubelet.sock.
type standIn struct {
	pluginapi.UnimplementedRegistrationServer
	srv  *grpc.Server
	regs chan *pluginapi.RegisterRequest
}

func (k *standIn) Register(_ context.Context, r *pluginapi.RegisterRequest) (*pluginapi.Empty, error) {
	k.regs <- r
	return &pluginapi.Empty{}, nil
}

func startKubelet(t *testing.T, dir string) *standIn {
	t.Helper()
	lis, err := net.Listen("unix", filepath.Join(dir, "kubelet.sock"))
	if err != nil {
		t.Fatalf("stand-in kubelet: %v", err)
	}
	k := &standIn{srv: grpc.NewServer(), regs: make(chan *pluginapi.RegisterRequest, 16)}
	pluginapi.RegisterRegistrationServer(k.srv, k)
	go func() { _ = k.srv.Serve(lis) }()
	t.Cleanup(k.srv.Stop)
	return k
}

// shortDir is a temp dir with a short path: unix socket paths must stay under 108 bytes.
func shortDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "kp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

type fixture struct {
	dir     string
	kubelet *standIn
	manager *kubelet.Manager
	done    chan struct{}
	cancel  context.CancelFunc
}

func start(t *testing.T, strategy string) *fixture {
	t.Helper()
	f, runErr := startWith(t, testGPUs, kubelet.Options{Slots: 4, Strategy: strategy})
	t.Cleanup(func() {
		f.cancel()
		<-f.done
		if err := <-runErr; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return f
}

// startWith runs a manager of gpus with opts (its plugin directory and poll interval set) and
// delivers what Run returned.
func startWith(t *testing.T, gpus []kubelet.GPU, opts kubelet.Options) (*fixture, <-chan error) {
	t.Helper()
	f := &fixture{dir: shortDir(t), done: make(chan struct{})}
	f.kubelet = startKubelet(t, f.dir)
	opts.PluginDir, opts.PollInterval, opts.Log = f.dir, 50*time.Millisecond, logr.Discard()
	var err error
	f.manager, err = kubelet.NewManager(gpus, opts)
	if err != nil {
		t.Fatal(err)
	}
	var ctx context.Context
	ctx, f.cancel = context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() {
		defer close(f.done)
		runErr <- f.manager.Run(ctx)
	}()
	t.Cleanup(func() { f.cancel(); <-f.done })
	return f, runErr
}

// registrations reads n Register calls, keyed by resource.
func (f *fixture) registrations(t *testing.T, n int) map[string]*pluginapi.RegisterRequest {
	t.Helper()
	out := map[string]*pluginapi.RegisterRequest{}
	timeout := time.After(5 * time.Second)
	for len(out) < n {
		select {
		case r := <-f.kubelet.regs:
			out[r.ResourceName] = r
		case <-timeout:
			t.Fatalf("got %d registrations within 5 s, want %d", len(out), n)
		}
	}
	return out
}

func dial(t *testing.T, dir, endpoint string) pluginapi.DevicePluginClient {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+filepath.Join(dir, endpoint), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return pluginapi.NewDevicePluginClient(conn)
}

func TestRegisterListAllocate(t *testing.T) {
	g := NewWithT(t)
	f := start(t, kubelet.StrategyEnvVar)
	regs := f.registrations(t, 2)
	for _, gp := range testGPUs {
		r := regs[gp.ResourceName]
		g.Expect(r).NotTo(BeNil(), gp.ResourceName)
		g.Expect(r.Version).To(Equal(pluginapi.Version))
		g.Expect(r.Endpoint).To(Equal(kubelet.SocketName(gp.Index)))
		g.Expect(r.Options.GetPreferredAllocationAvailable).To(BeTrue())
	}
	g.Eventually(f.manager.Registered).Should(BeTrue())

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, gp := range testGPUs {
		c := dial(t, f.dir, regs[gp.ResourceName].Endpoint)
		stream, err := c.ListAndWatch(ctx, &pluginapi.Empty{})
		g.Expect(err).NotTo(HaveOccurred())
		list, err := stream.Recv()
		g.Expect(err).NotTo(HaveOccurred())
		var ids []string
		for _, d := range list.Devices {
			g.Expect(d.Health).To(Equal(pluginapi.Healthy))
			ids = append(ids, d.ID)
		}
		g.Expect(ids).To(ConsistOf(gp.UUID+"::0", gp.UUID+"::1", gp.UUID+"::2", gp.UUID+"::3"))

		resp, err := c.Allocate(ctx, &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{gp.UUID + "::2"}}}})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(resp.ContainerResponses).To(HaveLen(1))
		want := map[string]string{
			podcontract.EnvNvidiaVisibleDevices:     gp.UUID,
			podcontract.EnvGPUUUID:                  gp.UUID,
			podcontract.EnvGPUIndex:                 map[int]string{0: "0", 1: "1"}[gp.Index],
			podcontract.EnvNvidiaDriverCapabilities: "compute,utility,graphics",
		}
		if gp.Simulated {
			want[podcontract.EnvGPUSimulated] = "true"
		}
		g.Expect(resp.ContainerResponses[0].Envs).To(Equal(want))
		g.Expect(resp.ContainerResponses[0].CdiDevices).To(BeEmpty())

		opts, err := c.GetDevicePluginOptions(ctx, &pluginapi.Empty{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(opts.GetPreferredAllocationAvailable).To(BeTrue())
	}

	// A device of another GPU is refused: a resource binds exactly its own GPU.
	c1 := dial(t, f.dir, kubelet.SocketName(1))
	_, err := c1.Allocate(ctx, &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{"GPU-aaaa::0"}}}})
	g.Expect(status.Code(err)).To(Equal(codes.InvalidArgument))
	g.Expect(err.Error()).To(ContainSubstring("GPU-aaaa::0"))

	pref, err := c1.GetPreferredAllocation(ctx, &pluginapi.PreferredAllocationRequest{ContainerRequests: []*pluginapi.ContainerPreferredAllocationRequest{{
		AvailableDeviceIDs: []string{"GPU-bbbb::3", "GPU-bbbb::1", "GPU-bbbb::2"}, MustIncludeDeviceIDs: []string{"GPU-bbbb::3"}, AllocationSize: 2,
	}}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(pref.ContainerResponses[0].DeviceIDs).To(Equal([]string{"GPU-bbbb::3", "GPU-bbbb::1"}))
}

func TestHealthChangesReachTheStream(t *testing.T) {
	g := NewWithT(t)
	f := start(t, kubelet.StrategyEnvVar)
	f.registrations(t, 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := dial(t, f.dir, kubelet.SocketName(1)).ListAndWatch(ctx, &pluginapi.Empty{})
	g.Expect(err).NotTo(HaveOccurred())
	health := func() string {
		list, err := stream.Recv()
		g.Expect(err).NotTo(HaveOccurred())
		h := list.Devices[0].Health
		for _, d := range list.Devices {
			g.Expect(d.Health).To(Equal(h), "all slots of a GPU share its health")
		}
		return h
	}
	g.Expect(health()).To(Equal(pluginapi.Healthy))
	f.manager.SetHealth(1, false)
	g.Expect(health()).To(Equal(pluginapi.Unhealthy))
	f.manager.SetHealth(1, true)
	g.Expect(health()).To(Equal(pluginapi.Healthy))
}

func TestCDIStrategy(t *testing.T) {
	g := NewWithT(t)
	f := start(t, kubelet.StrategyCDI)
	f.registrations(t, 2)
	resp, err := dial(t, f.dir, kubelet.SocketName(0)).Allocate(context.Background(),
		&pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{"GPU-aaaa::0"}}}})
	g.Expect(err).NotTo(HaveOccurred())
	r := resp.ContainerResponses[0]
	g.Expect(r.CdiDevices).To(HaveLen(1))
	g.Expect(r.CdiDevices[0].Name).To(Equal("nvidia.com/gpu=GPU-aaaa"))
	g.Expect(r.Envs).To(HaveKeyWithValue(podcontract.EnvNvidiaVisibleDevices, "void"))
	g.Expect(r.Envs).To(HaveKeyWithValue(podcontract.EnvGPUUUID, "GPU-aaaa"))
}

func TestKubeletRestartBringsNewRegistrations(t *testing.T) {
	g := NewWithT(t)
	f := start(t, kubelet.StrategyEnvVar)
	f.registrations(t, 2)
	g.Eventually(f.manager.Registered).Should(BeTrue())
	before := f.manager.Registrations()

	// The kubelet restarts: its socket goes away, it empties the plugin directory and comes
	// back with a new socket.
	f.kubelet.srv.Stop()
	entries, err := os.ReadDir(f.dir)
	g.Expect(err).NotTo(HaveOccurred())
	for _, e := range entries {
		_ = os.Remove(filepath.Join(f.dir, e.Name()))
	}
	f.kubelet = startKubelet(t, f.dir)
	regs := f.registrations(t, 2) // fails unless both arrive within 5 s
	g.Expect(regs).To(HaveKey("sdfleet.io/gpu-1"))

	// The plugin sockets were re-created and serve again.
	stream, err := dial(t, f.dir, kubelet.SocketName(1)).ListAndWatch(context.Background(), &pluginapi.Empty{})
	g.Expect(err).NotTo(HaveOccurred())
	list, err := stream.Recv()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(list.Devices).To(HaveLen(4))
	g.Eventually(f.manager.Registrations).Should(BeNumerically(">", before))
}

func TestStaleSocketAndCleanup(t *testing.T) {
	g := NewWithT(t)
	dir := shortDir(t)
	stale := filepath.Join(dir, kubelet.SocketName(0))
	g.Expect(os.WriteFile(stale, []byte("left by a crashed run"), 0o600)).To(Succeed())
	k := startKubelet(t, dir)
	m, err := kubelet.NewManager(testGPUs[:1], kubelet.Options{PluginDir: dir, Slots: 1, Strategy: kubelet.StrategyEnvVar, PollInterval: 50 * time.Millisecond})
	g.Expect(err).NotTo(HaveOccurred())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- m.Run(ctx) }()
	r := <-k.regs
	g.Expect(r.ResourceName).To(Equal("sdfleet.io/gpu-0"))
	info, err := os.Lstat(stale)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(info.Mode() & os.ModeSocket).NotTo(BeZero())

	cancel()
	g.Expect(<-done).To(Succeed())
	_, err = os.Stat(stale)
	g.Expect(os.IsNotExist(err)).To(BeTrue(), "own socket must be removed on shutdown")
	_, err = os.Stat(filepath.Join(dir, "kubelet.sock"))
	g.Expect(err).NotTo(HaveOccurred(), "the kubelet's socket is not ours to remove")
}

func TestOptionErrors(t *testing.T) {
	long := "/" + strings.Repeat("d", 100)
	tests := []struct {
		opts kubelet.Options
		want string
	}{
		{kubelet.Options{PluginDir: long, Slots: 1, Strategy: kubelet.StrategyEnvVar}, "longer than the 107"},
		{kubelet.Options{PluginDir: "/x", Slots: 0, Strategy: kubelet.StrategyEnvVar}, "slots per GPU 0"},
		{kubelet.Options{PluginDir: "/x", Slots: 1, Strategy: "magic"}, `strategy "magic"`},
	}
	for _, tc := range tests {
		if _, err := kubelet.NewManager(testGPUs, tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want %q", tc.opts, err, tc.want)
		}
	}
}

func TestAMDAllocateGivesTheDeviceNodes(t *testing.T) {
	g := NewWithT(t)
	amd := []kubelet.GPU{
		{Index: 2, UUID: "GPU-8fd5a2c3b1e04a67", ResourceName: "sdfleet.io/gpu-2", Vendor: gpu.VendorAMD, PCIBusID: "0000:c1:00.0", RenderNode: "/dev/dri/renderD129"},
		{Index: 3, UUID: "GPU-5e1b7a3c00004000", ResourceName: "sdfleet.io/gpu-3", Vendor: gpu.VendorAMD}, // simulated
	}
	f, _ := startWith(t, amd, kubelet.Options{Slots: 2, Strategy: kubelet.StrategyCDI})
	f.registrations(t, 2)
	allocate := func(index int, id string) *pluginapi.ContainerAllocateResponse {
		resp, err := dial(t, f.dir, kubelet.SocketName(index)).Allocate(context.Background(),
			&pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{id}}}})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(resp.ContainerResponses).To(HaveLen(1))
		return resp.ContainerResponses[0]
	}
	r := allocate(2, "GPU-8fd5a2c3b1e04a67::1")
	g.Expect(r.Devices).To(Equal([]*pluginapi.DeviceSpec{
		{ContainerPath: "/dev/kfd", HostPath: "/dev/kfd", Permissions: "rw"},
		{ContainerPath: "/dev/dri/renderD129", HostPath: "/dev/dri/renderD129", Permissions: "rw"},
	}))
	g.Expect(r.Envs).To(Equal(map[string]string{
		podcontract.EnvGPUUUID: "GPU-8fd5a2c3b1e04a67", podcontract.EnvGPUIndex: "2", podcontract.EnvGPUPCIBusID: "0000:c1:00.0",
		podcontract.EnvROCRVisibleDevices: "0", podcontract.EnvHIPVisibleDevices: "0",
	}), "no NVIDIA variable: the NVIDIA runtime must not act on an AMD GPU")
	g.Expect(r.CdiDevices).To(BeEmpty(), "the CDI strategy names NVIDIA devices only")

	sim := allocate(3, "GPU-5e1b7a3c00004000::0")
	g.Expect(sim.Devices).To(BeEmpty(), "a simulated AMD GPU has no device node to give")
	g.Expect(sim.Envs).To(HaveKeyWithValue(podcontract.EnvGPUUUID, "GPU-5e1b7a3c00004000"))
	g.Expect(sim.Envs).NotTo(HaveKey(podcontract.EnvGPUPCIBusID))
}

func TestADeadServerIsRestartedAndRegisteredAgain(t *testing.T) {
	g := NewWithT(t)
	f := start(t, kubelet.StrategyEnvVar)
	f.registrations(t, 2)
	g.Eventually(f.manager.Registered).Should(BeTrue())

	// A dead server leaves its socket file behind, so nothing but the crash itself tells the
	// manager; the restart replaces the socket (a stat here would race with it).
	f.manager.KillServer(1)
	regs := f.registrations(t, 1)
	g.Expect(regs).To(HaveKey("sdfleet.io/gpu-1"))
	g.Expect(f.manager.Restarts()).To(Equal(int64(1)))
	g.Eventually(func() error {
		_, err := os.Stat(filepath.Join(f.dir, kubelet.SocketName(1)))
		return err
	}).Should(Succeed(), "the restarted server listens on the same socket path")

	stream, err := dial(t, f.dir, kubelet.SocketName(1)).ListAndWatch(context.Background(), &pluginapi.Empty{})
	g.Expect(err).NotTo(HaveOccurred())
	list, err := stream.Recv()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(list.Devices).To(HaveLen(4))
	g.Consistently(f.kubelet.regs).WithTimeout(200*time.Millisecond).ShouldNot(Receive(), "only the restarted resource registers again")
}

func TestServersDyingPastTheCrashBudgetStopTheManager(t *testing.T) {
	g := NewWithT(t)
	f, runErr := startWith(t, testGPUs, kubelet.Options{Slots: 1, Strategy: kubelet.StrategyEnvVar, MaxCrashes: 2})
	f.registrations(t, 2)
	for i := range 2 {
		f.manager.KillServer(i)
		f.registrations(t, 1)
		g.Eventually(f.manager.Restarts).Should(Equal(int64(i + 1)))
	}
	f.manager.KillServer(0)
	g.Eventually(runErr).WithTimeout(5 * time.Second).Should(Receive(MatchError(And(
		ContainSubstring("died 3 times within 1h0m0s, more than the 2 restarts allowed"), ContainSubstring("sdfleet.io/gpu-0")))))
	<-f.done
	_, err := os.Stat(filepath.Join(f.dir, kubelet.SocketName(0)))
	g.Expect(os.IsNotExist(err)).To(BeTrue(), "the sockets are removed when the manager gives up")
}
