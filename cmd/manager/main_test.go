package main

import (
	"bytes"
	"errors"
	"flag"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseFlagsDefaults(t *testing.T) {
	o, err := parseFlags(nil, &bytes.Buffer{})
	if err != nil {
		t.Fatalf("parseFlags(no flags) = %v", err)
	}
	cfg := o.reconcilerConfig()
	if !o.leaderElect || o.metricsAddr != ":8080" || o.probeAddr != ":8081" {
		t.Errorf("defaults: leaderElect %v, metrics %q, probes %q", o.leaderElect, o.metricsAddr, o.probeAddr)
	}
	if cfg.DefaultImage != "ghcr.io/sdfleet/sdgen:latest" || cfg.PodEventBatchPeriod != time.Second ||
		cfg.Placement.SampleInterval != time.Second || cfg.Placement.Headroom != 0.05 {
		t.Errorf("reconciler config from defaults = %+v", cfg)
	}
}

// TestParseFlagsPolicy checks that hostPath is off and only the default image's repository is
// allowed unless the flags say otherwise.
func TestParseFlagsPolicy(t *testing.T) {
	o, err := parseFlags([]string{"--default-image=registry.local:5000/sdfleet/sdgen:1.0"}, &bytes.Buffer{})
	if err != nil {
		t.Fatalf("parseFlags = %v", err)
	}
	p := o.reconcilerConfig().Policy
	if len(p.HostPathPrefixes) != 0 || !slices.Equal(p.ImagePrefixes, []string{"registry.local:5000/sdfleet/sdgen"}) {
		t.Errorf("default policy = %+v, want no host paths and only the default image's repository", p)
	}
	o, err = parseFlags([]string{"--allowed-host-path-prefixes=/srv/models, /srv/out,",
		"--allowed-image-prefixes=registry.local/team/"}, &bytes.Buffer{})
	if err != nil {
		t.Fatalf("parseFlags = %v", err)
	}
	p = o.reconcilerConfig().Policy
	if !slices.Equal(p.HostPathPrefixes, []string{"/srv/models", "/srv/out"}) ||
		!slices.Equal(p.ImagePrefixes, []string{"registry.local/team/"}) {
		t.Errorf("policy from flags = %+v", p)
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"all set", []string{"--default-image=registry.local/sdgen:1", "--leader-elect=false", "--pod-event-batch-period=0",
			"--max-concurrent-reconciles=8", "--gpu-sample-interval=2s", "--placement-headroom=0.1", "--zap-log-level=debug"}, ""},
		{"bad headroom", []string{"--placement-headroom=1.5"}, "--placement-headroom"},
		{"no workers", []string{"--max-concurrent-reconciles=0"}, "--max-concurrent-reconciles"},
		{"no creators", []string{"--pod-create-concurrency=-1"}, "--pod-create-concurrency"},
		{"negative batch", []string{"--pod-event-batch-period=-1s"}, "--pod-event-batch-period"},
		{"empty image", []string{"--default-image="}, "--default-image"},
		{"relative host path", []string{"--allowed-host-path-prefixes=/srv,data"}, "--allowed-host-path-prefixes"},
		{"unclean host path", []string{"--allowed-host-path-prefixes=/srv/../etc"}, "\"/srv/../etc\""},
		{"stray argument", []string{"run"}, "unexpected arguments"},
		{"unknown flag", []string{"--nope"}, "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseFlags(tt.args, &bytes.Buffer{})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("parseFlags(%q) = %v", tt.args, err)
				}
				if cfg := o.reconcilerConfig(); cfg.PodEventBatchPeriod >= 0 || cfg.MaxConcurrentReconciles != 8 {
					t.Errorf("config = %+v: a 0 batch period must mean no delay (negative in Config)", cfg)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseFlags(%q) error = %v, want one mentioning %q", tt.args, err, tt.wantErr)
			}
		})
	}
}

func TestHelpDocumentsEveryFlag(t *testing.T) {
	var out bytes.Buffer
	_, err := parseFlags([]string{"--help"}, &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("parseFlags(--help) = %v, want flag.ErrHelp", err)
	}
	for _, name := range []string{"metrics-bind-address", "health-probe-bind-address", "leader-elect",
		"leader-election-id", "leader-election-namespace", "default-image", "pod-event-batch-period",
		"max-concurrent-reconciles", "pod-create-concurrency", "gpu-sample-interval", "placement-headroom",
		"hot-temperature", "allowed-host-path-prefixes", "allowed-image-prefixes", "kube-api-qps", "kube-api-burst", "kubeconfig", "zap-log-level"} {
		if !strings.Contains(out.String(), "-"+name+" ") && !strings.Contains(out.String(), "-"+name+"\n") {
			t.Errorf("--help does not document --%s:\n%s", name, out.String())
		}
	}
}
