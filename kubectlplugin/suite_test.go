package kubectlplugin_test

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gbytes"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	ctrl "sigs.k8s.io/controller-runtime"
	crcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	"github.com/sdfleet/sdfleet/gateway"
	"github.com/sdfleet/sdfleet/kubectlplugin"
	"github.com/sdfleet/sdfleet/test/envtest"
)

// The suite runs the plugin's commands as kubectl would, against a real API server and, for
// the commands that download, a gateway on a loopback port. No controller runs: the tests
// write the GPUNodes, the jobs' status, their events and their PNGs as the agent and the
// controller would.
var (
	env        *envtest.Environment
	k8s        client.Client
	kube       kubernetes.Interface
	suiteCtx   context.Context
	stopSuite  context.CancelFunc
	kubeconfig string
	gatewayURL string
	outputDir  string
)

// hostOutput is the jobs' output location (controllers/testing's MakeJob), which the
// gateway reads at outputDir.
const hostOutput = "/srv/images"

func TestKubectlPlugin(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "kubectl sdfleet against a real API server")
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
	kubeconfig = writeKubeconfig()

	cache, err := crcache.New(env.Config, crcache.Options{Scheme: envtest.Scheme()})
	Expect(err).NotTo(HaveOccurred())
	outputDir = GinkgoT().TempDir()
	srv, err := gateway.New(gateway.Config{
		Models: gateway.Models{
			Models: map[string]sdfleetv1alpha1.StorageLocation{
				"tiny": {HostPath: &sdfleetv1alpha1.HostPathLocation{Path: "/models/tiny"}},
			},
			DefaultModel: "tiny",
			Output:       sdfleetv1alpha1.StorageLocation{HostPath: &sdfleetv1alpha1.HostPathLocation{Path: hostOutput}},
		},
		OutputDir: outputDir, WaitTimeout: 30 * time.Second, MaxBodyBytes: 64 << 10, MaxImagesPerRequest: 16,
		RequestsPerSecond: 1000, Burst: 1000, AuthCacheTTL: 10 * time.Second,
	}, gateway.Dependencies{Cache: cache, Client: k8s, APIReader: k8s, Kube: kube, Log: ctrl.Log.WithName("gateway")})
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
})

var _ = AfterSuite(func() {
	if stopSuite != nil {
		stopSuite()
	}
	if env != nil {
		Expect(env.Stop()).To(Succeed())
	}
})

// writeKubeconfig writes a kubeconfig of the API server with two contexts: "studio" (the
// current one, namespace studio) and "other" (namespace other).
func writeKubeconfig() string {
	GinkgoHelper()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["envtest"] = &clientcmdapi.Cluster{Server: env.Config.Host, CertificateAuthorityData: env.Config.CAData}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: env.Config.CertData, ClientKeyData: env.Config.KeyData}
	cfg.Contexts["studio"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "admin", Namespace: "studio"}
	cfg.Contexts["other"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "admin", Namespace: "other"}
	cfg.CurrentContext = "studio"
	path := filepath.Join(GinkgoT().TempDir(), "kubeconfig")
	Expect(clientcmd.WriteToFile(*cfg, path)).To(Succeed())
	return path
}

// kubectl runs `kubectl sdfleet ARGS` with the suite's kubeconfig, its output not a terminal.
func kubectl(args ...string) (string, error) {
	out, errOut := gbytes.NewBuffer(), gbytes.NewBuffer()
	err := run(out, errOut, args...)
	return string(out.Contents()) + string(errOut.Contents()), err
}

func run(out, errOut *gbytes.Buffer, args ...string) error {
	cmd := kubectlplugin.NewCommand(genericiooptions.IOStreams{In: gbytes.NewBuffer(), Out: out, ErrOut: errOut})
	cmd.SetArgs(append([]string{"--kubeconfig", kubeconfig}, args...))
	return cmd.ExecuteContext(suiteCtx)
}

// serviceAccountToken creates namespace ns's service account name, allowed verbs on jobs
// there, and returns a token for it.
func serviceAccountToken(ns, name string, verbs ...string) string {
	GinkgoHelper()
	tenants := envtest.Tenants{Client: k8s, Kube: kube}
	token, err := tenants.ServiceAccountToken(suiteCtx, ns, name)
	Expect(err).NotTo(HaveOccurred())
	Expect(tenants.GrantJobs(suiteCtx, ns, name, verbs...)).To(Succeed())
	return token
}
