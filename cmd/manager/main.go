package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	"github.com/sdfleet/sdfleet/controllers"
	"github.com/sdfleet/sdfleet/controllers/jobpolicy"
	"github.com/sdfleet/sdfleet/controllers/placement"
)

// options are the command line of the manager.
type options struct {
	metricsAddr             string
	probeAddr               string
	leaderElect             bool
	leaderElectionID        string
	leaderElectionNamespace string
	defaultImage            string
	allowedHostPaths        string
	allowedImages           string
	policy                  jobpolicy.Policy
	podEventBatchPeriod     time.Duration
	maxConcurrentReconciles int
	podCreateConcurrency    int
	gpuSampleInterval       time.Duration
	placementHeadroom       float64
	hotTemperature          int
	kubeAPIQPS              float64
	kubeAPIBurst            int
	kubeconfig              string
	zap                     zap.Options
}

// parseFlags reads the command line. It returns flag.ErrHelp after printing the usage for
// -h/--help.
func parseFlags(args []string, out io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", ":8080",
		"Address the Prometheus metrics endpoint (/metrics) listens on; \"0\" disables it.")
	fs.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081",
		"Address the liveness (/healthz) and readiness (/readyz) probes listen on; \"0\" disables them.")
	fs.BoolVar(&o.leaderElect, "leader-elect", true,
		"Elect a leader through a Lease so that only one of several replicas reconciles at a time.")
	fs.StringVar(&o.leaderElectionID, "leader-election-id", "sdfleet-controller.sdfleet.io",
		"Name of the Lease used for leader election.")
	fs.StringVar(&o.leaderElectionNamespace, "leader-election-namespace", "",
		"Namespace of the leader-election Lease; empty means the namespace the manager runs in.")
	fs.StringVar(&o.defaultImage, "default-image", "ghcr.io/sdfleet/sdgen:latest",
		"Container image of the inference binary (sdgen) for jobs whose spec.image is empty.")
	fs.StringVar(&o.allowedHostPaths, "allowed-host-path-prefixes", "",
		"Comma-separated host folders that jobs' hostPath model and output may be in (each allows itself and below; \"/\" allows all). Empty disables hostPath.")
	fs.StringVar(&o.allowedImages, "allowed-image-prefixes", "",
		"Comma-separated image repositories (any tag or digest) or registry paths ending in / that spec.image may name. Empty allows only --default-image's repository.")
	fs.DurationVar(&o.podEventBatchPeriod, "pod-event-batch-period", time.Second,
		"How long pod changes are gathered before the job's status is written, so that many pod changes make one write.")
	fs.IntVar(&o.maxConcurrentReconciles, "max-concurrent-reconciles", 4,
		"How many ImageGenerationJobs are reconciled at once.")
	fs.IntVar(&o.podCreateConcurrency, "pod-create-concurrency", 32,
		"How many image pods one reconcile creates in parallel.")
	fs.DurationVar(&o.gpuSampleInterval, "gpu-sample-interval", time.Second,
		"The node agents' sampling interval: a GPU whose GPUNode heartbeat is older than 3 intervals is never chosen.")
	fs.Float64Var(&o.placementHeadroom, "placement-headroom", 0.05,
		"Fraction of each GPU's memory that placement never hands out, in [0, 1).")
	fs.IntVar(&o.hotTemperature, "hot-temperature", 85,
		"GPU temperature in degrees Celsius above which placement treats the GPU as more loaded.")
	fs.Float64Var(&o.kubeAPIQPS, "kube-api-qps", 200, "Queries per second the manager may send to the API server.")
	fs.IntVar(&o.kubeAPIBurst, "kube-api-burst", 400, "Burst of queries the manager may send to the API server.")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "",
		"Path of a kubeconfig file; empty means the in-cluster configuration, $KUBECONFIG or ~/.kube/config.")
	o.zap.BindFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: manager [flags]\n\n"+
			"Runs the sdfleet operator: the ImageGenerationJob controller, which generates each image of a job\n"+
			"in its own pod on the GPU with the most room, retries failures on other GPUs and reports every\n"+
			"image in the job's status.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q: the manager takes flags only", fs.Args())
	}
	pc := placement.Config{Headroom: o.placementHeadroom, SampleInterval: o.gpuSampleInterval}
	if err := pc.Validate(); err != nil {
		return nil, fmt.Errorf("--placement-headroom or --gpu-sample-interval: %w", err)
	}
	switch {
	case o.maxConcurrentReconciles < 1:
		return nil, fmt.Errorf("--max-concurrent-reconciles is %d; want 1 or more", o.maxConcurrentReconciles)
	case o.podCreateConcurrency < 1:
		return nil, fmt.Errorf("--pod-create-concurrency is %d; want 1 or more", o.podCreateConcurrency)
	case o.podEventBatchPeriod < 0:
		return nil, fmt.Errorf("--pod-event-batch-period is %v; want 0 or more", o.podEventBatchPeriod)
	case o.defaultImage == "":
		return nil, errors.New("--default-image is empty; want a container image reference")
	case o.kubeAPIQPS <= 0 || o.kubeAPIBurst <= 0:
		return nil, fmt.Errorf("--kube-api-qps %v and --kube-api-burst %d must be positive", o.kubeAPIQPS, o.kubeAPIBurst)
	}
	policy, err := jobpolicy.New(splitList(o.allowedHostPaths), splitList(o.allowedImages), o.defaultImage)
	if err != nil {
		return nil, fmt.Errorf("--allowed-host-path-prefixes or --allowed-image-prefixes: %w", err)
	}
	o.policy = policy
	return o, nil
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(v string) []string {
	var out []string
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// reconcilerConfig is the controller's configuration from the command line.
func (o *options) reconcilerConfig() controllers.Config {
	batch := o.podEventBatchPeriod
	if batch == 0 {
		batch = -1 // Config treats 0 as "default"; the flag's 0 means no delay.
	}
	return controllers.Config{
		DefaultImage:            o.defaultImage,
		Policy:                  o.policy,
		PodEventBatchPeriod:     batch,
		MaxConcurrentReconciles: o.maxConcurrentReconciles,
		CreateConcurrency:       o.podCreateConcurrency,
		Placement: placement.Config{
			Headroom: o.placementHeadroom, SampleInterval: o.gpuSampleInterval,
			HotTemperatureCelsius: int32(o.hotTemperature),
		},
	}
}

func run(args []string) error {
	o, err := parseFlags(args, os.Stderr)
	if err != nil {
		return err
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&o.zap)))
	log := ctrl.Log.WithName("setup")

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
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsserver.Options{BindAddress: o.metricsAddr},
		HealthProbeBindAddress:  o.probeAddr,
		LeaderElection:          o.leaderElect,
		LeaderElectionID:        o.leaderElectionID,
		LeaderElectionNamespace: o.leaderElectionNamespace,
		// The manager exits right after losing the lease, so releasing it on a clean exit
		// lets a standby take over at once.
		LeaderElectionReleaseOnCancel: true,
		Cache:                         cache.Options{ByObject: controllers.CacheByObject()},
	})
	if err != nil {
		return fmt.Errorf("create the manager: %w", err)
	}
	r := controllers.NewReconciler(mgr.GetClient(), mgr.GetEventRecorder("sdfleet-controller"), o.reconcilerConfig())
	if err := r.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up the ImageGenerationJob controller: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("add the liveness check: %w", err)
	}
	// Ready once the caches are synced: before that the controller would decide blind.
	if err := mgr.AddReadyzCheck("readyz", func(req *http.Request) error {
		ctx, cancel := context.WithTimeout(req.Context(), time.Second)
		defer cancel()
		if !mgr.GetCache().WaitForCacheSync(ctx) {
			return errors.New("the informer caches are not synced yet")
		}
		return nil
	}); err != nil {
		return fmt.Errorf("add the readiness check: %w", err)
	}
	log.Info("starting the manager", "defaultImage", o.defaultImage,
		"allowedHostPathPrefixes", o.policy.HostPathPrefixes, "allowedImagePrefixes", o.policy.ImagePrefixes, "leaderElection", o.leaderElect,
		"metrics", o.metricsAddr, "probes", o.probeAddr)
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		return fmt.Errorf("run the manager: %w", err)
	}
	return nil
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "manager:", err)
		os.Exit(1)
	}
}
