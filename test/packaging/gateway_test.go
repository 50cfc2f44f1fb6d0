package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sdfleet/sdfleet/gateway"
)

// gatewayAccess is the gateway's API access, from the markers in gateway/rbac.go.
var gatewayAccess = []string{
	" pods/log get",
	"authentication.k8s.io tokenreviews create",
	"authorization.k8s.io subjectaccessreviews create",
	"sdfleet.io gpunodes get", "sdfleet.io gpunodes list", "sdfleet.io gpunodes watch",
	"sdfleet.io imagegenerationjobs create", "sdfleet.io imagegenerationjobs get",
	"sdfleet.io imagegenerationjobs list", "sdfleet.io imagegenerationjobs watch",
}

// gatewayValues turn the gateway on with a model map and a ReadWriteMany claim for the images.
func gatewayValues(without ...string) map[string]any {
	v := merge(set("gateway.enabled", true),
		set("gateway.models", map[string]any{
			"tiny": map[string]any{"hostPath": map[string]any{"path": "/var/lib/sdfleet/models/tiny"}},
			"sd15": map[string]any{"persistentVolumeClaim": map[string]any{"claimName": "models", "path": "sd15"}},
		}),
		set("gateway.defaultModel", "tiny"),
		set("gateway.output", map[string]any{"persistentVolumeClaim": map[string]any{"claimName": "images", "path": "gateway"}}),
		set("gateway.outputVolume", map[string]any{"persistentVolumeClaim": map[string]any{"claimName": "images-gateway", "readOnly": true}}))
	for _, key := range without {
		delete(v["gateway"].(map[string]any), key)
	}
	return v
}

func TestChartGateway(t *testing.T) {
	for _, kind := range []string{"ConfigMap", "Deployment", "Service"} {
		if u := Find(render(t, nil).Objects, kind, "sdfleet-gateway"); u != nil {
			t.Errorf("the gateway is off by default, but its %s renders", kind)
		}
	}
	objs := render(t, gatewayValues()).Objects

	// Least privilege: exactly the generated rules, bound to the gateway's account only.
	role := mustFind(t, objs, "ClusterRole", "sdfleet-gateway-role")
	rules, _, _ := unstructured.NestedSlice(role.Object, "rules")
	if got := expand(t, "sdfleet-gateway-role", rules); !slices.Equal(got, slices.Sorted(slices.Values(gatewayAccess))) {
		t.Errorf("gateway role grants\n  %s\nthe code uses\n  %s", strings.Join(got, "\n  "), strings.Join(gatewayAccess, "\n  "))
	}
	data, err := os.ReadFile(filepath.Join(repoRoot, "config/rbac/gateway/role.yaml"))
	if err != nil {
		t.Fatalf("generated role: %v (run `make manifests`)", err)
	}
	gen, err := ReadYAML(data, "config/rbac/gateway/role.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if toJSON(gen["rules"]) != toJSON(rules) {
		t.Error("the chart's gateway rules differ from config/rbac/gateway/role.yaml")
	}
	binding := mustFind(t, objs, "ClusterRoleBinding", "sdfleet-gateway-rolebinding")
	if s := toJSON(binding.Object["subjects"]); !strings.Contains(s, `"name":"sdfleet-gateway"`) || strings.Count(s, `"kind"`) != 1 {
		t.Errorf("gateway binding subjects %s", s)
	}

	// The configuration the gateway reads is the values' model map, and it loads.
	cm := mustFind(t, objs, "ConfigMap", "sdfleet-gateway")
	text, _, _ := unstructured.NestedString(cm.Object, "data", "config.yaml")
	file := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := gateway.LoadModels(file)
	if err != nil {
		t.Fatalf("rendered configuration does not load: %v\n%s", err, text)
	}
	if m.DefaultModel != "tiny" || m.Models["sd15"].PersistentVolumeClaim.ClaimName != "models" || m.Output.PersistentVolumeClaim.Path != "gateway" {
		t.Errorf("rendered configuration %+v", m)
	}

	// The images are read from the claim, read-only.
	spec := podSpec(t, mustFind(t, objs, "Deployment", "sdfleet-gateway"))
	vols := toJSON(spec["volumes"])
	if !strings.Contains(vols, `"claimName":"images-gateway"`) || strings.Contains(vols, "hostPath") {
		t.Errorf("gateway volumes %s", vols)
	}
	mounts := toJSON(container(t, spec)["volumeMounts"])
	if !strings.Contains(mounts, `{"mountPath":"/sdfleet/output","name":"output","readOnly":true}`) {
		t.Errorf("gateway mounts %s", mounts)
	}
	svc := mustFind(t, objs, "Service", "sdfleet-gateway")
	if sel := toJSON(svc.Object["spec"].(map[string]any)["selector"]); !strings.Contains(sel, `"app.kubernetes.io/component":"gateway"`) {
		t.Errorf("gateway Service selector %s", sel)
	}
}

func TestChartGatewayRefusesIncompleteValues(t *testing.T) {
	tests := []struct {
		name   string
		values map[string]any
		want   string
	}{
		{"no models", gatewayValues("models"), "gateway.models"},
		{"default model not configured", merge(gatewayValues(), set("gateway.defaultModel", "sdxl")), `gateway.defaultModel "sdxl"`},
		{"no output", gatewayValues("output"), "gateway.output"},
		{"claim output without a volume to read it", gatewayValues("outputVolume"), "gateway.outputVolume"},
		{"relative host path", merge(gatewayValues(), set("gateway.output", map[string]any{"hostPath": map[string]any{"path": "srv"}})), "path"},
		{"rate of zero", merge(gatewayValues(), set("gateway.rateLimit.requestsPerSecond", 0)), "requestsPerSecond"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := RenderChart(chartDir, Release{Name: releaseName, Namespace: releaseNamespace}, tt.values)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one naming %s", err, tt.want)
			}
		})
	}
}

var _ = Describe("the gateway of the chart", func() {
	// A namespace of its own that enforces Pod Security "restricted", so the API server's
	// admission judges the gateway's pod.
	const ns = "sdfleet-gateway-restricted"
	var objs []*unstructured.Unstructured
	BeforeEach(func() {
		err := k8s.Create(suiteCtx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns,
			Labels: map[string]string{"pod-security.kubernetes.io/enforce": "restricted"}}})
		if err != nil {
			Expect(apierrors.IsAlreadyExists(err)).To(BeTrue(), "create namespace %s: %v", ns, err)
		}
		r, err := RenderChart(chartDir, Release{Name: releaseName, Namespace: ns}, gatewayValues())
		Expect(err).NotTo(HaveOccurred())
		objs = r.Objects
	})

	It("passes Pod Security \"restricted\" with a claim for the images, and the API server accepts every object", func() {
		// Pod admission needs the ServiceAccount for real; everything else stays a dry-run.
		sa := Find(objs, "ServiceAccount", "sdfleet-gateway")
		Expect(sa).NotTo(BeNil())
		Expect(k8s.Apply(suiteCtx, client.ApplyConfigurationFromUnstructured(sa.DeepCopy()), fieldOwner)).To(Succeed())
		for _, u := range objs {
			Expect(k8s.Apply(suiteCtx, client.ApplyConfigurationFromUnstructured(u.DeepCopy()), fieldOwner,
				client.ForceOwnership, client.DryRunAll)).To(Succeed(), "server-side dry-run apply of %s", Key(u))
		}
		gw := Find(objs, "Deployment", "sdfleet-gateway")
		Expect(gw).NotTo(BeNil())
		Expect(k8s.Create(suiteCtx, podFromTemplate(gw), client.DryRunAll)).To(Succeed(), "the gateway must pass Pod Security restricted")
	})

	It("runs a gateway binary that accepts the chart's flags and configuration", func() {
		cm := Find(objs, "ConfigMap", "sdfleet-gateway")
		Expect(cm).NotTo(BeNil())
		text, _, _ := unstructured.NestedString(cm.Object, "data", "config.yaml")
		dir := GinkgoT().TempDir()
		Expect(os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(text), 0o644)).To(Succeed())
		flags := args(container(GinkgoT(), podSpec(GinkgoT(), Find(objs, "Deployment", "sdfleet-gateway"))))
		Expect(flags).To(ContainElements("--config=/etc/sdfleet/gateway/config.yaml", "--output-dir=/sdfleet/output"))
		// The same flags, with this machine's paths for the two mounts and a cluster that does
		// not exist: the binary gets past its flags and configuration and stops at the cluster.
		for i, f := range flags {
			switch {
			case strings.HasPrefix(f, "--config="):
				flags[i] = "--config=" + filepath.Join(dir, "config.yaml")
			case strings.HasPrefix(f, "--output-dir="):
				flags[i] = "--output-dir=" + dir
			}
		}
		bin := binary("SDFLEET_GATEWAY_BINARY", "github.com/sdfleet/sdfleet/cmd/gateway", []string{"CGO_ENABLED=0"})
		cmd := exec.Command(bin, append(flags, "--kubeconfig="+filepath.Join(dir, "no-such-kubeconfig"))...)
		out, err := cmd.CombinedOutput()
		Expect(err).To(HaveOccurred())
		Expect(string(out)).To(ContainSubstring("find the cluster's kubeconfig"), "the gateway refused the chart's flags: %v", flags)
	})
})
