package config_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sdfleet/sdfleet/deviceplugin/config"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestPrecedenceFlagsEnvFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(file, []byte("sample-interval: 3s\nheartbeat-interval: 30s\nslots-per-gpu: 8\nignored-xids: [13, 79]\nvisible-gpus: [0, 2]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load([]string{"--node-name=n1", "--config=" + file, "--sample-interval=2s"},
		env(map[string]string{"SDFLEET_HEARTBEAT_INTERVAL": "20s", "SDFLEET_SAMPLE_INTERVAL": "5s"}), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"flag beats env and file", cfg.SampleInterval, 2 * time.Second},
		{"env beats file", cfg.HeartbeatInterval, 20 * time.Second},
		{"file beats default", cfg.SlotsPerGPU, 8},
		{"file list", slices.Equal(cfg.IgnoredXIDs, []uint64{13, 79}), true},
		{"file list of GPUs", slices.Equal(cfg.VisibleGPUs, []string{"0", "2"}), true},
		{"default", cfg.DeviceListStrategy, "envvar"},
		{"default source", cfg.GPUSource, "auto"},
		{"default sysfs", cfg.SysfsRoot, "/sys"},
		{"default Xids", len(mustLoad(t).IgnoredXIDs), 6},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
}

func mustLoad(t *testing.T) *config.Config {
	cfg, err := config.Load([]string{"--node-name=n"}, env(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestWrongValuesNameTheSetting(t *testing.T) {
	dir := t.TempDir()
	badFile := filepath.Join(dir, "bad.yaml")
	_ = os.WriteFile(badFile, []byte("sample-intervall: 1s\n"), 0o600)
	badValueFile := filepath.Join(dir, "badvalue.yaml")
	_ = os.WriteFile(badValueFile, []byte("slots-per-gpu: many\n"), 0o600)
	tests := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{args: nil, want: "--node-name"},
		{args: []string{"--node-name=n", "--sample-interval=0s"}, want: "--sample-interval=0s"},
		{args: []string{"--node-name=n", "--sample-interval=fast"}, want: `"fast"`},
		{args: []string{"--node-name=n", "--slots-per-gpu=0"}, want: "--slots-per-gpu=0"},
		{args: []string{"--node-name=n", "--device-list-strategy=cdi"}, want: "--device-list-strategy=cdi"},
		{args: []string{"--node-name=n", "--gpu-source=simulated"}, want: "--simulator-config"},
		{args: []string{"--node-name=n", "--gpu-source=amd"}, want: "--gpu-source=amd: must be one of auto, nvml, amdgpu, simulated"},
		{args: []string{"--node-name=n", "--gpu-source=amdgpu", "--sysfs-root="}, want: "--sysfs-root=\"\": required with --gpu-source=amdgpu"},
		{args: []string{"--node-name=n", "--ignored-xids=13,abc"}, want: `"abc"`},
		{args: []string{"--node-name=n", "--memory-change-threshold=0"}, want: "--memory-change-threshold=0"},
		{args: []string{"--node-name=n", "--heartbeat-interval=500ms"}, want: "--heartbeat-interval=500ms"},
		{args: []string{"--node-name=n", "--health-recovery-probes=0"}, want: "--health-recovery-probes=0"},
		{args: []string{"--node-name=n", "--simulator-control-bind-address=8083"}, want: "--simulator-control-bind-address=8083"},
		{args: []string{"--node-name=n", "--log-level=loud"}, want: "--log-level=loud"},
		{args: []string{"--node-name=n", "extra"}, want: `"extra"`},
		{env: map[string]string{"SDFLEET_NODE_NAME": "n", "SDFLEET_SLOTS_PER_GPU": "x"}, want: `SDFLEET_SLOTS_PER_GPU="x"`},
		{args: []string{"--node-name=n", "--config=" + badFile}, want: `"sample-intervall" is not a setting`},
		{args: []string{"--node-name=n", "--config=" + badValueFile}, want: `slots-per-gpu="many"`},
		{args: []string{"--node-name=n", "--config=" + filepath.Join(dir, "missing.yaml")}, want: "--config"},
	}
	for _, tc := range tests {
		_, err := config.Load(tc.args, env(tc.env), &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("args %v env %v: got %v, want an error naming %s", tc.args, tc.env, err, tc.want)
		}
	}
}

func TestHelpListsEveryFlag(t *testing.T) {
	var out bytes.Buffer
	_, err := config.Load([]string{"--help"}, env(nil), &out)
	if !errors.Is(err, config.ErrHelp) {
		t.Fatalf("got %v, want ErrHelp", err)
	}
	for _, flag := range []string{"config", "node-name", "kubeconfig", "gpu-source", "sysfs-root", "simulator-config", "simulator-reload-interval",
		"visible-gpus", "enable-kubelet-plugin", "plugin-dir", "slots-per-gpu", "device-list-strategy", "kubelet-poll-interval",
		"sample-interval", "heartbeat-interval", "memory-change-threshold", "ignored-xids", "health-recovery-quiet-period",
		"health-recovery-probes", "metrics-bind-address", "health-probe-bind-address", "simulator-control-bind-address", "log-level"} {
		if !strings.Contains(out.String(), "--"+flag+" ") {
			t.Errorf("--help does not document --%s", flag)
		}
	}
	if !strings.Contains(out.String(), "SDFLEET_SAMPLE_INTERVAL") {
		t.Errorf("--help does not explain the environment variables")
	}
}
