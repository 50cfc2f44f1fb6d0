package kubelet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/go-logr/logr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/sdfleet/sdfleet/controllers/podcontract"
	"github.com/sdfleet/sdfleet/deviceplugin/gpu"
)

// Device-list strategies: how Allocate tells the container runtime which GPU to expose.
const (
	// StrategyEnvVar sets NVIDIA_VISIBLE_DEVICES=<UUID>, for the NVIDIA container runtime.
	StrategyEnvVar = "envvar"
	// StrategyCDI returns the CDI device name through the CRI (kubelet ≥ 1.28), and sets
	// NVIDIA_VISIBLE_DEVICES=void so that an image's own NVIDIA_VISIBLE_DEVICES=all cannot make
	// a legacy-mode runtime expose every GPU.
	StrategyCDI = "cdi-cri"
)

// Strategies lists the valid device-list strategies.
var Strategies = []string{StrategyEnvVar, StrategyCDI}

// CDIKind is the CDI kind nvidia-ctk generates GPU specs under; devices are named by UUID.
const CDIKind = "nvidia.com/gpu"

// deviceIDSeparator separates the GPU UUID from the slot number in a device ID.
const deviceIDSeparator = "::"

// GPU is one physical GPU the manager advertises.
type GPU struct {
	Index        int
	UUID         string
	ResourceName string
	// Vendor decides how Allocate binds the GPU: NVIDIA through the NVIDIA container runtime,
	// AMD through device nodes.
	Vendor gpu.Vendor
	// PCIBusID is the PCI address, set in the container where known.
	PCIBusID string
	// RenderNode is an AMD GPU's /dev/dri/renderD<N>; empty for a simulated one, which gets
	// no device nodes.
	RenderNode string
	// Simulated marks a GPU of the simulator: the container is told so, and computes on the
	// software Vulkan device.
	Simulated bool
}

// DeviceID is the ID of slot k of a GPU.
func DeviceID(uuid string, k int) string { return uuid + deviceIDSeparator + strconv.Itoa(k) }

// plugin serves one GPU's resource.
type plugin struct {
	pluginapi.UnimplementedDevicePluginServer

	gpu      GPU
	slots    int
	strategy string
	socket   string // full path
	log      logr.Logger

	mu       sync.Mutex
	healthy  bool
	watchers map[chan struct{}]struct{}
	server   *grpc.Server
	listener net.Listener
	serveErr error         // why the server died on its own; nil while it serves
	stopped  chan struct{} // closed to end ListAndWatch streams when the server stops
}

func newPlugin(g GPU, slots int, strategy, socket string, log logr.Logger) *plugin {
	return &plugin{gpu: g, slots: slots, strategy: strategy, socket: socket, healthy: true,
		watchers: map[chan struct{}]struct{}{}, log: log.WithValues("resource", g.ResourceName, "uuid", g.UUID)}
}

// start serves the plugin on its socket, replacing a stale socket left by a crashed run. When
// the server dies on its own, the plugin is marked dead and crashed is woken (without
// blocking) so that the manager restarts it.
func (p *plugin) start(crashed chan<- struct{}) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := os.Remove(p.socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale socket %s: %w", p.socket, err)
	}
	lis, err := net.Listen("unix", p.socket)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", p.socket, err)
	}
	// A dying server leaves its socket, as it would if the process hung; stop removes it.
	lis.(*net.UnixListener).SetUnlinkOnClose(false)
	p.server, p.listener, p.serveErr = grpc.NewServer(), lis, nil
	p.stopped = make(chan struct{})
	pluginapi.RegisterDevicePluginServer(p.server, p)
	go func(srv *grpc.Server) {
		err := srv.Serve(lis) // nil after Stop
		if err == nil {
			return
		}
		p.mu.Lock()
		if p.server == srv {
			p.serveErr = err
		}
		p.mu.Unlock()
		select {
		case crashed <- struct{}{}:
		default: // a wake-up is already pending; the manager checks every plugin
		}
	}(p.server)
	return nil
}

// died returns the error its server died of, nil while it serves or after stop.
func (p *plugin) died() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.serveErr
}

// stop ends the server and its streams and removes the socket.
func (p *plugin) stop() {
	p.mu.Lock()
	srv, stopped := p.server, p.stopped
	p.server, p.listener, p.stopped, p.serveErr = nil, nil, nil, nil
	p.mu.Unlock()
	if srv == nil {
		return
	}
	close(stopped)
	srv.Stop()
	if err := os.Remove(p.socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		p.log.Error(err, "cannot remove own socket", "socket", p.socket)
	}
}

// setHealth changes the GPU's health and wakes every ListAndWatch stream.
func (p *plugin) setHealth(healthy bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.healthy == healthy {
		return
	}
	p.healthy = healthy
	for w := range p.watchers {
		select {
		case w <- struct{}{}:
		default: // a wake-up is already pending; the stream sends the newest list anyway
		}
	}
}

func (p *plugin) devices() []*pluginapi.Device {
	p.mu.Lock()
	healthy := p.healthy
	p.mu.Unlock()
	health := pluginapi.Healthy
	if !healthy {
		health = pluginapi.Unhealthy
	}
	out := make([]*pluginapi.Device, p.slots)
	for k := range out {
		out[k] = &pluginapi.Device{ID: DeviceID(p.gpu.UUID, k), Health: health}
	}
	return out
}

// GetDevicePluginOptions says that GetPreferredAllocation is served.
func (p *plugin) GetDevicePluginOptions(context.Context, *pluginapi.Empty) (*pluginapi.DevicePluginOptions, error) {
	return &pluginapi.DevicePluginOptions{GetPreferredAllocationAvailable: true}, nil
}

// ListAndWatch sends the device list, then again on every health change.
func (p *plugin) ListAndWatch(_ *pluginapi.Empty, stream grpc.ServerStreamingServer[pluginapi.ListAndWatchResponse]) error {
	wake := make(chan struct{}, 1)
	p.mu.Lock()
	stopped := p.stopped
	p.watchers[wake] = struct{}{}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.watchers, wake)
		p.mu.Unlock()
	}()
	for {
		if err := stream.Send(&pluginapi.ListAndWatchResponse{Devices: p.devices()}); err != nil {
			return err
		}
		select {
		case <-wake:
		case <-stream.Context().Done():
			return nil
		case <-stopped:
			return nil
		}
	}
}

// GetPreferredAllocation prefers the lowest free slots; every slot is on the same GPU, so any
// choice binds the same hardware and a stable one keeps device IDs predictable.
func (p *plugin) GetPreferredAllocation(_ context.Context, req *pluginapi.PreferredAllocationRequest) (*pluginapi.PreferredAllocationResponse, error) {
	resp := &pluginapi.PreferredAllocationResponse{}
	for _, cr := range req.ContainerRequests {
		chosen := slices.Clone(cr.MustIncludeDeviceIDs)
		available := slices.Clone(cr.AvailableDeviceIDs)
		slices.SortFunc(available, func(a, b string) int { return p.slot(a) - p.slot(b) })
		for _, id := range available {
			if len(chosen) >= int(cr.AllocationSize) {
				break
			}
			if !slices.Contains(chosen, id) {
				chosen = append(chosen, id)
			}
		}
		resp.ContainerResponses = append(resp.ContainerResponses, &pluginapi.ContainerPreferredAllocationResponse{DeviceIDs: chosen})
	}
	return resp, nil
}

// slot is the slot number of one of this GPU's device IDs, or -1.
func (p *plugin) slot(id string) int {
	rest, ok := strings.CutPrefix(id, p.gpu.UUID+deviceIDSeparator)
	if !ok {
		return -1
	}
	k, err := strconv.Atoi(rest)
	if err != nil || k < 0 || k >= p.slots {
		return -1
	}
	return k
}

// Allocate tells the runtime to expose this plugin's GPU, and only it, to each container.
func (p *plugin) Allocate(_ context.Context, req *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	resp := &pluginapi.AllocateResponse{}
	for _, cr := range req.ContainerRequests {
		if len(cr.DevicesIds) == 0 {
			return nil, status.Errorf(codes.InvalidArgument, "allocate %s: a container request names no device", p.gpu.ResourceName)
		}
		for _, id := range cr.DevicesIds {
			if p.slot(id) < 0 {
				return nil, status.Errorf(codes.InvalidArgument, "allocate %s: device %q is not one of its devices (%s::0..%d)",
					p.gpu.ResourceName, id, p.gpu.UUID, p.slots-1)
			}
		}
		car := &pluginapi.ContainerAllocateResponse{Envs: map[string]string{
			podcontract.EnvGPUUUID:  p.gpu.UUID,
			podcontract.EnvGPUIndex: strconv.Itoa(p.gpu.Index),
		}}
		if p.gpu.Simulated {
			car.Envs[podcontract.EnvGPUSimulated] = "true"
		}
		if p.gpu.PCIBusID != "" {
			car.Envs[podcontract.EnvGPUPCIBusID] = p.gpu.PCIBusID
		}
		if p.gpu.Vendor == gpu.VendorAMD {
			bindAMD(car, p.gpu)
			resp.ContainerResponses = append(resp.ContainerResponses, car)
			continue
		}
		car.Envs[podcontract.EnvNvidiaDriverCapabilities] = podcontract.NvidiaDriverCapabilities
		switch p.strategy {
		case StrategyCDI:
			car.Envs[podcontract.EnvNvidiaVisibleDevices] = "void"
			car.CdiDevices = []*pluginapi.CDIDevice{{Name: CDIKind + "=" + p.gpu.UUID}}
		default:
			car.Envs[podcontract.EnvNvidiaVisibleDevices] = p.gpu.UUID
		}
		resp.ContainerResponses = append(resp.ContainerResponses, car)
	}
	p.log.V(1).Info("allocated", "containers", len(req.ContainerRequests))
	return resp, nil
}

// bindAMD gives the container an AMD GPU: ROCm's /dev/kfd and the GPU's render node, which is
// all that compute and Vulkan need (the card node is for display and mode setting). ROCm
// skips GPUs whose render node a process cannot open, so the container's only GPU is ROCm's
// device 0; the visible-devices variables say so in case an image sets them otherwise.
func bindAMD(car *pluginapi.ContainerAllocateResponse, g GPU) {
	car.Envs[podcontract.EnvROCRVisibleDevices] = "0"
	car.Envs[podcontract.EnvHIPVisibleDevices] = "0"
	if g.RenderNode == "" {
		return // simulated: there is no device to give
	}
	for _, dev := range []string{podcontract.KFDDevice, g.RenderNode} {
		car.Devices = append(car.Devices, &pluginapi.DeviceSpec{ContainerPath: dev, HostPath: dev, Permissions: "rw"})
	}
}

// PreStartContainer is not requested (PreStartRequired is false); it answers for completeness.
func (p *plugin) PreStartContainer(context.Context, *pluginapi.PreStartContainerRequest) (*pluginapi.PreStartContainerResponse, error) {
	return &pluginapi.PreStartContainerResponse{}, nil
}
