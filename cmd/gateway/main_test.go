package main

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const goodConfig = `models:
  tiny:
    hostPath: {path: /var/lib/sdfleet/models/tiny}
defaultModel: tiny
output:
  hostPath: {path: /var/lib/sdfleet/output}
`

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

func TestParseFlagsDefaults(t *testing.T) {
	o, err := parseFlags([]string{"--config", writeConfig(t, goodConfig)}, &bytes.Buffer{})
	if err != nil {
		t.Fatalf("parseFlags = %v", err)
	}
	if o.bindAddress != ":8080" || o.probeAddr != ":8081" || o.cfg.WaitTimeout != 5*time.Minute ||
		o.cfg.OutputDir != "/sdfleet/output" || o.cfg.DefaultModel != "tiny" || o.cfg.Burst != 20 {
		t.Errorf("defaults %+v", o)
	}
}

func TestParseFlags(t *testing.T) {
	good := writeConfig(t, goodConfig)
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"all set", []string{"--config", good, "--wait-timeout=30s", "--rate-limit=2", "--rate-burst=4", "--zap-log-level=debug"}, ""},
		{"missing config", []string{"--config", "/nonexistent/config.yaml"}, "--config: read the gateway configuration"},
		{"unknown key", []string{"--config", writeConfig(t, goodConfig+"image: evil\n")}, `unknown field "image"`},
		{"default model missing", []string{"--config", writeConfig(t, strings.Replace(goodConfig, "defaultModel: tiny", "defaultModel: sd15", 1))}, "defaultModel \"sd15\""},
		{"relative model path", []string{"--config", writeConfig(t, strings.Replace(goodConfig, "/var/lib/sdfleet/models/tiny", "models/tiny", 1))}, "models.tiny: hostPath.path"},
		{"zero timeout", []string{"--config", good, "--wait-timeout=0"}, "--wait-timeout"},
		{"tiny body", []string{"--config", good, "--max-body-bytes=10"}, "--max-body-bytes"},
		{"no rate", []string{"--config", good, "--rate-limit=0"}, "--rate-limit"},
		{"too many images", []string{"--config", good, "--max-images-per-request=1000"}, "--max-images-per-request"},
		{"relative output dir", []string{"--config", good, "--output-dir=out"}, "--output-dir"},
		{"half of TLS", []string{"--config", good, "--tls-cert-file=/c.pem"}, "--tls-key-file"},
		{"stray argument", []string{"--config", good, "serve"}, "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseFlags(tt.args, &bytes.Buffer{})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("parseFlags(%q) = %v", tt.args, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("parseFlags(%q) = %v, want an error containing %q", tt.args, err, tt.wantErr)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	var out bytes.Buffer
	_, err := parseFlags([]string{"--help"}, &out)
	if !errors.Is(err, flag.ErrHelp) || !strings.Contains(out.String(), "-rate-limit") || !strings.Contains(out.String(), "TokenReview") {
		t.Fatalf("--help: %v\n%s", err, out.String())
	}
}
