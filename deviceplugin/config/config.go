package config

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"sigs.k8s.io/yaml"

	"github.com/sdfleet/sdfleet/deviceplugin/health"
	"github.com/sdfleet/sdfleet/deviceplugin/kubelet"
)

// GPU sources.
const (
	// SourceAuto uses NVML where libnvidia-ml loads and amdgpu where sysfs shows AMD GPUs;
	// both on a node with both.
	SourceAuto      = "auto"
	SourceNVML      = "nvml"
	SourceAMDGPU    = "amdgpu"
	SourceSimulated = "simulated"
)

// Sources lists the valid GPU sources.
var Sources = []string{SourceAuto, SourceNVML, SourceAMDGPU, SourceSimulated}

// EnvPrefix starts the environment variable of every flag: --sample-interval is
// SDFLEET_SAMPLE_INTERVAL.
const EnvPrefix = "SDFLEET_"

// FlagConfigFile names the optional settings file.
const FlagConfigFile = "config"

// Config is every setting of the node agent.
type Config struct {
	NodeName   string
	Kubeconfig string

	GPUSource               string
	SysfsRoot               string
	SimulatorConfig         string
	SimulatorReloadInterval time.Duration
	VisibleGPUs             []string

	EnableKubeletPlugin bool
	PluginDir           string
	SlotsPerGPU         int
	DeviceListStrategy  string
	KubeletPollInterval time.Duration

	SampleInterval        time.Duration
	HeartbeatInterval     time.Duration
	MemoryChangeThreshold float64

	IgnoredXIDs         []uint64
	RecoveryQuietPeriod time.Duration
	RecoveryProbes      int

	MetricsBindAddress     string
	HealthProbeBindAddress string
	// SimulatorControlBindAddress serves the simulator's unauthenticated control endpoint
	// (/simulator) in simulated mode only; loopback by default.
	SimulatorControlBindAddress string
	LogLevel                    string
}

// ErrHelp is returned by Load when --help was asked for; the usage has been written.
var ErrHelp = pflag.ErrHelp

// Load reads the settings. getenv is os.Getenv outside tests; usage text goes to out.
func Load(args []string, getenv func(string) string, out io.Writer) (*Config, error) {
	c := &Config{}
	var xids, visible, configFile string
	fs := pflag.NewFlagSet("deviceplugin", pflag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&configFile, FlagConfigFile, "", "optional YAML `file` of settings keyed by flag name, for example \"sample-interval: 2s\"; flags and environment variables override it")
	fs.StringVar(&c.NodeName, "node-name", "", "name of the Node this agent runs on (required; set it from spec.nodeName through the downward API)")
	fs.StringVar(&c.Kubeconfig, "kubeconfig", "", "kubeconfig file to reach the API server; empty uses the in-cluster service account")
	fs.StringVar(&c.GPUSource, "gpu-source", SourceAuto, "where GPUs come from: auto (NVML and amdgpu, whichever the node has, both on a mixed node), nvml (libnvidia-ml, loaded at run time), amdgpu (the amdgpu driver's sysfs) or simulated (see --simulator-config); a node without any publishes zero GPUs")
	fs.StringVar(&c.SysfsRoot, "sysfs-root", "/sys", "where sysfs is mounted, read for AMD GPUs (a fake tree in tests)")
	fs.StringVar(&c.SimulatorConfig, "simulator-config", "", "YAML scenario of the simulated GPUs, their load timeline and injected failures (required with --gpu-source=simulated; re-read when it changes)")
	fs.DurationVar(&c.SimulatorReloadInterval, "simulator-reload-interval", time.Second, "how often the simulator scenario file is checked for changes")
	fs.StringVar(&visible, "visible-gpus", "all", "GPUs to manage, by index or UUID, comma-separated (like CUDA_VISIBLE_DEVICES), or all")
	fs.BoolVar(&c.EnableKubeletPlugin, "enable-kubelet-plugin", true, "serve the kubelet device-plugin API; false only publishes load (for nodes whose GPUs another plugin advertises)")
	fs.StringVar(&c.PluginDir, "plugin-dir", "/var/lib/kubelet/device-plugins", "directory of kubelet.sock and the plugin sockets")
	fs.IntVar(&c.SlotsPerGPU, "slots-per-gpu", 4, "device IDs advertised per GPU: images allowed on one GPU at once")
	fs.StringVar(&c.DeviceListStrategy, "device-list-strategy", kubelet.StrategyEnvVar, "how Allocate names the GPU to the runtime: envvar (NVIDIA_VISIBLE_DEVICES=<UUID>) or cdi-cri (CDI device nvidia.com/gpu=<UUID>)")
	fs.DurationVar(&c.KubeletPollInterval, "kubelet-poll-interval", time.Second, "how often kubelet.sock is checked for re-creation (a kubelet restart) to register again")
	fs.DurationVar(&c.SampleInterval, "sample-interval", time.Second, "how often every GPU is sampled")
	fs.DurationVar(&c.HeartbeatInterval, "heartbeat-interval", 10*time.Second, "longest time between two GPUNode status writes when nothing changes")
	fs.Float64Var(&c.MemoryChangeThreshold, "memory-change-threshold", 2, "move of one GPU's memory use, in percentage points, that is published at once")
	fs.StringVar(&xids, "ignored-xids", joinXIDs(health.DefaultIgnoredXIDs), "application Xids that do not make a GPU unhealthy, comma-separated; empty ignores none")
	fs.DurationVar(&c.RecoveryQuietPeriod, "health-recovery-quiet-period", 2*time.Minute, "time without any failure before an unhealthy GPU may become healthy again")
	fs.IntVar(&c.RecoveryProbes, "health-recovery-probes", 5, "consecutive successful probes an unhealthy GPU needs to become healthy again")
	fs.StringVar(&c.MetricsBindAddress, "metrics-bind-address", ":8082", "address of the Prometheus /metrics endpoint; 0 disables it")
	fs.StringVar(&c.HealthProbeBindAddress, "health-probe-bind-address", ":8081", "address of the /healthz and /readyz probes; 0 disables it")
	fs.StringVar(&c.SimulatorControlBindAddress, "simulator-control-bind-address", "127.0.0.1:8083", "address of the simulator's control endpoint (/simulator: GET the GPUs' state, POST load steps), served only with --gpu-source=simulated; it takes no authentication, so it listens on loopback unless told otherwise; 0 disables it")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log verbosity: info, or debug for every publish and allocation")
	fs.Usage = func() {
		fmt.Fprintf(out, "deviceplugin: the sdfleet node agent. It advertises every GPU to the kubelet as its own\n"+
			"extended resource, tracks GPU health and publishes live load to the node's GPUNode.\n\n"+
			"Every flag can also be set by the environment variable %s<FLAG> (upper case, - as _),\n"+
			"for example %sSAMPLE_INTERVAL=2s, or in the --config file. Flags win over the\n"+
			"environment, which wins over the file.\n\nFlags:\n", EnvPrefix, EnvPrefix)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q: the agent takes flags only", fs.Arg(0))
	}
	if err := fillFromEnv(fs, getenv); err != nil {
		return nil, err
	}
	if configFile != "" {
		if err := fillFromFile(fs, configFile); err != nil {
			return nil, err
		}
	}
	var err error
	if c.IgnoredXIDs, err = health.ParseXIDs(xids); err != nil {
		return nil, fmt.Errorf("--ignored-xids=%q: %w", xids, err)
	}
	for _, v := range strings.Split(visible, ",") {
		if v = strings.TrimSpace(v); v != "" {
			c.VisibleGPUs = append(c.VisibleGPUs, v)
		}
	}
	return c, c.Validate()
}

// changed lists the flags given on the command line, which lower-precedence sources leave alone.
func changed(fs *pflag.FlagSet) map[string]bool {
	out := map[string]bool{}
	fs.Visit(func(f *pflag.Flag) { out[f.Name] = true })
	return out
}

// EnvName is the environment variable of a flag.
func EnvName(flag string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

func fillFromEnv(fs *pflag.FlagSet, getenv func(string) string) error {
	given := changed(fs)
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if err != nil || given[f.Name] {
			return
		}
		name := EnvName(f.Name)
		v := getenv(name)
		if v == "" {
			return
		}
		if setErr := fs.Set(f.Name, v); setErr != nil {
			err = fmt.Errorf("environment variable %s=%q (for --%s): %w", name, v, f.Name, setErr)
		}
	})
	return err
}

func fillFromFile(fs *pflag.FlagSet, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("--%s: read settings file: %w", FlagConfigFile, err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(data, &values); err != nil {
		return fmt.Errorf("settings file %s: decode YAML: %w", path, err)
	}
	given := changed(fs)
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		f := fs.Lookup(key)
		if f == nil || key == FlagConfigFile {
			return fmt.Errorf("settings file %s: key %q is not a setting (use flag names, for example sample-interval)", path, key)
		}
		if given[key] {
			continue
		}
		v, err := scalar(values[key])
		if err != nil {
			return fmt.Errorf("settings file %s: key %s: %w", path, key, err)
		}
		if err := fs.Set(key, v); err != nil {
			return fmt.Errorf("settings file %s: key %s=%q: %w", path, key, v, err)
		}
	}
	return nil
}

// scalar turns a YAML value into flag text; lists become comma-separated.
func scalar(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case bool:
		return strconv.FormatBool(x), nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			s, err := scalar(e)
			if err != nil {
				return "", err
			}
			parts[i] = s
		}
		return strings.Join(parts, ","), nil
	case nil:
		return "", nil
	default:
		return "", fmt.Errorf("value of type %T is not a string, number, boolean or list", v)
	}
}

func joinXIDs(xids []uint64) string {
	parts := make([]string, len(xids))
	for i, x := range xids {
		parts[i] = strconv.FormatUint(x, 10)
	}
	return strings.Join(parts, ",")
}

// Validate names the first wrong setting and its value.
func (c *Config) Validate() error {
	var errs []error
	bad := func(flag string, value any, why string) {
		errs = append(errs, fmt.Errorf("--%s=%v: %s", flag, value, why))
	}
	if c.NodeName == "" {
		bad("node-name", `""`, "required (or set "+EnvName("node-name")+")")
	}
	switch c.GPUSource {
	case SourceNVML:
	case SourceAuto, SourceAMDGPU:
		if c.SysfsRoot == "" {
			bad("sysfs-root", `""`, "required with --gpu-source="+c.GPUSource)
		}
	case SourceSimulated:
		if c.SimulatorConfig == "" {
			bad("simulator-config", `""`, "required with --gpu-source=simulated")
		}
	default:
		bad("gpu-source", c.GPUSource, "must be one of "+strings.Join(Sources, ", "))
	}
	if a := c.SimulatorControlBindAddress; a != "" && a != "0" {
		if _, _, err := net.SplitHostPort(a); err != nil {
			bad("simulator-control-bind-address", a, "must be host:port (for example 127.0.0.1:8083) or 0")
		}
	}
	if c.SimulatorReloadInterval <= 0 {
		bad("simulator-reload-interval", c.SimulatorReloadInterval, "must be positive")
	}
	if c.SlotsPerGPU < 1 || c.SlotsPerGPU > 1024 {
		bad("slots-per-gpu", c.SlotsPerGPU, "must be between 1 and 1024")
	}
	if !slices.Contains(kubelet.Strategies, c.DeviceListStrategy) {
		bad("device-list-strategy", c.DeviceListStrategy, "must be one of "+strings.Join(kubelet.Strategies, ", "))
	}
	if c.EnableKubeletPlugin && c.PluginDir == "" {
		bad("plugin-dir", `""`, "required when the kubelet plugin is enabled")
	}
	if c.KubeletPollInterval <= 0 {
		bad("kubelet-poll-interval", c.KubeletPollInterval, "must be positive")
	}
	if c.SampleInterval <= 0 {
		bad("sample-interval", c.SampleInterval, "must be positive")
	}
	if c.HeartbeatInterval < c.SampleInterval {
		bad("heartbeat-interval", c.HeartbeatInterval, "must be at least --sample-interval ("+c.SampleInterval.String()+")")
	}
	if c.MemoryChangeThreshold <= 0 || c.MemoryChangeThreshold > 100 {
		bad("memory-change-threshold", c.MemoryChangeThreshold, "must be above 0 and at most 100 percentage points")
	}
	if c.RecoveryQuietPeriod < 0 {
		bad("health-recovery-quiet-period", c.RecoveryQuietPeriod, "must not be negative")
	}
	if c.RecoveryProbes < 1 {
		bad("health-recovery-probes", c.RecoveryProbes, "must be at least 1")
	}
	switch c.LogLevel {
	case "info", "debug":
	default:
		bad("log-level", c.LogLevel, "must be info or debug")
	}
	return errors.Join(errs...)
}
