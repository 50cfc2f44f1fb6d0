package agent_test

import (
	"context"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sdfleet/sdfleet/test/envtest"
)

var (
	testEnv *envtest.Environment
	k8s     client.WithWatch
)

func TestAgent(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Node agent suite")
}

var _ = BeforeSuite(func() {
	var err error
	testEnv, err = envtest.Start()
	Expect(err).NotTo(HaveOccurred())
	k8s, err = client.NewWithWatch(testEnv.Config, client.Options{Scheme: envtest.Scheme()})
	Expect(err).NotTo(HaveOccurred())
})

var _ = AfterSuite(func() {
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})

// ctx is for API calls in specs; agents get their own cancellable one.
var ctx = context.Background()
