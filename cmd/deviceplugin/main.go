// Command deviceplugin is sdfleet's node agent, run as a DaemonSet on every GPU node: it
// advertises each GPU to the kubelet as its own extended resource (sdfleet.io/gpu-<index>),
// tracks GPU health with recovery, and publishes live GPU load to the node's GPUNode and to
// Prometheus. Run it with --help for every setting.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	"github.com/sdfleet/sdfleet/deviceplugin/agent"
	"github.com/sdfleet/sdfleet/deviceplugin/config"
	"github.com/sdfleet/sdfleet/internal/version"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole program; it returns the exit code. It ends cleanly (0) when ctx ends, which
// is how SIGTERM stops the agent.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	cfg, err := config.Load(args, getenv, stderr)
	if errors.Is(err, config.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "deviceplugin: invalid settings:\n%v\n", err)
		return 2
	}
	log := newLogger(cfg.LogLevel, stderr)
	ctrllog.SetLogger(log)
	if err := runAgent(ctx, cfg, log); err != nil {
		log.Error(err, "node agent failed")
		return 1
	}
	return 0
}

func runAgent(ctx context.Context, cfg *config.Config, log logr.Logger) error {
	restCfg, err := restConfig(cfg.Kubeconfig)
	if err != nil {
		return err
	}
	restCfg.UserAgent = "sdfleet-deviceplugin/" + version.Version
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := sdfleetv1alpha1.AddToScheme(scheme); err != nil {
		return err
	}
	c, err := client.New(restCfg, client.Options{Scheme: scheme})
	if err != nil {
		return fmt.Errorf("create API client: %w", err)
	}
	src, sim, err := agent.OpenSource(cfg, log)
	if err != nil {
		return err
	}
	a, err := agent.New(cfg, c, src, sim, version.Version, log)
	if err != nil {
		_ = src.Close()
		return err
	}
	return a.Run(ctx)
}

// restConfig uses the kubeconfig file when one is named, else the pod's service account.
func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == "" {
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("no --kubeconfig given and not running in a cluster: %w", err)
		}
		return cfg, nil
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("--kubeconfig=%s: %w", kubeconfig, err)
	}
	return cfg, nil
}

// newLogger logs JSON lines; debug turns on V(1) messages (each publish, each allocation).
func newLogger(level string, out io.Writer) logr.Logger {
	verbosity := 0
	if level == "debug" {
		verbosity = 1
	}
	return funcr.NewJSON(func(obj string) { fmt.Fprintln(out, obj) },
		funcr.Options{LogTimestamp: true, TimestampFormat: time.RFC3339Nano, Verbosity: verbosity})
}
