package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// helmVersion is the helm that hack/build-helm.sh builds; go.mod pins the same module for the
// Go SDK the other tests render with.
const helmVersion = "v3.22.0"

// helmBinary returns the helm command built by hack/build-helm.sh ($HELM overrides it).
func helmBinary(t *testing.T) string {
	t.Helper()
	if h := os.Getenv("HELM"); h != "" {
		return h
	}
	h := filepath.Join(repoRoot, "bin", "helm", helmVersion, "helm")
	if _, err := os.Stat(h); err != nil {
		t.Fatalf("helm %s not found at %s: run hack/build-helm.sh to build it from source (%v)", helmVersion, h, err)
	}
	return h
}

// TestHelmLint runs `helm lint --strict` on the chart with default values and with each option.
func TestHelmLint(t *testing.T) {
	helm := helmBinary(t)
	tests := []struct {
		name string
		sets []string
	}{
		{"default values", nil},
		{"simulated GPUs", []string{"simulate.enabled=true"}},
		{"monitoring", []string{"metrics.serviceMonitor.enabled=true", "dashboard.enabled=true"}},
		{"no CRDs, no device plugin", []string{"crds.enabled=false", "devicePlugin.enabled=false"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"lint", chartDir, "--strict"}
			for _, s := range tt.sets {
				args = append(args, "--set", s)
			}
			out, err := exec.Command(helm, args...).CombinedOutput()
			if err != nil {
				t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			if !strings.Contains(string(out), "0 chart(s) failed") {
				t.Errorf("helm lint output lacks \"0 chart(s) failed\":\n%s", out)
			}
		})
	}

	// A wrong value must fail the lint, or the passes above prove nothing.
	out, err := exec.Command(helm, "lint", chartDir, "--strict", "--set", "manager.replicas=two").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "replicas") {
		t.Errorf("helm lint accepted manager.replicas=two (err %v):\n%s", err, out)
	}
}

// TestHelmVersionsAgree checks that the helm command and the Go SDK are the same release.
func TestHelmVersionsAgree(t *testing.T) {
	for file, want := range map[string]string{
		"go.mod":             "helm.sh/helm/v3 " + helmVersion,
		"hack/build-helm.sh": "HELM_VERSION=${HELM_VERSION:-" + helmVersion + "}",
	} {
		data, err := os.ReadFile(filepath.Join(repoRoot, file))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(data), want) {
			t.Errorf("%s lacks %q: the helm command and the Go SDK must be the same release", file, want)
		}
	}
	out, err := exec.Command(helmBinary(t), "version", "--short").Output()
	if err != nil || !strings.HasPrefix(string(out), helmVersion) {
		t.Errorf("helm version --short = %q (%v), want %s: rebuild it with hack/build-helm.sh", out, err, helmVersion)
	}
}

// TestHelmTemplateMatchesSDK checks that the helm command renders the same objects as the Go SDK
// the other tests use.
func TestHelmTemplateMatchesSDK(t *testing.T) {
	out, err := exec.Command(helmBinary(t), "template", releaseName, chartDir, "--namespace", releaseNamespace,
		"--kube-version", KubeVersion.Version).Output()
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	objs, err := DecodeObjects(strings.NewReader(string(out)))
	if err != nil {
		t.Fatal(err)
	}
	cli, sdk := keys(objs), keys(render(t, nil).Objects)
	if strings.Join(cli, ",") != strings.Join(sdk, ",") {
		t.Errorf("helm template renders %v, the Go SDK %v", cli, sdk)
	}
}
