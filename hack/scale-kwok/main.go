package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	crcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crlog "sigs.k8s.io/controller-runtime/pkg/log"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	"github.com/sdfleet/sdfleet/controllers"
	sdtesting "github.com/sdfleet/sdfleet/controllers/testing"
	"github.com/sdfleet/sdfleet/deviceplugin/gpu"
	"github.com/sdfleet/sdfleet/deviceplugin/publisher"
	"github.com/sdfleet/sdfleet/deviceplugin/simulator"
	"github.com/sdfleet/sdfleet/hack/benchproc"
	"github.com/sdfleet/sdfleet/test/envtest"
)

// KWOKVersion is the KWOK that hack/build-kwok.sh builds.
const KWOKVersion = "v0.8.0"

//go:embed stages.yaml
var stagesTemplate string

type options struct {
	nodes, gpusPerNode, slots int
	images, jobs, namespaces  int
	gpuMemoryMiB              uint64
	run, runJitter            time.Duration
	timeout                   time.Duration
}

func (o options) validate() error {
	switch {
	case o.nodes < 1 || o.gpusPerNode < 1 || o.gpusPerNode > 64:
		return fmt.Errorf("--nodes must be at least 1 and --gpus-per-node in [1, 64]")
	case o.slots < 1:
		return fmt.Errorf("--slots must be at least 1")
	case o.jobs < 1 || o.namespaces < 1 || o.namespaces > o.jobs:
		return fmt.Errorf("--jobs must be at least 1 and --namespaces in [1, --jobs]")
	case o.images < o.jobs || o.images/o.jobs > int(sdfleetv1alpha1.MaxImages):
		return fmt.Errorf("--images must be at least --jobs and at most %d per job", sdfleetv1alpha1.MaxImages)
	case o.run < 0 || o.runJitter < 0:
		return fmt.Errorf("--run and --run-jitter must not be negative")
	}
	return nil
}

// result is what a run measured.
type result struct {
	Images, Jobs, Nodes, GPUs int
	Elapsed                   time.Duration
	PodsCreated               int
	PodsPerSecond             float64
	// Disagreements are pods the scheduler bound to another node than the controller chose.
	Disagreements int
	// Unscheduled are pods the scheduler reported it could not place.
	Unscheduled int
	// SucceededTwice are images with more than one succeeded pod; NotSucceeded images whose
	// job does not report them succeeded.
	SucceededTwice, NotSucceeded int
	Writes                       int64
	WritesByMethod               string
	CPUSeconds                   float64
	PeakBytes                    int64
	LargestStatusBytes           int
	LargestStatusJob             string
}

func (r result) print(w io.Writer) {
	fmt.Fprintf(w, "fleet                       %d nodes x %d GPUs (KWOK), real kube-scheduler and kube-controller-manager\n", r.Nodes, r.GPUs/max(r.Nodes, 1))
	fmt.Fprintf(w, "images                      %d in %d jobs\n", r.Images, r.Jobs)
	fmt.Fprintf(w, "all jobs done in            %.1f s\n", r.Elapsed.Seconds())
	fmt.Fprintf(w, "pods created                %d\n", r.PodsCreated)
	fmt.Fprintf(w, "pods created per second     %.1f (first job created to last pod seen)\n", r.PodsPerSecond)
	fmt.Fprintf(w, "scheduler disagreements     %d (pods bound to another node than the controller chose)\n", r.Disagreements)
	fmt.Fprintf(w, "pods the scheduler refused  %d\n", r.Unscheduled)
	fmt.Fprintf(w, "images succeeded twice      %d; not succeeded %d\n", r.SucceededTwice, r.NotSucceeded)
	fmt.Fprintf(w, "controller API writes       %d (%s)\n", r.Writes, r.WritesByMethod)
	fmt.Fprintf(w, "API writes per image        %.3f\n", float64(r.Writes)/float64(max(r.Images, 1)))
	fmt.Fprintf(w, "controller CPU seconds      %.2f\n", r.CPUSeconds)
	fmt.Fprintf(w, "controller peak memory      %.1f MiB (VmHWM)\n", float64(r.PeakBytes)/(1<<20))
	fmt.Fprintf(w, "largest job status          %d bytes (%s)\n", r.LargestStatusBytes, r.LargestStatusJob)
}

func main() {
	var o options
	flag.IntVar(&o.nodes, "nodes", 100, "fake nodes (KWOK)")
	flag.IntVar(&o.gpusPerNode, "gpus-per-node", 8, "simulated GPUs per node")
	flag.IntVar(&o.slots, "slots", 3, "images one GPU may run at once (sdfleet.io/gpu-N capacity of each node)")
	flag.Uint64Var(&o.gpuMemoryMiB, "gpu-memory-mib", 24576, "memory of each simulated GPU, MiB")
	flag.IntVar(&o.images, "images", 10000, "images over all jobs")
	flag.IntVar(&o.jobs, "jobs", 20, "jobs the images are split into")
	flag.IntVar(&o.namespaces, "namespaces", 5, "namespaces the jobs are spread over")
	flag.DurationVar(&o.run, "run", 2*time.Second, "how long an image pod runs")
	flag.DurationVar(&o.runJitter, "run-jitter", time.Second, "random extra run time, up to")
	flag.DurationVar(&o.timeout, "timeout", 30*time.Minute, "give up after this long")
	flag.Parse()
	crlog.SetLogger(logr.Discard())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := run(ctx, o, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "scale-kwok:", err)
		os.Exit(1)
	}
	res.print(os.Stdout)
}

// binaries finds kube-scheduler, kube-controller-manager and kwok, or says how to build them.
func binaries() (scheduler, controllerManager, kwok string, err error) {
	assets, err := envtest.AssetsDir()
	if err != nil {
		return "", "", "", err
	}
	scheduler = filepath.Join(assets, "kube-scheduler")
	controllerManager = filepath.Join(assets, "kube-controller-manager")
	kwok = os.Getenv("KWOK_BIN")
	if kwok == "" {
		kwok = filepath.Join(envtest.RepoRoot(), "bin", "kwok", KWOKVersion, "kwok")
	}
	var errs []error
	for _, b := range []struct{ path, build string }{
		{scheduler, "hack/build-control-plane.sh kube-scheduler"},
		{controllerManager, "hack/build-control-plane.sh kube-controller-manager"},
		{kwok, "hack/build-kwok.sh"},
	} {
		if _, err := os.Stat(b.path); err != nil {
			errs = append(errs, fmt.Errorf("%s not found: run `make scale-binaries` (%s) to build it: %w", b.path, b.build, err))
		}
	}
	return scheduler, controllerManager, kwok, errors.Join(errs...)
}

// process is a child process whose output goes to a log file.
type process struct {
	name   string
	cmd    *exec.Cmd
	log    string
	exited chan struct{}
}

func startProcess(dir, name, bin string, args ...string) (*process, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, log: logPath, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(p.exited)
	}()
	return p, nil
}

// stop ends the process: SIGTERM, then SIGKILL after 10 s.
func (p *process) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// anyExited fails when one of procs has exited: the run cannot go on without it.
func anyExited(procs []*process) error {
	for _, p := range procs {
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited: %v; the end of %s:\n%s", p.name, p.cmd.ProcessState, p.log, p.tail())
		default:
		}
	}
	return nil
}

// tail is the end of a process's log, for an error message.
func (p *process) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

func run(ctx context.Context, o options, progress io.Writer) (result, error) {
	if err := o.validate(); err != nil {
		return result{}, err
	}
	schedulerBin, kcmBin, kwokBin, err := binaries()
	if err != nil {
		return result{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	work, err := os.MkdirTemp("", "scale-kwok-")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(work)

	fmt.Fprintln(progress, "starting kube-apiserver and etcd ...")
	env, err := envtest.Start()
	if err != nil {
		return result{}, err
	}
	defer func() { _ = env.Stop() }()
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = 2000, 4000
	c, err := client.New(cfg, client.Options{Scheme: envtest.Scheme()})
	if err != nil {
		return result{}, err
	}
	kubeconfig := filepath.Join(work, "kubeconfig")
	if err := benchproc.WriteKubeconfig(env.Config, kubeconfig); err != nil {
		return result{}, err
	}

	fmt.Fprintln(progress, "starting kube-scheduler, kube-controller-manager and kwok ...")
	procs, err := startCluster(work, kubeconfig, schedulerBin, kcmBin, kwokBin, o)
	for _, p := range procs {
		defer p.stop()
	}
	if err != nil {
		return result{}, err
	}

	fmt.Fprintf(progress, "creating %d KWOK nodes x %d GPUs and their agents ...\n", o.nodes, o.gpusPerNode)
	if err := createNodes(ctx, c, o); err != nil {
		return result{}, err
	}
	if err := waitForReadyNodes(ctx, c, o.nodes, procs); err != nil {
		return result{}, err
	}
	agentCtx, stopAgents := context.WithCancel(ctx)
	// The agents stop before the API server does.
	agents, err := startAgents(agentCtx, c, o)
	defer func() {
		stopAgents()
		agents.Wait()
	}()
	if err != nil {
		return result{}, err
	}

	fmt.Fprintln(progress, "building and starting cmd/manager ...")
	mgr, err := benchproc.StartManager(ctx, work, kubeconfig, "--allowed-host-path-prefixes=/models,/srv")
	if err != nil {
		return result{}, err
	}
	defer mgr.Stop()

	watcher, err := watchPods(ctx, cfg)
	if err != nil {
		return result{}, err
	}

	jobs, err := submitJobs(ctx, c, o)
	if err != nil {
		return result{}, err
	}
	fmt.Fprintf(progress, "submitted %d images in %d jobs over %d namespaces ...\n", o.images, o.jobs, o.namespaces)
	start := time.Now()
	if err := waitForJobs(ctx, c, jobs, watcher, procs, progress); err != nil {
		return result{}, err
	}
	res := result{Images: o.images, Jobs: o.jobs, Nodes: o.nodes, GPUs: o.nodes * o.gpusPerNode, Elapsed: time.Since(start)}
	if res.CPUSeconds, res.PeakBytes, err = benchproc.Figures(mgr.Cmd.Process.Pid); err != nil {
		return result{}, err
	}
	if res.Writes, res.WritesByMethod, err = mgr.Writes(ctx); err != nil {
		return result{}, err
	}
	w := watcher.summary()
	res.PodsCreated, res.Disagreements, res.Unscheduled, res.SucceededTwice = w.created, w.disagreements, w.unscheduled, w.succeededTwice
	if last := w.lastCreated.Sub(start).Seconds(); last > 0 {
		res.PodsPerSecond = float64(w.created) / last
	}
	for _, key := range jobs {
		var job sdfleetv1alpha1.ImageGenerationJob
		if err := c.Get(ctx, key, &job); err != nil {
			return result{}, err
		}
		b, err := json.Marshal(job.Status)
		if err != nil {
			return result{}, err
		}
		if len(b) > res.LargestStatusBytes {
			res.LargestStatusBytes, res.LargestStatusJob = len(b), key.String()
		}
		res.NotSucceeded += int(job.Spec.Images - job.Status.Succeeded)
		// Every image must have succeeded on exactly one pod; the informer's record must agree.
		for i := int32(0); i < job.Spec.Images; i++ {
			if w.succeeded[imageKey{key.Namespace, key.Name, i}] == 0 {
				res.NotSucceeded++
			}
		}
	}
	return res, nil
}

// startCluster starts kube-scheduler, kube-controller-manager and kwok against the API server,
// each serving nothing (secure port 0), with client limits that do not throttle a 10000-pod
// run.
func startCluster(work, kubeconfig, schedulerBin, kcmBin, kwokBin string, o options) ([]*process, error) {
	schedulerConfig := filepath.Join(work, "scheduler.yaml")
	if err := os.WriteFile(schedulerConfig, []byte(fmt.Sprintf(`apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: %q
  qps: 1000
  burst: 2000
leaderElection:
  leaderElect: false
`, kubeconfig)), 0o600); err != nil {
		return nil, err
	}
	stages := strings.ReplaceAll(stagesTemplate, "RUN_JITTER_MILLISECONDS", strconv.FormatInt(o.runJitter.Milliseconds(), 10))
	stages = strings.ReplaceAll(stages, "RUN_MILLISECONDS", strconv.FormatInt(o.run.Milliseconds(), 10))
	stagesPath := filepath.Join(work, "kwok-stages.yaml")
	if err := os.WriteFile(stagesPath, []byte(stages), 0o600); err != nil {
		return nil, err
	}
	kwokAddr, err := benchproc.FreeAddress()
	if err != nil {
		return nil, err
	}
	var procs []*process
	for _, p := range []struct {
		name, bin string
		args      []string
	}{
		{"kube-scheduler", schedulerBin, []string{"--config", schedulerConfig, "--secure-port=0", "--v=1"}},
		{"kube-controller-manager", kcmBin, []string{"--kubeconfig", kubeconfig, "--leader-elect=false", "--secure-port=0",
			"--kube-api-qps=500", "--kube-api-burst=1000", "--use-service-account-credentials=false", "--v=1"}},
		{"kwok", kwokBin, []string{"--kubeconfig", kubeconfig, "--config", stagesPath,
			"--manage-nodes-with-annotation-selector=" + kwokNodeAnnotation + "=fake", "--node-lease-duration-seconds=40",
			"--server-address", kwokAddr, "--cidr=10.0.0.0/16", "--node-ip=10.255.0.1"}},
	} {
		proc, err := startProcess(work, p.name, p.bin, p.args...)
		if err != nil {
			return procs, err
		}
		procs = append(procs, proc)
	}
	return procs, nil
}

const kwokNodeAnnotation = "kwok.x-k8s.io/node"

func nodeName(n int) string { return fmt.Sprintf("kwok-node-%03d", n) }

// createNodes creates the fake nodes, each with one extended resource per GPU holding its slots,
// as the device plugin advertises them.
func createNodes(ctx context.Context, c client.Client, o options) error {
	return parallel(o.nodes, 16, func(n int) error {
		resources := corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("1k"), corev1.ResourceMemory: resource.MustParse("1Ti"),
			corev1.ResourcePods: resource.MustParse("1k"),
		}
		for g := 0; g < o.gpusPerNode; g++ {
			resources[corev1.ResourceName(fmt.Sprintf("%s%d", sdfleetv1alpha1.ResourcePrefix, g))] = *resource.NewQuantity(int64(o.slots), resource.DecimalSI)
		}
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName(n),
			Labels:      map[string]string{corev1.LabelHostname: nodeName(n), "type": "kwok"},
			Annotations: map[string]string{kwokNodeAnnotation: "fake"}}}
		if err := c.Create(ctx, node); err != nil {
			return fmt.Errorf("create node %s: %w", node.Name, err)
		}
		node.Status = corev1.NodeStatus{Capacity: resources, Allocatable: resources}
		if err := c.Status().Update(ctx, node); err != nil {
			return fmt.Errorf("set the capacity of node %s: %w", node.Name, err)
		}
		return nil
	})
}

func waitForReadyNodes(ctx context.Context, c client.Client, want int, procs []*process) error {
	for {
		var nodes corev1.NodeList
		if err := c.List(ctx, &nodes); err != nil {
			return err
		}
		ready := 0
		for _, n := range nodes.Items {
			for _, cond := range n.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		if ready >= want {
			return nil
		}
		if err := anyExited(procs); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			logs := ""
			for _, p := range procs {
				logs += fmt.Sprintf("\n--- %s (%s):\n%s", p.name, p.log, p.tail())
			}
			return fmt.Errorf("%d of %d KWOK nodes Ready: %w%s", ready, want, ctx.Err(), logs)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// startAgents runs one fake node agent per node: simulated GPUs read through the agent's NVML
// source, their status published by the agent's publisher, sampled every second and written
// on a 2-point memory change or every 10 s, as the agent does by default.
func startAgents(ctx context.Context, c client.Client, o options) (*sync.WaitGroup, error) {
	wg := &sync.WaitGroup{}
	for n := 0; n < o.nodes; n++ {
		sc := &simulator.Scenario{}
		for g := 0; g < o.gpusPerNode; g++ {
			used := 1.0 + float64((n*o.gpusPerNode+g)%5)
			sc.GPUs = append(sc.GPUs, simulator.GPU{MemoryMiB: o.gpuMemoryMiB, Load: simulator.Load{MemoryUsedPercent: &used}})
		}
		if err := sc.Validate(); err != nil {
			return wg, err
		}
		sim, err := simulator.New(sc, simulator.Options{Seed: nodeName(n)})
		if err != nil {
			return wg, err
		}
		src, err := gpu.OpenNVML(sim.Library(), gpu.NVMLOptions{Simulated: true, VendorOf: sim.Vendor})
		if err != nil {
			return wg, err
		}
		pub, err := publisher.New(c, publisher.Options{NodeName: nodeName(n), FieldManager: publisher.DefaultFieldManager,
			Rule: publisher.Rule{MemoryThresholdPercent: 2, Heartbeat: 10 * time.Second}})
		if err != nil {
			_ = src.Close()
			return wg, err
		}
		if _, err := pub.Observe(ctx, agentStatus(src, o.slots)); err != nil {
			_ = src.Close()
			return wg, fmt.Errorf("publish the GPUNode of %s: %w", nodeName(n), err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer src.Close()
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
					// A failed write is tried again on the next sample, as the agent does.
					_, _ = pub.Observe(ctx, agentStatus(src, o.slots))
				}
			}
		}()
	}
	return wg, nil
}

// agentStatus is the GPUNode status the node agent builds from a sample of its source.
func agentStatus(src gpu.Source, slots int) sdfleetv1alpha1.GPUNodeStatus {
	devices := src.Devices()
	samples := src.Sample()
	st := sdfleetv1alpha1.GPUNodeStatus{GPUCount: int32(len(devices)), SampleIntervalSeconds: 1, HeartbeatIntervalSeconds: 10,
		Simulated: true, AgentVersion: "scale-kwok"}
	var used, total float64
	for i, d := range devices {
		g := sdfleetv1alpha1.GPUStatus{Index: int32(d.Index), UUID: d.UUID, Vendor: sdfleetv1alpha1.GPUVendor(d.Vendor),
			ProductName: d.Product, MemoryTotalBytes: int64(d.MemoryTotalBytes),
			ResourceName: d.ResourceName(sdfleetv1alpha1.ResourcePrefix), Slots: int32(slots), Health: sdfleetv1alpha1.GPUHealthy}
		if i < len(samples) && samples[i].Err == nil {
			s := samples[i]
			g.MemoryUsedBytes, g.UtilizationPercent, g.TemperatureCelsius = int64(s.MemoryUsedBytes), int32(s.UtilizationPercent), int32(s.TemperatureCelsius)
			g.PowerWatts = int32(s.PowerMilliwatts / 1000)
		}
		st.HealthyGPUs++
		used += float64(g.MemoryUsedBytes)
		total += float64(g.MemoryTotalBytes)
		st.GPUs = append(st.GPUs, g)
	}
	if total > 0 {
		st.MemoryUsedPercent = int32(100*used/total + 0.5)
	}
	return st
}

// submitJobs creates the jobs, the images split evenly, round-robin over the namespaces.
func submitJobs(ctx context.Context, c client.Client, o options) ([]client.ObjectKey, error) {
	var keys []client.ObjectKey
	for ns := 0; ns < o.namespaces; ns++ {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("tenant-%d", ns)}}); err != nil {
			return nil, err
		}
	}
	for j := 0; j < o.jobs; j++ {
		images := o.images / o.jobs
		if j < o.images%o.jobs {
			images++
		}
		job := sdtesting.MakeJob(fmt.Sprintf("scale-%02d", j), fmt.Sprintf("tenant-%d", j%o.namespaces)).Images(int32(images)).Obj()
		if err := c.Create(ctx, job); err != nil {
			return nil, fmt.Errorf("create job %s/%s: %w", job.Namespace, job.Name, err)
		}
		keys = append(keys, client.ObjectKeyFromObject(job))
	}
	return keys, nil
}

type imageKey struct {
	namespace, job string
	index          int32
}

// podWatcher records every image pod: when it appeared, where the scheduler bound it against
// where the controller placed it, and which images succeeded on how many pods.
type podWatcher struct {
	mu        sync.Mutex
	pods      map[string]*podRecord
	succeeded map[imageKey]int
	created   int
	last      time.Time
}

type podRecord struct {
	disagreed, unscheduled, succeeded bool
}

type watchSummary struct {
	created, disagreements, unscheduled, succeededTwice int
	lastCreated                                         time.Time
	succeeded                                           map[imageKey]int
}

func watchPods(ctx context.Context, cfg *rest.Config) (*podWatcher, error) {
	req, err := labels.NewRequirement(controllers.LabelJobUID, selection.Exists, nil)
	if err != nil {
		return nil, err
	}
	informers, err := crcache.New(cfg, crcache.Options{Scheme: envtest.Scheme(),
		ByObject: map[client.Object]crcache.ByObject{&corev1.Pod{}: {Label: labels.NewSelector().Add(*req)}}})
	if err != nil {
		return nil, err
	}
	inf, err := informers.GetInformer(ctx, &corev1.Pod{})
	if err != nil {
		return nil, err
	}
	w := &podWatcher{pods: map[string]*podRecord{}, succeeded: map[imageKey]int{}}
	_, err = inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { w.observe(obj) },
		UpdateFunc: func(_, obj any) { w.observe(obj) },
	})
	if err != nil {
		return nil, err
	}
	go func() { _ = informers.Start(ctx) }()
	if !informers.WaitForCacheSync(ctx) {
		return nil, errors.New("the pod informer never synced")
	}
	return w, nil
}

func (w *podWatcher) observe(obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	key := pod.Namespace + "/" + pod.Name
	w.mu.Lock()
	defer w.mu.Unlock()
	rec := w.pods[key]
	if rec == nil {
		rec = &podRecord{}
		w.pods[key] = rec
		w.created++
		w.last = time.Now()
	}
	if pod.Spec.NodeName != "" && pod.Spec.NodeName != pod.Annotations[controllers.AnnotationNode] && !rec.disagreed {
		rec.disagreed = true
	}
	for _, cond := range pod.Status.Conditions {
		if cond.Type == corev1.PodScheduled && cond.Status == corev1.ConditionFalse && cond.Reason == corev1.PodReasonUnschedulable {
			rec.unscheduled = true
		}
	}
	if pod.Status.Phase == corev1.PodSucceeded && !rec.succeeded {
		rec.succeeded = true
		index, _ := strconv.ParseInt(pod.Labels[controllers.LabelImageIndex], 10, 32)
		w.succeeded[imageKey{pod.Namespace, pod.Labels[controllers.LabelJob], int32(index)}]++
	}
}

func (w *podWatcher) summary() watchSummary {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := watchSummary{created: w.created, lastCreated: w.last, succeeded: map[imageKey]int{}}
	for _, rec := range w.pods {
		if rec.disagreed {
			s.disagreements++
		}
		if rec.unscheduled {
			s.unscheduled++
		}
	}
	for k, n := range w.succeeded {
		s.succeeded[k] = n
		if n > 1 {
			s.succeededTwice++
		}
	}
	return s
}

func waitForJobs(ctx context.Context, c client.Client, jobs []client.ObjectKey, w *podWatcher, procs []*process, progress io.Writer) error {
	lastReport := time.Now()
	for {
		done, succeeded, total := 0, int32(0), int32(0)
		for _, key := range jobs {
			var job sdfleetv1alpha1.ImageGenerationJob
			if err := c.Get(ctx, key, &job); err != nil {
				return err
			}
			if job.Status.Phase == sdfleetv1alpha1.JobPhaseFailed {
				return fmt.Errorf("job %s failed: %+v", key, job.Status.Conditions)
			}
			if job.Status.Phase == sdfleetv1alpha1.JobPhaseComplete {
				done++
			}
			succeeded += job.Status.Succeeded
			total += job.Spec.Images
		}
		if done == len(jobs) {
			return nil
		}
		if err := anyExited(procs); err != nil {
			return err
		}
		if time.Since(lastReport) > 10*time.Second {
			s := w.summary()
			fmt.Fprintf(progress, "  %d/%d images succeeded, %d/%d jobs complete, %d pods created, %d disagreements\n",
				succeeded, total, done, len(jobs), s.created, s.disagreements)
			lastReport = time.Now()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d images succeeded, %d of %d jobs complete: %w", succeeded, total, done, len(jobs), ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// parallel runs f(0..n-1), at most limit at a time, and joins the errors.
func parallel(n, limit int, f func(i int) error) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	sem := make(chan struct{}, limit)
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := f(i); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
