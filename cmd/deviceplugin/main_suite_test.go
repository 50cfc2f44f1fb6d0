package main_test

import (
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gexec"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sdfleet/sdfleet/test/envtest"
)

// These specs build the real binary the way the image does (cgo, lazy binding) and run it
// against the envtest API server: on this machine there is no libnvidia-ml, which is exactly the
// CPU-only-node case.

// BuildFlags are the flags the Makefile uses for the agent; lazy binding lets the binary start
// where libnvidia-ml is missing, since go-nvml leaves the NVML symbols unresolved until dlopen.
var BuildFlags = []string{"-ldflags=-extldflags=-Wl,-z,lazy"}

var (
	testEnv    *envtest.Environment
	k8s        client.Client
	binary     string
	kubeconfig string
)

func TestDevicePluginBinary(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "deviceplugin binary suite")
}

var _ = BeforeSuite(func() {
	var err error
	binary, err = gexec.BuildWithEnvironment("github.com/sdfleet/sdfleet/cmd/deviceplugin", []string{"CGO_ENABLED=1"}, BuildFlags...)
	Expect(err).NotTo(HaveOccurred())
	testEnv, err = envtest.Start()
	Expect(err).NotTo(HaveOccurred())
	k8s, err = client.New(testEnv.Config, client.Options{Scheme: envtest.Scheme()})
	Expect(err).NotTo(HaveOccurred())

	// A kubeconfig with envtest's admin credentials, for --kubeconfig.
	cfg := testEnv.Config
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}
	kc.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "admin"}
	kc.CurrentContext = "envtest"
	kubeconfig = filepath.Join(GinkgoT().TempDir(), "kubeconfig")
	Expect(clientcmd.WriteToFile(*kc, kubeconfig)).To(Succeed())
	Expect(os.Chmod(kubeconfig, 0o600)).To(Succeed())
})

var _ = AfterSuite(func() {
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
	gexec.CleanupBuildArtifacts()
})
