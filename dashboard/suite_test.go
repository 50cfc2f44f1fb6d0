package dashboard_test

import (
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	ctrl "sigs.k8s.io/controller-runtime"
	crcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	"github.com/sdfleet/sdfleet/gateway"
	"github.com/sdfleet/sdfleet/test/envtest"
)

// The suite drives Debian's Chromium, headless, against the gateway on a real API server.
// No controller runs: the tests play the node agent (GPUNode status) and the controller (job
// status and PNG files on the output volume).
var (
	env          *envtest.Environment
	k8s          client.Client
	suiteCtx     context.Context
	stopSuite    context.CancelFunc
	gatewayURL   string
	outputDir    string
	artifactsDir string
	browser      context.Context
)

// hostOutput is the output location the gateway's configuration names.
const hostOutput = "/srv/sdfleet/out"

func TestDashboard(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Dashboard in a real browser")
}

var _ = BeforeSuite(func() {
	ctrl.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	SetDefaultEventuallyTimeout(20 * time.Second)
	SetDefaultEventuallyPollingInterval(50 * time.Millisecond)
	suiteCtx, stopSuite = context.WithCancel(context.Background())

	chromium, err := exec.LookPath("chromium")
	Expect(err).NotTo(HaveOccurred(), "the dashboard tests need Debian's chromium: run hack/install-prerequisites.sh")

	env, err = envtest.Start()
	Expect(err).NotTo(HaveOccurred())
	k8s, err = client.New(env.Config, client.Options{Scheme: envtest.Scheme()})
	Expect(err).NotTo(HaveOccurred())
	kube, err := kubernetes.NewForConfig(env.Config)
	Expect(err).NotTo(HaveOccurred())
	cache, err := crcache.New(env.Config, crcache.Options{Scheme: envtest.Scheme()})
	Expect(err).NotTo(HaveOccurred())
	outputDir = GinkgoT().TempDir()
	cfg := gateway.Config{
		Models: gateway.Models{
			Models: map[string]sdfleetv1alpha1.StorageLocation{
				"tiny": {HostPath: &sdfleetv1alpha1.HostPathLocation{Path: "/var/lib/sdfleet/models/tiny"}},
			},
			DefaultModel: "tiny",
			Output:       sdfleetv1alpha1.StorageLocation{HostPath: &sdfleetv1alpha1.HostPathLocation{Path: hostOutput}},
		},
		OutputDir: outputDir, WaitTimeout: 30 * time.Second, MaxBodyBytes: 64 << 10, MaxImagesPerRequest: 16,
		RequestsPerSecond: 1000, Burst: 1000, AuthCacheTTL: 10 * time.Second,
	}
	srv, err := gateway.New(cfg, gateway.Dependencies{Cache: cache, Client: k8s, APIReader: k8s, Kube: kube,
		Log: ctrl.Log.WithName("gateway")})
	Expect(err).NotTo(HaveOccurred())
	Expect(srv.Register(suiteCtx)).To(Succeed())
	go func() {
		defer GinkgoRecover()
		Expect(cache.Start(suiteCtx)).To(Succeed())
	}()
	Expect(cache.WaitForCacheSync(suiteCtx)).To(BeTrue())
	ts := httptest.NewServer(srv)
	DeferCleanup(ts.Close)
	gatewayURL = ts.URL

	// Screenshots go to $ARTIFACTS when set (CI keeps that folder), else to a temporary folder.
	artifactsDir = os.Getenv("ARTIFACTS")
	if artifactsDir == "" {
		artifactsDir = GinkgoT().TempDir()
	}
	artifactsDir = filepath.Join(artifactsDir, "dashboard")
	Expect(os.MkdirAll(artifactsDir, 0o755)).To(Succeed())
	GinkgoWriter.Printf("screenshots in %s\n", artifactsDir)

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium),
		chromedp.WindowSize(1280, 1000), chromedp.DisableGPU,
		// Chromium's sandbox needs user namespaces, which CI containers running as root lack.
		chromedp.NoSandbox)
	alloc, cancelAlloc := chromedp.NewExecAllocator(suiteCtx, opts...)
	DeferCleanup(cancelAlloc)
	var cancelBrowser context.CancelFunc
	browser, cancelBrowser = chromedp.NewContext(alloc)
	DeferCleanup(cancelBrowser)
})

var _ = AfterSuite(func() {
	if stopSuite != nil {
		stopSuite()
	}
	if env != nil {
		Expect(env.Stop()).To(Succeed())
	}
})

// newViewer creates a namespace and a service account that may create and read jobs there
// and see the cluster's GPUs, and returns the namespace and a token from the TokenRequest API.
func newViewer(ns string) string {
	GinkgoHelper()
	Expect(k8s.Create(suiteCtx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	kube, err := kubernetes.NewForConfig(env.Config)
	Expect(err).NotTo(HaveOccurred())
	tenants := envtest.Tenants{Client: k8s, Kube: kube}
	token, err := tenants.ServiceAccountToken(suiteCtx, ns, "viewer")
	Expect(err).NotTo(HaveOccurred())
	Expect(tenants.GrantJobs(suiteCtx, ns, "viewer", "create", "get", "list", "watch")).To(Succeed())
	Expect(tenants.GrantGPUNodeRead(suiteCtx, ns, "viewer")).To(Succeed())
	return token
}
