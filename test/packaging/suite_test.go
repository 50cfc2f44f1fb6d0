package packaging

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sdfleet/sdfleet/test/envtest"
)

// The Ginkgo specs share one source-built API server: the dry-run of the rendered chart and the
// Prometheus check of the dashboard. The plain Go tests of this package need none.
var (
	testEnv  *envtest.Environment
	k8s      client.Client
	suiteCtx context.Context
)

func TestPackaging(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "packaging")
}

var _ = BeforeSuite(func() {
	// The machine running the tests may be busy: give the processes time, never sleep.
	SetDefaultEventuallyTimeout(30 * time.Second)
	SetDefaultEventuallyPollingInterval(100 * time.Millisecond)
	var cancel context.CancelFunc
	suiteCtx, cancel = context.WithCancel(context.Background())
	DeferCleanup(cancel)
	var err error
	testEnv, err = envtest.Start()
	Expect(err).NotTo(HaveOccurred())
	k8s, err = client.New(testEnv.Config, client.Options{Scheme: envtest.Scheme()})
	Expect(err).NotTo(HaveOccurred())
})

var _ = AfterSuite(func() {
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})
