package gateway_test

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	crcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	"github.com/sdfleet/sdfleet/gateway"
	"github.com/sdfleet/sdfleet/test/envtest"
)

// The suite runs the gateway against a real API server: tokens come from the TokenRequest
// API, the API server reviews them, and RBAC answers the access reviews. No controller runs:
// finishJob plays it, writing real PNGs and the job's status as the controller would.
var (
	env       *envtest.Environment
	k8s       client.Client
	kube      kubernetes.Interface
	cache     crcache.Cache
	suiteCtx  context.Context
	stopSuite context.CancelFunc
	outputDir string
	nsCounter atomic.Int32
)

// hostOutput is the output location the gateway's configuration names.
const hostOutput = "/srv/sdfleet/out"

func TestGateway(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Gateway against a real API server")
}

var _ = BeforeSuite(func() {
	ctrl.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	SetDefaultEventuallyTimeout(20 * time.Second)
	SetDefaultEventuallyPollingInterval(20 * time.Millisecond)
	suiteCtx, stopSuite = context.WithCancel(context.Background())
	var err error
	env, err = envtest.Start()
	Expect(err).NotTo(HaveOccurred())
	k8s, err = client.New(env.Config, client.Options{Scheme: envtest.Scheme()})
	Expect(err).NotTo(HaveOccurred())
	kube, err = kubernetes.NewForConfig(env.Config)
	Expect(err).NotTo(HaveOccurred())
	cache, err = crcache.New(env.Config, crcache.Options{Scheme: envtest.Scheme()})
	Expect(err).NotTo(HaveOccurred())
	outputDir = GinkgoT().TempDir()
})

var _ = AfterSuite(func() {
	if stopSuite != nil {
		stopSuite()
	}
	if env != nil {
		Expect(env.Stop()).To(Succeed())
	}
})

// cacheStarted is set once the shared cache runs: servers must register their informer
// handlers first, so the first newGateway starts it.
var cacheStarted atomic.Bool

// config is the administrator's configuration of the tests' gateways.
func config() gateway.Config {
	return gateway.Config{
		Models: gateway.Models{
			Models: map[string]sdfleetv1alpha1.StorageLocation{
				"tiny": {HostPath: &sdfleetv1alpha1.HostPathLocation{Path: "/var/lib/sdfleet/models/tiny"}},
				"sd15": {PersistentVolumeClaim: &sdfleetv1alpha1.PVCLocation{ClaimName: "models", Path: "sd15"}},
			},
			DefaultModel: "tiny",
			Output:       sdfleetv1alpha1.StorageLocation{HostPath: &sdfleetv1alpha1.HostPathLocation{Path: hostOutput}},
		},
		OutputDir: outputDir, WaitTimeout: 30 * time.Second, MaxBodyBytes: 64 << 10, MaxImagesPerRequest: 16,
		RequestsPerSecond: 1000, Burst: 1000, AuthCacheTTL: 10 * time.Second,
	}
}

// newGateway serves a gateway with cfg on a loopback port for the rest of the test.
func newGateway(cfg gateway.Config) string {
	GinkgoHelper()
	srv, err := gateway.New(cfg, gateway.Dependencies{Cache: cache, Client: k8s, APIReader: k8s, Kube: kube,
		Log: ctrl.Log.WithName("gateway")})
	Expect(err).NotTo(HaveOccurred())
	Expect(srv.Register(suiteCtx)).To(Succeed())
	if cacheStarted.CompareAndSwap(false, true) {
		go func() {
			defer GinkgoRecover()
			Expect(cache.Start(suiteCtx)).To(Succeed())
		}()
		Expect(cache.WaitForCacheSync(suiteCtx)).To(BeTrue())
	}
	ts := httptest.NewServer(srv)
	DeferCleanup(ts.Close)
	return ts.URL
}

// tenant is a namespace with service accounts and their tokens.
type tenant struct {
	ns string
	// writer may create, get, list and watch jobs and list GPU nodes; reader may get jobs
	// only; stranger may do nothing.
	writer, reader, stranger string
}

// newTenant creates a namespace, three service accounts with tokens from the TokenRequest
// API and RBAC for the writer and the reader.
func newTenant() tenant {
	GinkgoHelper()
	ns := fmt.Sprintf("team-%d", nsCounter.Add(1))
	Expect(k8s.Create(suiteCtx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	t := tenant{ns: ns}
	tenants := envtest.Tenants{Client: k8s, Kube: kube}
	for name, dst := range map[string]*string{"writer": &t.writer, "reader": &t.reader, "stranger": &t.stranger} {
		token, err := tenants.ServiceAccountToken(suiteCtx, ns, name)
		Expect(err).NotTo(HaveOccurred())
		*dst = token
	}
	Expect(tenants.GrantJobs(suiteCtx, ns, "writer", "create", "get", "list", "watch")).To(Succeed())
	Expect(tenants.GrantJobs(suiteCtx, ns, "reader", "get")).To(Succeed())
	// The writer may see the cluster's GPUs.
	Expect(tenants.GrantGPUNodeRead(suiteCtx, ns, "writer")).To(Succeed())
	return t
}

// unfinishedJob waits for a job in ns that has not finished yet and returns it.
func unfinishedJob(ns string) *sdfleetv1alpha1.ImageGenerationJob {
	GinkgoHelper()
	var found *sdfleetv1alpha1.ImageGenerationJob
	Eventually(func(g Gomega) {
		var list sdfleetv1alpha1.ImageGenerationJobList
		g.Expect(k8s.List(suiteCtx, &list, client.InNamespace(ns))).To(Succeed())
		for i := range list.Items {
			if !meta.IsStatusConditionTrue(list.Items[i].Status.Conditions, sdfleetv1alpha1.JobComplete) {
				found = &list.Items[i]
			}
		}
		g.Expect(found).NotTo(BeNil(), "no unfinished job in %s", ns)
	}).Should(Succeed())
	return found
}

// finishJob plays the controller and the image pods: it writes a real PNG per image into the
// output volume and marks the job Complete, image i on gpus[i mod len(gpus)].
func finishJob(job *sdfleetv1alpha1.ImageGenerationJob, gpus []string) {
	GinkgoHelper()
	now := metav1.Now()
	job.Status.Images = nil
	for i := range job.Spec.Images {
		rel := filepath.Join(job.Namespace, job.Name, fmt.Sprintf("%d.png", i))
		Expect(os.MkdirAll(filepath.Dir(filepath.Join(outputDir, rel)), 0o755)).To(Succeed())
		Expect(os.WriteFile(filepath.Join(outputDir, rel), pngBytes(int(job.Spec.Width), int(job.Spec.Height), uint8(i)), 0o644)).To(Succeed())
		job.Status.Images = append(job.Status.Images, sdfleetv1alpha1.ImageStatus{
			Index: i, Phase: sdfleetv1alpha1.ImageSucceeded, Seed: 42 + int64(i), Attempts: 1, Device: "gpu",
			GPUUUID: gpus[int(i)%len(gpus)], GPUIndex: ptr.To(i % int32(len(gpus))), Node: "node-a",
			OutputPath: hostOutput + "/" + rel, DurationMilliseconds: ptr.To[int64](1200), FinishTime: &now,
		})
	}
	job.Status.Succeeded, job.Status.Phase, job.Status.Seed = job.Spec.Images, sdfleetv1alpha1.JobPhaseComplete, ptr.To[int64](42)
	job.Status.CompletedIndexes = fmt.Sprintf("0-%d", job.Spec.Images-1)
	meta.SetStatusCondition(&job.Status.Conditions, metav1.Condition{Type: sdfleetv1alpha1.JobComplete,
		Status: metav1.ConditionTrue, Reason: "Completed", Message: "every image succeeded"})
	Expect(k8s.Status().Update(suiteCtx, job)).To(Succeed())
}

// pngBytes is a real PNG of the given size, its colour set by shade.
func pngBytes(w, h int, shade uint8) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{R: shade * 40, G: uint8(x), B: uint8(y), A: 255})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		panic(err)
	}
	return b.Bytes()
}

// result is a response read whole.
type result struct {
	Code   int
	Header http.Header
	Body   []byte
}

// do sends a request with a bearer token (none when empty); headers are name, value pairs.
// It is safe to call from any goroutine.
func do(method, url, token string, body []byte, headers ...string) (result, error) {
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		return result{}, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return result{}, err
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(resp.Body)
	return result{Code: resp.StatusCode, Header: resp.Header, Body: data}, err
}

// call is do for the test's own goroutine.
func call(method, url, token string, body []byte, headers ...string) result {
	GinkgoHelper()
	r, err := do(method, url, token, body, headers...)
	Expect(err).NotTo(HaveOccurred())
	return r
}

// callAsync sends a request that waits for a job; the response arrives on the channel.
func callAsync(method, url, token string, body []byte, headers ...string) <-chan result {
	ch := make(chan result, 1)
	go func() {
		defer GinkgoRecover()
		r, err := do(method, url, token, body, headers...)
		Expect(err).NotTo(HaveOccurred())
		ch <- r
	}()
	return ch
}
