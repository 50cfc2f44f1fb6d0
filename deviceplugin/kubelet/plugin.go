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

// Environment variables Allocate sets in every container that gets a GPU.
const (
	EnvNvidiaVisibleDevices = "NVIDIA_VISIBLE_DEVICES"
	// EnvNvidiaDriverCapabilities includes graphics so that the NVIDIA container toolkit
	// mounts the driver's Vulkan ICD, which sdgen's Vulkan backend needs.
	EnvNvidiaDriverCapabilities = "NVIDIA_DRIVER_CAPABILITIES"
	EnvGPUUUID                  = podcontract.EnvGPUUUID
	EnvGPUIndex                 = "SDFLEET_GPU_INDEX"
	// EnvGPUSimulated is set to "true" for a simulated GPU only.
	EnvGPUSimulated = podcontract.EnvGPUSimulated
)

// DriverCapabilities is the value of NVIDIA_DRIVER_CAPABILITIES.
const DriverCapabilities = "compute,utility,graphics"

// deviceIDSeparator separates the GPU UUID from the slot number in a device ID.
const deviceIDSeparator = "::"

// GPU is one physical GPU the manager advertises.
type GPU struct {
	Index        int
	UUID         string
	ResourceName string
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
	stopped  chan struct{} // closed to end ListAndWatch streams when the server stops
}

func newPlugin(g GPU, slots int, strategy, socket string, log logr.Logger) *plugin {
	return &plugin{gpu: g, slots: slots, strategy: strategy, socket: socket, healthy: true,
		watchers: map[chan struct{}]struct{}{}, log: log.WithValues("resource", g.ResourceName, "uuid", g.UUID)}
}

// start serves the plugin on its socket, replacing a stale socket left by a crashed run.
func (p *plugin) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := os.Remove(p.socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale socket %s: %w", p.socket, err)
	}
	lis, err := net.Listen("unix", p.socket)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", p.socket, err)
	}
	p.server = grpc.NewServer()
	p.stopped = make(chan struct{})
	pluginapi.RegisterDevicePluginServer(p.server, p)
	go func(srv *grpc.Server) {
		if err := srv.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			p.log.Error(err, "device plugin server stopped")
		}
	}(p.server)
	return nil
}

// stop ends the server and its streams and removes the socket.
func (p *plugin) stop() {
	p.mu.Lock()
	srv, stopped := p.server, p.stopped
	p.server, p.stopped = nil, nil
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
			EnvGPUUUID:                  p.gpu.UUID,
			EnvGPUIndex:                 strconv.Itoa(p.gpu.Index),
			EnvNvidiaDriverCapabilities: DriverCapabilities,
		}}
		if p.gpu.Simulated {
			car.Envs[EnvGPUSimulated] = "true"
		}
		switch p.strategy {
		case StrategyCDI:
			car.Envs[EnvNvidiaVisibleDevices] = "void"
			car.CdiDevices = []*pluginapi.CDIDevice{{Name: CDIKind + "=" + p.gpu.UUID}}
		default:
			car.Envs[EnvNvidiaVisibleDevices] = p.gpu.UUID
		}
		resp.ContainerResponses = append(resp.ContainerResponses, car)
	}
	p.log.V(1).Info("allocated", "containers", len(req.ContainerRequests))
	return resp, nil
}

// PreStartContainer is not requested (PreStartRequired is false); it answers for completeness.
func (p *plugin) PreStartContainer(context.Context, *pluginapi.PreStartContainerRequest) (*pluginapi.PreStartContainerResponse, error) {
	return &pluginapi.PreStartContainerResponse{}, nil
}
