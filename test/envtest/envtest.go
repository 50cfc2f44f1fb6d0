package envtest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrlenvtest "sigs.k8s.io/controller-runtime/pkg/envtest"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
)

// KubernetesVersion is the version of the control plane that hack/build-control-plane.sh builds
// and the tests run on.
const KubernetesVersion = "v1.37.2"

// RepoRoot is the root of the sdfleet checkout, found from this file's location so that tests
// work whatever their working directory.
func RepoRoot() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		panic("envtest: cannot locate the source file of package envtest")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// AssetsDir is the folder holding kube-apiserver and etcd: $KUBEBUILDER_ASSETS when set, else
// bin/k8s/<KubernetesVersion> in the checkout. It fails with the command to run when the
// binaries are not there.
func AssetsDir() (string, error) {
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		dir = filepath.Join(RepoRoot(), "bin", "k8s", KubernetesVersion)
	}
	for _, name := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			return "", fmt.Errorf("control plane binary %s not found in %s: run `make control-plane` "+
				"(hack/build-control-plane.sh) to build it from source: %w", name, dir, err)
		}
	}
	return dir, nil
}

// CRDDir is the folder of the generated CRDs.
func CRDDir() string { return filepath.Join(RepoRoot(), "config", "crd", "bases") }

// Scheme knows the built-in kinds, CRDs and sdfleet's kinds.
func Scheme() *k8sruntime.Scheme {
	s := k8sruntime.NewScheme()
	for _, add := range []func(*k8sruntime.Scheme) error{
		clientgoscheme.AddToScheme, apiextensionsv1.AddToScheme, sdfleetv1alpha1.AddToScheme,
	} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}

// Environment is a running API server with sdfleet's CRDs installed.
type Environment struct {
	env    *ctrlenvtest.Environment
	Config *rest.Config
}

// Start starts etcd and kube-apiserver and installs the CRDs. Call Stop when done.
func Start() (*Environment, error) {
	assets, err := AssetsDir()
	if err != nil {
		return nil, err
	}
	env := &ctrlenvtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{CRDDir()},
		ErrorIfCRDPathMissing: true,
		Scheme:                Scheme(),
	}
	cfg, err := env.Start()
	if err != nil {
		// Start may fail after etcd and the API server are up (a CRD the server refuses):
		// stop them so that no process outlives the test.
		_ = env.Stop()
		return nil, fmt.Errorf("start envtest with binaries from %s: %w", assets, err)
	}
	// Client-side throttling would only slow the tests down: the API server is local.
	cfg.QPS, cfg.Burst = 500, 1000
	return &Environment{env: env, Config: cfg}, nil
}

// Stop stops the API server and etcd.
func (e *Environment) Stop() error {
	if e == nil || e.env == nil {
		return errors.New("envtest: environment not started")
	}
	return e.env.Stop()
}

// DefaultNamespace is the namespace tests create namespaced objects in when they need no other.
const DefaultNamespace = corev1.NamespaceDefault
