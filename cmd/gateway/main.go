package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	crcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	"github.com/sdfleet/sdfleet/gateway"
)

// options are the command line of the gateway.
type options struct {
	bindAddress   string
	probeAddr     string
	configFile    string
	tlsCertFile   string
	tlsKeyFile    string
	kubeAPIQPS    float64
	kubeAPIBurst  int
	kubeconfig    string
	shutdownGrace time.Duration
	cfg           gateway.Config
	zap           zap.Options
}

// parseFlags reads the command line and the configuration file. It returns flag.ErrHelp
// after printing the usage for -h/--help.
func parseFlags(args []string, out io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&o.bindAddress, "bind-address", ":8080", "Address the HTTP API listens on.")
	fs.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081",
		"Address the liveness (/healthz) and readiness (/readyz) probes listen on; \"0\" disables them.")
	fs.StringVar(&o.configFile, "config", "/etc/sdfleet/gateway/config.yaml",
		"YAML file of the models callers may name (models: {name: location}), defaultModel and the jobs' output location.")
	fs.StringVar(&o.cfg.OutputDir, "output-dir", "/sdfleet/output",
		"Where the output volume named in the configuration is mounted, read-only, to serve the images.")
	fs.DurationVar(&o.cfg.WaitTimeout, "wait-timeout", 5*time.Minute,
		"How long an OpenAI or AUTOMATIC1111 request waits for its images before the answer is 202 with the job's name.")
	fs.Int64Var(&o.cfg.MaxBodyBytes, "max-body-bytes", 1<<20, "Largest request body accepted, in bytes.")
	fs.IntVar(&o.cfg.MaxImagesPerRequest, "max-images-per-request", 16,
		"Most images one OpenAI (n) or AUTOMATIC1111 (batch_size x n_iter) request may ask for.")
	fs.Float64Var(&o.cfg.RequestsPerSecond, "rate-limit", 5, "Requests per second each caller may send (a token bucket).")
	fs.IntVar(&o.cfg.Burst, "rate-burst", 20, "Burst of requests each caller may send at once.")
	fs.DurationVar(&o.cfg.AuthCacheTTL, "auth-cache-ttl", 10*time.Second,
		"How long a TokenReview or SubjectAccessReview answer is reused; 0 asks the API server on every request.")
	fs.StringVar(&o.cfg.PublicURL, "public-url", "",
		"The gateway's address as clients reach it (https://images.example.com), for OpenAI \"url\" responses; empty uses the request's Host.")
	fs.StringVar(&o.tlsCertFile, "tls-cert-file", "", "Serve HTTPS with this certificate (PEM); empty serves plain HTTP.")
	fs.StringVar(&o.tlsKeyFile, "tls-key-file", "", "Private key of --tls-cert-file (PEM).")
	fs.DurationVar(&o.shutdownGrace, "shutdown-grace-period", 30*time.Second,
		"How long requests in flight may finish after SIGTERM.")
	fs.Float64Var(&o.kubeAPIQPS, "kube-api-qps", 100, "Queries per second the gateway may send to the API server.")
	fs.IntVar(&o.kubeAPIBurst, "kube-api-burst", 200, "Burst of queries the gateway may send to the API server.")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "",
		"Path of a kubeconfig file; empty means the in-cluster configuration, $KUBECONFIG or ~/.kube/config.")
	o.zap.BindFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: gateway [flags]\n\n"+
			"Serves the OpenAI Images API, the AUTOMATIC1111 web UI API and sdfleet's native API over HTTP.\n"+
			"Every request turns into an ImageGenerationJob; callers send a Kubernetes bearer token, which the\n"+
			"API server reviews (TokenReview) and authorises (SubjectAccessReview).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q: the gateway takes flags only", fs.Args())
	}
	if (o.tlsCertFile == "") != (o.tlsKeyFile == "") {
		return nil, errors.New("--tls-cert-file and --tls-key-file: set both or neither")
	}
	switch {
	case o.kubeAPIQPS <= 0 || o.kubeAPIBurst <= 0:
		return nil, fmt.Errorf("--kube-api-qps %v and --kube-api-burst %d must be positive", o.kubeAPIQPS, o.kubeAPIBurst)
	case o.shutdownGrace < 0:
		return nil, fmt.Errorf("--shutdown-grace-period %v: want 0 or more", o.shutdownGrace)
	}
	models, err := gateway.LoadModels(o.configFile)
	if err != nil {
		return nil, fmt.Errorf("--config: %w", err)
	}
	o.cfg.Models = models
	if err := o.cfg.Validate(); err != nil {
		return nil, err
	}
	return o, nil
}

func run(args []string) error {
	o, err := parseFlags(args, os.Stderr)
	if err != nil {
		return err
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&o.zap)))
	log := ctrl.Log.WithName("gateway")

	var cfg *rest.Config
	if o.kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", o.kubeconfig)
	} else {
		cfg, err = ctrl.GetConfig()
	}
	if err != nil {
		return fmt.Errorf("find the cluster's kubeconfig (in-cluster, $KUBECONFIG or ~/.kube/config): %w", err)
	}
	cfg.QPS, cfg.Burst = float32(o.kubeAPIQPS), o.kubeAPIBurst
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return fmt.Errorf("register the built-in kinds: %w", err)
	}
	if err := sdfleetv1alpha1.AddToScheme(scheme); err != nil {
		return fmt.Errorf("register the sdfleet.io kinds: %w", err)
	}
	cache, err := crcache.New(cfg, crcache.Options{Scheme: scheme})
	if err != nil {
		return fmt.Errorf("create the informer cache: %w", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return fmt.Errorf("create the API client: %w", err)
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("create the Kubernetes clientset: %w", err)
	}
	srv, err := gateway.New(o.cfg, gateway.Dependencies{Cache: cache, Client: c, APIReader: c, Kube: kube, Log: log})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := srv.Register(ctx); err != nil {
		return err
	}
	cacheDone := make(chan error, 1)
	go func() { cacheDone <- cache.Start(ctx) }()
	syncCtx, cancelSync := context.WithTimeout(ctx, 2*time.Minute)
	synced := cache.WaitForCacheSync(syncCtx)
	cancelSync()
	if !synced {
		return errors.New("the informer caches of ImageGenerationJobs and GPUNodes did not sync within 2 minutes: is the CRD installed, and may the gateway list them?")
	}
	go srv.Sweep(ctx, time.Minute)

	if o.probeAddr != "0" {
		probes := http.NewServeMux()
		probes.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
		probes.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
		probeServer := &http.Server{Addr: o.probeAddr, Handler: probes, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := probeServer.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error(err, "probe server stopped", "address", o.probeAddr)
			}
		}()
		defer func() { _ = probeServer.Close() }()
	}
	api := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	ln, err := net.Listen("tcp", o.bindAddress)
	if err != nil {
		return fmt.Errorf("--bind-address %s: %w", o.bindAddress, err)
	}
	serveDone := make(chan error, 1)
	go func() {
		if o.tlsCertFile != "" {
			serveDone <- api.ServeTLS(ln, o.tlsCertFile, o.tlsKeyFile)
		} else {
			serveDone <- api.Serve(ln)
		}
	}()
	log.Info("serving", "address", ln.Addr().String(), "tls", o.tlsCertFile != "", "models", o.cfg.Names(),
		"defaultModel", o.cfg.DefaultModel, "outputDir", o.cfg.OutputDir, "waitTimeout", o.cfg.WaitTimeout)
	select {
	case err := <-serveDone:
		return fmt.Errorf("serve HTTP: %w", err)
	case err := <-cacheDone:
		return fmt.Errorf("informer cache stopped: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down", "gracePeriod", o.shutdownGrace)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), o.shutdownGrace)
	defer cancel()
	return api.Shutdown(shutdownCtx)
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
}
