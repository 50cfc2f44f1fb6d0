package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
	crcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crlog "sigs.k8s.io/controller-runtime/pkg/log"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	"github.com/sdfleet/sdfleet/hack/benchproc"
	"github.com/sdfleet/sdfleet/test/envtest"
)

type options struct {
	requests, concurrency, tokens, images int
	timeout                               time.Duration
}

func main() {
	var o options
	flag.IntVar(&o.requests, "requests", 1000, "txt2img requests to send in all")
	flag.IntVar(&o.concurrency, "concurrency", 32, "requests in flight at once")
	flag.IntVar(&o.tokens, "tokens", 8, "callers (service accounts), each with its own token; requests go round robin")
	flag.IntVar(&o.images, "images", 2, "batch_size of each request")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up after this long")
	flag.Parse()
	crlog.SetLogger(logr.Discard())
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench-gateway:", err)
		os.Exit(1)
	}
}

const (
	ns         = "load"
	hostOutput = "/srv/bench/out"
)

func run(o options) error {
	if o.requests < 1 || o.concurrency < 1 || o.tokens < 1 || o.images < 1 || o.images > 16 {
		return errors.New("--requests, --concurrency and --tokens must be at least 1, --images 1 to 16")
	}
	sigCtx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(sigCtx, o.timeout)
	defer cancel()
	work, err := os.MkdirTemp("", "bench-gateway-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	outDir := filepath.Join(work, "out")

	fmt.Fprintln(os.Stderr, "building cmd/gateway ...")
	bin := filepath.Join(work, "gateway")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/gateway")
	build.Dir = envtest.RepoRoot()
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build cmd/gateway: %w", err)
	}

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
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	tokens, err := callers(ctx, c, kube, o.tokens)
	if err != nil {
		return err
	}
	if err := publishGPUs(ctx, c); err != nil {
		return err
	}

	stand, err := startStandIn(ctx, cfg, c, outDir)
	if err != nil {
		return err
	}

	kubeconfig := filepath.Join(work, "kubeconfig")
	if err := benchproc.WriteKubeconfig(env.Config, kubeconfig); err != nil {
		return err
	}
	configFile := filepath.Join(work, "config.yaml")
	if err := os.WriteFile(configFile, []byte("models:\n  tiny:\n    hostPath: {path: /models/tiny}\ndefaultModel: tiny\n"+
		"output:\n  hostPath: {path: "+hostOutput+"}\n"), 0o644); err != nil {
		return err
	}
	addr, err := benchproc.FreeAddress()
	if err != nil {
		return err
	}
	probe, err := benchproc.FreeAddress()
	if err != nil {
		return err
	}
	gw := exec.Command(bin, "--kubeconfig", kubeconfig, "--config", configFile, "--output-dir", outDir,
		"--bind-address", addr, "--health-probe-bind-address", probe, "--rate-limit=100000", "--rate-burst=100000",
		"--kube-api-qps=2000", "--kube-api-burst=4000", "--zap-log-level=error")
	gw.Stdout, gw.Stderr = os.Stderr, os.Stderr
	if err := gw.Start(); err != nil {
		return fmt.Errorf("start the gateway: %w", err)
	}
	defer func() {
		_ = gw.Process.Signal(syscall.SIGTERM)
		_ = gw.Wait()
	}()
	if err := benchproc.WaitForOK(ctx, "gateway", "http://"+probe+"/readyz"); err != nil {
		return err
	}
	base := "http://" + addr
	httpClient := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.concurrency}}
	_, rssIdle, err := benchproc.Figures(gw.Process.Pid)
	if err != nil {
		return err
	}

	// Requests that create no job: authentication, authorisation and a cache read.
	fmt.Fprintln(os.Stderr, "GET /v1/gpus ...")
	plain, err := load(ctx, o.requests, o.concurrency, func(i int) (time.Duration, error) {
		start := time.Now()
		r, err := send(ctx, httpClient, "GET", base+"/v1/gpus", tokens[i%len(tokens)], nil)
		if err == nil && r.code != http.StatusOK {
			err = fmt.Errorf("GET /v1/gpus: %d %s", r.code, r.body)
		}
		return time.Since(start), err
	})
	if err != nil {
		return err
	}

	fmt.Fprintf(os.Stderr, "%d txt2img requests of %d images, %d at once, from %d callers ...\n", o.requests, o.images, o.concurrency, o.tokens)
	var answered sync.Map // request index -> job name
	var totals, overheads []time.Duration
	var mu sync.Mutex
	start := time.Now()
	_, err = load(ctx, o.requests, o.concurrency, func(i int) (time.Duration, error) {
		prompt := fmt.Sprintf("load request %d", i)
		body, _ := json.Marshal(map[string]any{"prompt": prompt, "batch_size": o.images, "steps": 1, "width": 64, "height": 64, "seed": i})
		t0 := time.Now()
		r, err := send(ctx, httpClient, "POST", base+"/sdapi/v1/txt2img", tokens[i%len(tokens)], body)
		total := time.Since(t0)
		if err != nil {
			return total, err
		}
		if r.code != http.StatusOK {
			return total, fmt.Errorf("request %d: %d %s", i, r.code, r.body)
		}
		job, err := checkAnswer(r.body, prompt, o.images, stand)
		if err != nil {
			return total, fmt.Errorf("request %d: %w", i, err)
		}
		if prev, dup := answered.LoadOrStore(i, job); dup {
			return total, fmt.Errorf("request %d answered twice (jobs %s and %s)", i, prev, job)
		}
		gen := stand.generation(job)
		mu.Lock()
		totals, overheads = append(totals, total), append(overheads, total-gen)
		mu.Unlock()
		return total, nil
	})
	elapsed := time.Since(start)
	if err != nil {
		return err
	}
	cpu, rssPeak, err := benchproc.Figures(gw.Process.Pid)
	if err != nil {
		return err
	}
	rssNow, err := benchproc.StatusBytes(gw.Process.Pid, "VmRSS:")
	if err != nil {
		return err
	}

	// Nothing lost, nothing twice: one job per request, each answered once.
	var list sdfleetv1alpha1.ImageGenerationJobList
	if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return err
	}
	perPrompt := map[string]int{}
	for _, j := range list.Items {
		perPrompt[j.Spec.Prompt]++
	}
	count := 0
	answered.Range(func(any, any) bool { count++; return true })
	for i := range o.requests {
		if n := perPrompt[fmt.Sprintf("load request %d", i)]; n != 1 {
			return fmt.Errorf("request %d made %d jobs, want exactly 1", i, n)
		}
	}
	if count != o.requests || len(list.Items) != o.requests {
		return fmt.Errorf("%d requests answered and %d jobs for %d requests", count, len(list.Items), o.requests)
	}

	fmt.Printf("requests                   %d txt2img of %d images, %d at once, %d callers\n", o.requests, o.images, o.concurrency, o.tokens)
	fmt.Printf("requests per second        %.1f (%.2f s in all)\n", float64(o.requests)/elapsed.Seconds(), elapsed.Seconds())
	fmt.Printf("end-to-end latency         p50 %s  p99 %s\n", pct(totals, 50), pct(totals, 99))
	fmt.Printf("gateway overhead           p50 %s  p99 %s (end to end minus the job's time with the controller stand-in)\n", pct(overheads, 50), pct(overheads, 99))
	fmt.Printf("GET /v1/gpus latency       p50 %s  p99 %s (%d requests: token and access review from cache, informer read)\n", pct(plain, 50), pct(plain, 99), len(plain))
	fmt.Printf("gateway memory             %.1f MiB idle, %.1f MiB after the load, %.1f MiB peak (VmHWM)\n",
		float64(rssIdle)/(1<<20), float64(rssNow)/(1<<20), float64(rssPeak)/(1<<20))
	fmt.Printf("gateway CPU seconds        %.2f (both loads)\n", cpu)
	fmt.Printf("lost or answered twice     none (%d requests, %d jobs, each answered once with its own images)\n", count, len(list.Items))
	return nil
}

// callers creates n service accounts allowed to create and read jobs and to list GPUs, and
// returns a token of each.
func callers(ctx context.Context, c client.Client, kube kubernetes.Interface, n int) ([]string, error) {
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return nil, err
	}
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "image-users"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{"sdfleet.io"}, Resources: []string{"imagegenerationjobs"}, Verbs: []string{"create", "get", "list", "watch"}},
		{APIGroups: []string{"sdfleet.io"}, Resources: []string{"gpunodes"}, Verbs: []string{"get", "list", "watch"}},
	}}
	if err := c.Create(ctx, role); err != nil {
		return nil, err
	}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "image-users"},
		RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "image-users"}}
	var tokens []string
	for i := range n {
		name := fmt.Sprintf("app-%d", i)
		if err := c.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}); err != nil {
			return nil, err
		}
		tr, err := kube.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name,
			&authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}}, metav1.CreateOptions{})
		if err != nil {
			return nil, err
		}
		tokens = append(tokens, tr.Status.Token)
		binding.Subjects = append(binding.Subjects, rbacv1.Subject{Kind: "ServiceAccount", Name: name, Namespace: ns})
	}
	return tokens, c.Create(ctx, binding)
}

// publishGPUs creates 4 nodes of 8 simulated GPUs for /v1/gpus.
func publishGPUs(ctx context.Context, c client.Client) error {
	for n := range 4 {
		gn := &sdfleetv1alpha1.GPUNode{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("node-%d", n)}}
		if err := c.Create(ctx, gn); err != nil {
			return err
		}
		now := metav1.Now()
		gn.Status = sdfleetv1alpha1.GPUNodeStatus{GPUCount: 8, HealthyGPUs: 8, LastHeartbeatTime: &now, Simulated: true}
		for g := range int32(8) {
			gn.Status.GPUs = append(gn.Status.GPUs, sdfleetv1alpha1.GPUStatus{Index: g, UUID: fmt.Sprintf("GPU-%d-%d", n, g),
				ProductName: "NVIDIA H100 80GB HBM3", MemoryTotalBytes: 80 << 30, Health: sdfleetv1alpha1.GPUHealthy,
				ResourceName: sdfleetv1alpha1.ResourcePrefix + strconv.Itoa(int(g)), Slots: 4})
		}
		if err := c.Status().Update(ctx, gn); err != nil {
			return err
		}
	}
	return nil
}

// standIn plays the controller and the image pods: it completes each job as soon as its
// informer sees it, writing one real PNG per image, and remembers how long each job was in
// its hands.
type standIn struct {
	c      client.Client
	outDir string
	png    []byte
	mu     sync.Mutex
	held   map[string]time.Duration
	queue  chan *sdfleetv1alpha1.ImageGenerationJob
	seen   map[string]time.Time
}

func startStandIn(ctx context.Context, cfg *rest.Config, c client.Client, outDir string) (*standIn, error) {
	img := image.NewRGBA(image.Rect(0, 0, 64, 64))
	for y := range 64 {
		for x := range 64 {
			img.Set(x, y, color.RGBA{R: uint8(x * 4), G: uint8(y * 4), B: 128, A: 255})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		return nil, err
	}
	s := &standIn{c: c, outDir: outDir, png: b.Bytes(), held: map[string]time.Duration{}, seen: map[string]time.Time{},
		queue: make(chan *sdfleetv1alpha1.ImageGenerationJob, 100000)}
	cache, err := crcache.New(cfg, crcache.Options{Scheme: envtest.Scheme()})
	if err != nil {
		return nil, err
	}
	inf, err := cache.GetInformer(ctx, &sdfleetv1alpha1.ImageGenerationJob{})
	if err != nil {
		return nil, err
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{AddFunc: func(obj any) {
		job := obj.(*sdfleetv1alpha1.ImageGenerationJob)
		if meta.IsStatusConditionTrue(job.Status.Conditions, sdfleetv1alpha1.JobComplete) {
			return
		}
		s.mu.Lock()
		s.seen[job.Name] = time.Now()
		s.mu.Unlock()
		s.queue <- job.DeepCopy()
	}}); err != nil {
		return nil, err
	}
	go func() { _ = cache.Start(ctx) }()
	if !cache.WaitForCacheSync(ctx) {
		return nil, errors.New("the stand-in's cache did not sync")
	}
	for range 16 {
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case job := <-s.queue:
					if err := s.complete(ctx, job); err != nil && ctx.Err() == nil {
						fmt.Fprintln(os.Stderr, "bench-gateway: complete", job.Name+":", err)
					}
				}
			}
		}()
	}
	return s, nil
}

func (s *standIn) complete(ctx context.Context, job *sdfleetv1alpha1.ImageGenerationJob) error {
	dir := filepath.Join(s.outDir, job.Namespace, job.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	now := metav1.Now()
	seed := int64(0)
	if job.Spec.Seed != nil {
		seed = *job.Spec.Seed
	}
	for i := range job.Spec.Images {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%d.png", i)), s.png, 0o644); err != nil {
			return err
		}
		job.Status.Images = append(job.Status.Images, sdfleetv1alpha1.ImageStatus{Index: i, Phase: sdfleetv1alpha1.ImageSucceeded,
			Seed: seed + int64(i), GPUUUID: fmt.Sprintf("GPU-%d-%d", i%4, i%8), FinishTime: &now,
			OutputPath: fmt.Sprintf("%s/%s/%s/%d.png", hostOutput, job.Namespace, job.Name, i)})
	}
	job.Status.Succeeded, job.Status.Phase, job.Status.Seed = job.Spec.Images, sdfleetv1alpha1.JobPhaseComplete, &seed
	meta.SetStatusCondition(&job.Status.Conditions, metav1.Condition{Type: sdfleetv1alpha1.JobComplete,
		Status: metav1.ConditionTrue, Reason: "Completed", Message: "every image succeeded"})
	if err := s.c.Status().Update(ctx, job); err != nil {
		return err
	}
	s.mu.Lock()
	s.held[job.Name] = time.Since(s.seen[job.Name])
	s.mu.Unlock()
	return nil
}

// generation is how long the stand-in held the job: the part of a request's latency that a
// real cluster spends generating.
func (s *standIn) generation(job string) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held[job]
}

// checkAnswer checks a txt2img answer: the right number of PNGs, the stand-in's bytes, and a
// job whose prompt is this request's. It returns the job's name.
func checkAnswer(body []byte, prompt string, images int, s *standIn) (string, error) {
	var r struct {
		Images []string `json:"images"`
		Info   string   `json:"info"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return "", fmt.Errorf("answer is not JSON: %w", err)
	}
	var info struct {
		Prompt string `json:"prompt"`
		Job    string `json:"job"`
	}
	if err := json.Unmarshal([]byte(r.Info), &info); err != nil {
		return "", fmt.Errorf("info is not JSON: %w", err)
	}
	if info.Prompt != prompt {
		return "", fmt.Errorf("answered with the images of %q", info.Prompt)
	}
	if len(r.Images) != images {
		return "", fmt.Errorf("%d images, want %d", len(r.Images), images)
	}
	for _, b64 := range r.Images {
		data, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || !bytes.Equal(data, s.png) {
			return "", errors.New("an image is not the PNG the job wrote")
		}
	}
	_, name, _ := strings.Cut(info.Job, "/")
	return name, nil
}

// load runs n calls of f, at most concurrency at once, and returns their durations; the first
// error stops it.
func load(ctx context.Context, n, concurrency int, f func(i int) (time.Duration, error)) ([]time.Duration, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := atomic.Int64{}
	var mu sync.Mutex
	var out []time.Duration
	var wg sync.WaitGroup
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				d, err := f(i)
				if err != nil {
					cancel(err)
					return
				}
				mu.Lock()
				out = append(out, d)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	return out, nil
}

type response struct {
	code int
	body []byte
}

func send(ctx context.Context, c *http.Client, method, url, token string, body []byte) (response, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return response{}, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return response{code: resp.StatusCode, body: data}, err
}

func pct(ds []time.Duration, p int) string {
	if len(ds) == 0 {
		return "-"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	if i > 0 {
		i--
	}
	return s[i].Round(10 * time.Microsecond).String()
}
