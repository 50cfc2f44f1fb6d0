package main

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigFor(t *testing.T) {
	root := filepath.Join(t.TempDir(), "storage")
	tests := []struct {
		name, addr, root string
		want             string // part of the error; empty: valid
	}{
		{"loopback IPv4", "127.0.0.1:5000", root, ""},
		{"localhost", "localhost:0", root, ""},
		{"loopback IPv6", "[::1]:5000", root, ""},
		{"every address", "0.0.0.0:5000", root, "loopback address only"},
		{"a host's address", "10.0.0.4:5000", root, "loopback address only"},
		{"no port", "127.0.0.1", root, "expected host:port"},
		{"no root", "127.0.0.1:5000", "", "-root"},
		{"relative root", "127.0.0.1:5000", "storage", "absolute folder"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			config, err := configFor(tt.addr, tt.root)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("configFor(%q, %q) = %v", tt.addr, tt.root, err)
				}
				if config.HTTP.Addr != tt.addr || config.Storage.Type() != "filesystem" || config.Storage.Parameters()["rootdirectory"] != tt.root {
					t.Errorf("config serves %q from %s %v, want %q from filesystem %s", config.HTTP.Addr, config.Storage.Type(), config.Storage.Parameters(), tt.addr, tt.root)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("configFor(%q, %q) = %v, want an error saying %q", tt.addr, tt.root, err, tt.want)
			}
		})
	}
}
