package kubelet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// maxSocketPath is the longest path a unix socket may have on Linux (sun_path is 108 bytes with
// its terminating NUL).
const maxSocketPath = 107

// registerTimeout bounds one Register call, and the check that a plugin's own socket answers
// before it: both answer at once or not at all.
const registerTimeout = 5 * time.Second

// Defaults of the crash budget: like NVIDIA's plugin, a server that keeps dying makes the agent
// exit, so that the DaemonSet restarts the pod, rather than be restarted forever.
const (
	DefaultMaxCrashes  = 5
	DefaultCrashWindow = time.Hour
)

// Options configure a Manager.
type Options struct {
	// PluginDir holds kubelet.sock and the plugin sockets, normally
	// /var/lib/kubelet/device-plugins.
	PluginDir string
	// Slots is the number of device IDs per GPU: images allowed on it at once.
	Slots int
	// Strategy is StrategyEnvVar or StrategyCDI.
	Strategy string
	// PollInterval is how often kubelet.sock is checked for re-creation; the kubelet gets the
	// registrations again within about one interval. Zero means one second.
	PollInterval time.Duration
	// MaxCrashes is how many times the plugin servers may die within CrashWindow and be
	// restarted; one more makes Run fail. Zero means DefaultMaxCrashes (DefaultCrashWindow).
	MaxCrashes  int
	CrashWindow time.Duration
	Log         logr.Logger
}

// Validate names the first wrong option.
func (o Options) Validate() error {
	if o.PluginDir == "" {
		return errors.New("plugin directory is empty")
	}
	if o.Slots < 1 {
		return fmt.Errorf("slots per GPU %d must be at least 1", o.Slots)
	}
	if !slices.Contains(Strategies, o.Strategy) {
		return fmt.Errorf("device list strategy %q is not one of %v", o.Strategy, Strategies)
	}
	return nil
}

// Manager runs one plugin per GPU and keeps them registered with the kubelet.
type Manager struct {
	opts    Options
	plugins []*plugin
	byIndex map[int]*plugin
	kubelet string
	// registrations counts successful Register rounds, for readiness and tests.
	registrations atomic.Int64
	mu            sync.Mutex
	registered    bool
	// crashed wakes Run when a plugin server dies; crashes are the times they did, within the
	// window.
	crashed  chan struct{}
	crashes  []time.Time
	restarts atomic.Int64
}

// SocketName is the file name of a GPU's plugin socket.
func SocketName(index int) string { return fmt.Sprintf("sdfleet-gpu-%d.sock", index) }

// NewManager checks the options and socket paths; nothing is served until Run.
func NewManager(gpus []GPU, opts Options) (*Manager, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = time.Second
	}
	if opts.MaxCrashes <= 0 {
		opts.MaxCrashes = DefaultMaxCrashes
	}
	if opts.CrashWindow <= 0 {
		opts.CrashWindow = DefaultCrashWindow
	}
	m := &Manager{opts: opts, byIndex: map[int]*plugin{}, crashed: make(chan struct{}, 1), kubelet: filepath.Join(opts.PluginDir, filepath.Base(pluginapi.KubeletSocket))}
	if len(m.kubelet) > maxSocketPath {
		return nil, fmt.Errorf("kubelet socket path %s is %d bytes, longer than the %d a unix socket allows", m.kubelet, len(m.kubelet), maxSocketPath)
	}
	for _, g := range gpus {
		socket := filepath.Join(opts.PluginDir, SocketName(g.Index))
		if len(socket) > maxSocketPath {
			return nil, fmt.Errorf("plugin socket path %s is %d bytes, longer than the %d a unix socket allows", socket, len(socket), maxSocketPath)
		}
		p := newPlugin(g, opts.Slots, opts.Strategy, socket, opts.Log)
		m.plugins = append(m.plugins, p)
		m.byIndex[g.Index] = p
	}
	return m, nil
}

// SetHealth advertises a GPU's devices as healthy or not on its ListAndWatch streams.
func (m *Manager) SetHealth(index int, healthy bool) {
	if p, ok := m.byIndex[index]; ok {
		p.setHealth(healthy)
	}
}

// Registered says whether every resource is registered with the current kubelet.
func (m *Manager) Registered() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.registered
}

// Registrations counts the successful rounds of registering every resource.
func (m *Manager) Registrations() int64 { return m.registrations.Load() }

// Restarts counts the plugin servers restarted after dying.
func (m *Manager) Restarts() int64 { return m.restarts.Load() }

// Run serves every plugin, registers them with the kubelet and re-registers when the kubelet
// restarts, until ctx ends; then it stops the servers and removes their sockets. A server that
// dies is restarted and registered again; one death more than the crash budget allows makes
// Run fail.
func (m *Manager) Run(ctx context.Context) error {
	if len(m.plugins) == 0 {
		<-ctx.Done()
		return nil
	}
	defer func() {
		for _, p := range m.plugins {
			p.stop()
		}
	}()
	for _, p := range m.plugins {
		if err := p.start(m.crashed); err != nil {
			return err
		}
	}
	ticker := time.NewTicker(m.opts.PollInterval)
	defer ticker.Stop()
	var current os.FileInfo // the kubelet.sock registered with, nil if none
	for {
		info, err := os.Stat(m.kubelet)
		switch {
		case err != nil:
			if current != nil {
				m.opts.Log.Info("kubelet socket gone; waiting for the kubelet to come back", "socket", m.kubelet)
			}
			current = nil
			m.setRegistered(false)
		case current == nil || !sameSocket(current, info) || m.socketMissing():
			m.setRegistered(false)
			if err := m.registerAll(ctx); err != nil {
				m.opts.Log.Error(err, "registration with the kubelet failed; retrying", "socket", m.kubelet)
				break
			}
			current = info
			m.setRegistered(true)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		case <-m.crashed:
		}
		failed, err := m.restartDead(ctx, current != nil)
		if err != nil {
			return err
		}
		if failed {
			current = nil // register everything again on the next round
		}
	}
}

// restartDead restarts every plugin whose server died, within the crash budget, and registers
// it again when the kubelet is there; failed says that a registration failed.
func (m *Manager) restartDead(ctx context.Context, kubeletUp bool) (failed bool, err error) {
	for _, p := range m.plugins {
		died := p.died()
		if died == nil {
			continue
		}
		now := time.Now()
		m.crashes = slices.DeleteFunc(m.crashes, func(t time.Time) bool { return now.Sub(t) >= m.opts.CrashWindow })
		m.crashes = append(m.crashes, now)
		if len(m.crashes) > m.opts.MaxCrashes {
			return false, fmt.Errorf("the plugin servers died %d times within %s, more than the %d restarts allowed; last, %s: %w",
				len(m.crashes), m.opts.CrashWindow, m.opts.MaxCrashes, p.gpu.ResourceName, died)
		}
		m.opts.Log.Error(died, "device plugin server died; restarting it", "resource", p.gpu.ResourceName,
			"crashes", len(m.crashes), "window", m.opts.CrashWindow.String(), "maxCrashes", m.opts.MaxCrashes)
		p.stop()
		if err := p.start(m.crashed); err != nil {
			return false, err
		}
		m.restarts.Add(1)
		if !kubeletUp {
			continue // registered with the rest when the kubelet comes
		}
		if err := m.register(ctx, p); err != nil {
			m.opts.Log.Error(err, "registration after a restart failed; retrying", "resource", p.gpu.ResourceName)
			m.setRegistered(false)
			failed = true
		}
	}
	return failed, nil
}

// sameSocket says whether two stats are of the same kubelet.sock. A re-created socket may get
// the freed inode back, so the creation time is compared too.
func sameSocket(a, b os.FileInfo) bool {
	return os.SameFile(a, b) && a.ModTime().Equal(b.ModTime())
}

// socketMissing says whether a plugin socket disappeared: a restarting kubelet empties the
// directory, sometimes before its own socket visibly changes.
func (m *Manager) socketMissing() bool {
	for _, p := range m.plugins {
		if _, err := os.Stat(p.socket); err != nil {
			return true
		}
	}
	return false
}

func (m *Manager) setRegistered(v bool) {
	m.mu.Lock()
	m.registered = v
	m.mu.Unlock()
}

// registerAll (re)starts plugins whose socket disappeared (a restarting kubelet empties the
// plugin directory) and registers every resource.
func (m *Manager) registerAll(ctx context.Context) error {
	for _, p := range m.plugins {
		if _, err := os.Stat(p.socket); err != nil {
			p.stop()
			if err := p.start(m.crashed); err != nil {
				return err
			}
		}
	}
	for _, p := range m.plugins {
		if err := m.register(ctx, p); err != nil {
			return err
		}
	}
	m.registrations.Add(1)
	return nil
}

// register checks that the plugin answers on its own socket, then registers it: the kubelet
// would otherwise accept an endpoint it cannot reach and the GPU would silently never be
// allocatable.
func (m *Manager) register(ctx context.Context, p *plugin) error {
	if err := dialOwn(ctx, p.socket); err != nil {
		return fmt.Errorf("%s: own socket %s does not answer: %w", p.gpu.ResourceName, p.socket, err)
	}
	conn, err := grpc.NewClient("unix://"+m.kubelet, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("connect to the kubelet at %s: %w", m.kubelet, err)
	}
	defer conn.Close()
	rctx, cancel := context.WithTimeout(ctx, registerTimeout)
	defer cancel()
	_, err = pluginapi.NewRegistrationClient(conn).Register(rctx, &pluginapi.RegisterRequest{
		Version:      pluginapi.Version,
		Endpoint:     filepath.Base(p.socket),
		ResourceName: p.gpu.ResourceName,
		Options:      &pluginapi.DevicePluginOptions{GetPreferredAllocationAvailable: true},
	})
	if err != nil {
		return fmt.Errorf("register %s: %w", p.gpu.ResourceName, err)
	}
	m.opts.Log.Info("registered with the kubelet", "resource", p.gpu.ResourceName, "uuid", p.gpu.UUID, "endpoint", filepath.Base(p.socket))
	return nil
}

// dialOwn asks a plugin socket for its options, as the kubelet will.
func dialOwn(ctx context.Context, socket string) error {
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	dctx, cancel := context.WithTimeout(ctx, registerTimeout)
	defer cancel()
	_, err = pluginapi.NewDevicePluginClient(conn).GetDevicePluginOptions(dctx, &pluginapi.Empty{}, grpc.WaitForReady(true))
	return err
}
