// Command registry is the CNCF Distribution registry (github.com/distribution/distribution/v3)
// with only its filesystem storage, for the end-to-end suite and anyone who wants a registry on
// loopback to try `make push` against. It is its own Go module, so that the registry's
// requirements never move sdfleet's dependency versions; hack/build-registry.sh builds it into
// bin/registry.
//
//	bin/registry -addr 127.0.0.1:5000 -root /tmp/registry
//
// It serves plain HTTP: give it a loopback address. SIGINT or SIGTERM stops it.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:5000", "host:port to serve plain HTTP on; a loopback address")
	root := flag.String("root", "", "folder the registry stores blobs and manifests in (required)")
	flag.Parse()
	if err := run(*addr, *root); err != nil {
		fmt.Fprintln(os.Stderr, "registry:", err)
		os.Exit(1)
	}
}

func run(addr, root string) error {
	config, err := configFor(addr, root)
	if err != nil {
		return err
	}
	// The registry reports traces through OpenTelemetry's environment settings, whose default
	// is an OTLP collector that is not there.
	if os.Getenv("OTEL_TRACES_EXPORTER") == "" {
		os.Setenv("OTEL_TRACES_EXPORTER", "none")
	}
	reg, err := registry.NewRegistry(context.Background(), config)
	if err != nil {
		return err
	}
	return reg.ListenAndServe()
}

// configFor is the registry's configuration: plain HTTP on addr, filesystem storage in root,
// deletes allowed, no access log (the registry's own log says what it serves).
func configFor(addr, root string) (*configuration.Configuration, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("-addr %q: expected host:port: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("-addr %q: the registry serves plain HTTP without authentication, so it listens on a loopback address only", addr)
	}
	if root == "" || !filepath.IsAbs(root) {
		return nil, fmt.Errorf("-root %q: expected an absolute folder", root)
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("-root: %w", err)
	}
	yaml := fmt.Sprintf(`version: 0.1
log:
  level: info
  accesslog: {disabled: true}
storage:
  filesystem: {rootdirectory: %q}
  delete: {enabled: true}
http:
  addr: %q
`, root, addr)
	return configuration.Parse(strings.NewReader(yaml))
}
