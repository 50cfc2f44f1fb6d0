package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	crcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crlog "sigs.k8s.io/controller-runtime/pkg/log"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	sdtesting "github.com/sdfleet/sdfleet/controllers/testing"
	"github.com/sdfleet/sdfleet/hack/benchproc"
	"github.com/sdfleet/sdfleet/test/envtest"
)

type options struct {
	images, nodes, gpusPerNode, slots int
	gpuMemoryGiB                      int64
	kubeletWorkers                    int
	timeout                           time.Duration
	managerArgs                       string
}

func main() {
	var o options
	flag.IntVar(&o.images, "images", 2000, "images in the job")
	flag.IntVar(&o.nodes, "nodes", 100, "simulated GPU nodes")
	flag.IntVar(&o.gpusPerNode, "gpus-per-node", 8, "GPUs per node")
	flag.IntVar(&o.slots, "slots", 3, "images one GPU may run at once (3 x 800 GPUs hold the whole default job at once)")
	flag.Int64Var(&o.gpuMemoryGiB, "gpu-memory-gib", 24, "memory of each simulated GPU, GiB")
	flag.IntVar(&o.kubeletWorkers, "kubelet-workers", 8, "goroutines completing pods")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up after this long")
	flag.StringVar(&o.managerArgs, "manager-args", "", "extra flags for the manager, space separated")
	flag.Parse()
	// The benchmark's own clients log nothing worth reading; the manager logs errors.
	crlog.SetLogger(logr.Discard())
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench-controller:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if o.images < 1 || o.images > sdfleetv1alpha1.MaxImages || o.nodes < 1 || o.gpusPerNode < 1 {
		return fmt.Errorf("--images must be in [1, %d], --nodes and --gpus-per-node at least 1", sdfleetv1alpha1.MaxImages)
	}
	// An interrupt still stops the API server and etcd through the deferred calls below.
	sigCtx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(sigCtx, o.timeout)
	defer cancel()
	work, err := os.MkdirTemp("", "bench-controller-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	fmt.Fprintln(os.Stderr, "starting kube-apiserver and etcd ...")
	env, err := envtest.Start()
	if err != nil {
		return err
	}
	defer func() { _ = env.Stop() }()
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = 2000, 4000
	c, err := client.New(cfg, client.Options{Scheme: envtest.Scheme()})
	if err != nil {
		return err
	}
	kubeconfig := filepath.Join(work, "kubeconfig")
	if err := benchproc.WriteKubeconfig(env.Config, kubeconfig); err != nil {
		return err
	}

	fmt.Fprintf(os.Stderr, "publishing %d GPUNodes x %d GPUs ...\n", o.nodes, o.gpusPerNode)
	if err := publishNodes(ctx, c, o); err != nil {
		return err
	}

	fmt.Fprintln(os.Stderr, "building and starting cmd/manager ...")
	// The fixtures' heartbeats are written once: they must not go stale.
	args := append([]string{"--gpu-sample-interval=1h",
		// The job's host folders (sdtesting.MakeJob).
		"--allowed-host-path-prefixes=/models,/srv"}, strings.Fields(o.managerArgs)...)
	mgr, err := benchproc.StartManager(ctx, work, kubeconfig, args...)
	if err != nil {
		return err
	}
	defer mgr.Stop()

	ns := "bench"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return err
	}
	kubelet := newKubelet(c, ns)
	if err := kubelet.start(ctx, cfg, o.kubeletWorkers); err != nil {
		return err
	}

	job := sdtesting.MakeJob("bench", ns).Images(int32(o.images)).Obj()
	fmt.Fprintf(os.Stderr, "creating a %d-image job ...\n", o.images)
	start := time.Now()
	if err := c.Create(ctx, job); err != nil {
		return err
	}
	done, err := waitForJob(ctx, c, types.NamespacedName{Namespace: ns, Name: job.Name}, int32(o.images))
	if err != nil {
		return err
	}
	elapsed := done.Sub(start)

	cpu, rss, err := benchproc.Figures(mgr.Cmd.Process.Pid)
	if err != nil {
		return err
	}
	writes, byMethod, err := mgr.Writes(ctx)
	if err != nil {
		return err
	}
	created := kubelet.seen.Load()
	firstPod, lastPod := kubelet.window()
	createWindow := lastPod.Sub(start)

	fmt.Printf("images                     %d over %d nodes x %d GPUs (%d slots each)\n", o.images, o.nodes, o.gpusPerNode, o.slots)
	fmt.Printf("job done in                %.2f s (first pod after %.3f s)\n", elapsed.Seconds(), firstPod.Sub(start).Seconds())
	fmt.Printf("pods created               %d\n", created)
	fmt.Printf("pods created per second    %.1f (job creation to last pod seen)\n", float64(created)/createWindow.Seconds())
	fmt.Printf("controller API writes      %d (%s)\n", writes, byMethod)
	fmt.Printf("API writes per image       %.3f\n", float64(writes)/float64(o.images))
	fmt.Printf("controller CPU seconds     %.2f\n", cpu)
	fmt.Printf("controller peak memory     %.1f MiB (VmHWM)\n", float64(rss)/(1<<20))
	return nil
}

func publishNodes(ctx context.Context, c client.Client, o options) error {
	var wg sync.WaitGroup
	errs := make(chan error, o.nodes)
	sem := make(chan struct{}, 16)
	for n := 0; n < o.nodes; n++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			w := sdtesting.MakeGPUNode(fmt.Sprintf("node-%03d", n))
			for g := 0; g < o.gpusPerNode; g++ {
				w.GPU(int32(g), 1, o.gpuMemoryGiB, int32(o.slots))
			}
			gn := w.Obj()
			status := gn.Status.DeepCopy()
			if err := c.Create(ctx, gn); err != nil {
				errs <- err
				return
			}
			gn.Status = *status
			if err := c.Status().Update(ctx, gn); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	return errors.Join(collect(errs)...)
}

func collect(ch <-chan error) []error {
	var out []error
	for err := range ch {
		out = append(out, err)
	}
	return out
}

// kubelet completes every image pod as soon as it appears.
type kubelet struct {
	c    client.Client
	ns   string
	seen atomic.Int64
	// failures counts status updates that had to be tried again.
	failures atomic.Int64
	mu       sync.Mutex
	first    time.Time
	last     time.Time
}

func newKubelet(c client.Client, ns string) *kubelet { return &kubelet{c: c, ns: ns} }

func (k *kubelet) window() (time.Time, time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.first, k.last
}

// start completes each image pod of the namespace as soon as an informer shows it. An informer,
// unlike a bare watch, lists again when the API server closes the watch.
func (k *kubelet) start(ctx context.Context, cfg *rest.Config, workers int) error {
	informers, err := crcache.New(cfg, crcache.Options{Scheme: envtest.Scheme(),
		DefaultNamespaces: map[string]crcache.Config{k.ns: {}}})
	if err != nil {
		return err
	}
	inf, err := informers.GetInformer(ctx, &corev1.Pod{})
	if err != nil {
		return err
	}
	pods := make(chan *corev1.Pod, 1<<14)
	_, err = inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{AddFunc: func(obj any) {
		pod, ok := obj.(*corev1.Pod)
		if !ok || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			return
		}
		now := time.Now()
		k.seen.Add(1)
		k.mu.Lock()
		if k.first.IsZero() {
			k.first = now
		}
		k.last = now
		k.mu.Unlock()
		pods <- pod.DeepCopy()
	}})
	if err != nil {
		return err
	}
	for i := 0; i < workers; i++ {
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case pod := <-pods:
					k.complete(ctx, pod)
				}
			}
		}()
	}
	go func() { _ = informers.Start(ctx) }()
	if !informers.WaitForCacheSync(ctx) {
		return errors.New("the kubelet's pod informer never synced")
	}
	return nil
}

// complete plays the kubelet: the pod's container ran and wrote its result.
func (k *kubelet) complete(ctx context.Context, pod *corev1.Pod) {
	for attempt := 0; attempt < 5; attempt++ {
		sdtesting.SetTerminated(pod, 0, sdtesting.SuccessMessage(pod, 2000, "cuda:0"), time.Now())
		err := k.c.Status().Update(ctx, pod)
		if err == nil || ctx.Err() != nil {
			return
		}
		if k.failures.Add(1) <= 5 {
			fmt.Fprintf(os.Stderr, "kubelet: update pod %s: %v\n", pod.Name, err)
		}
		fresh := &corev1.Pod{}
		if err := k.c.Get(ctx, client.ObjectKeyFromObject(pod), fresh); err != nil {
			return
		}
		pod = fresh
	}
}

func waitForJob(ctx context.Context, c client.Client, key types.NamespacedName, images int32) (time.Time, error) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	lastReport := time.Now()
	for {
		var job sdfleetv1alpha1.ImageGenerationJob
		if err := c.Get(ctx, key, &job); err != nil {
			return time.Time{}, err
		}
		if job.Status.Succeeded == images {
			return time.Now(), nil
		}
		if job.Status.Phase == sdfleetv1alpha1.JobPhaseFailed {
			return time.Time{}, fmt.Errorf("the job failed: %+v", job.Status.Conditions)
		}
		if time.Since(lastReport) > 5*time.Second {
			progress := ""
			for _, c := range job.Status.Conditions {
				if c.Type == sdfleetv1alpha1.JobProgressing {
					progress = c.Reason + ": " + c.Message
				}
			}
			phases := map[corev1.PodPhase]int{}
			var pods corev1.PodList
			if err := c.List(ctx, &pods, client.InNamespace(key.Namespace)); err == nil {
				for _, p := range pods.Items {
					phases[p.Status.Phase]++
				}
			}
			fmt.Fprintf(os.Stderr, "  %d/%d images succeeded, %d running, %d pending (%s); pods by phase %v\n",
				job.Status.Succeeded, images, job.Status.Running, job.Status.Pending, progress, phases)
			lastReport = time.Now()
		}
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("job %s not done: %d/%d images: %w", key, job.Status.Succeeded, images, ctx.Err())
		case <-tick.C:
		}
	}
}
