package packaging

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestChartDefaults checks what `helm install` with default values creates.
func TestChartDefaults(t *testing.T) {
	r := render(t, nil)

	crds := OfKind(r.Objects, "CustomResourceDefinition")
	generated, err := filepath.Glob(filepath.Join(repoRoot, "config", "crd", "bases", "*.yaml"))
	if err != nil || len(generated) == 0 {
		t.Fatalf("no generated CRDs in config/crd/bases (%v)", err)
	}
	if len(crds) != len(generated) {
		t.Errorf("chart renders %d CRDs, config/crd/bases has %d", len(crds), len(generated))
	}
	for _, crd := range crds {
		if got := crd.GetAnnotations()["helm.sh/resource-policy"]; got != "keep" {
			t.Errorf("%s: helm.sh/resource-policy = %q, want keep", Key(crd), got)
		}
	}

	mgr := mustFind(t, r.Objects, "Deployment", "sdfleet-manager")
	spec := podSpec(t, mgr)
	c := container(t, spec)
	for _, want := range []string{"--leader-elect=true", "--metrics-bind-address=:8080", "--health-probe-bind-address=:8081",
		"--default-image=ghcr.io/sdfleet/sdgen:0.2.0"} {
		if !slices.Contains(args(c), want) {
			t.Errorf("manager args %v lack %s", args(c), want)
		}
	}
	if c["image"] != "ghcr.io/sdfleet/manager:0.2.0" {
		t.Errorf("manager image = %v, want ghcr.io/sdfleet/manager:0.2.0 (the chart's appVersion)", c["image"])
	}
	for _, probe := range []string{"livenessProbe", "readinessProbe"} {
		if c[probe] == nil {
			t.Errorf("manager has no %s", probe)
		}
	}
	if req, _, _ := unstructured.NestedStringMap(c, "resources", "requests"); req["cpu"] == "" || req["memory"] == "" {
		t.Errorf("manager resource requests = %v, want cpu and memory", req)
	}
	if spec["serviceAccountName"] != "sdfleet-manager" {
		t.Errorf("manager serviceAccountName = %v", spec["serviceAccountName"])
	}

	dp := mustFind(t, r.Objects, "DaemonSet", "sdfleet-deviceplugin")
	dspec := podSpec(t, dp)
	if dspec["priorityClassName"] != "system-node-critical" {
		t.Errorf("device plugin priorityClassName = %v, want system-node-critical", dspec["priorityClassName"])
	}
	key, _, _ := unstructured.NestedSlice(dspec, "affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution", "nodeSelectorTerms")
	if len(key) != 1 || !strings.Contains(toJSON(key), `"key":"nvidia.com/gpu.present"`) {
		t.Errorf("device plugin node affinity = %s, want the nvidia.com/gpu.present label", toJSON(key))
	}
	if tol := toJSON(dspec["tolerations"]); !strings.Contains(tol, `"key":"nvidia.com/gpu"`) {
		t.Errorf("device plugin tolerations = %s, want nvidia.com/gpu", tol)
	}
	checkDevicePluginHostAccess(t, dp)
	if !slices.Contains(args(container(t, dspec)), "--gpu-source=auto") {
		t.Errorf("device plugin args %v lack --gpu-source=auto", args(container(t, dspec)))
	}

	for _, name := range []string{"sdfleet-manager-metrics", "sdfleet-deviceplugin-metrics"} {
		mustFind(t, r.Objects, "Service", name)
	}
	for _, kind := range []string{"ServiceMonitor", "ConfigMap"} {
		for _, u := range OfKind(r.Objects, kind) {
			// The job policy's parameters are on by default, like the policy itself.
			if Key(u) != "ConfigMap "+releaseNamespace+"/sdfleet-job-policy" {
				t.Errorf("default render has %s; it must be opt-in", Key(u))
			}
		}
	}
	for _, want := range []string{"kind: ImageGenerationJob", "kubectl get imagegenerationjobs -w", "rollout status deployment/sdfleet-manager"} {
		if !strings.Contains(r.Notes, want) {
			t.Errorf("NOTES.txt lacks %q:\n%s", want, r.Notes)
		}
	}
	for _, u := range r.Objects {
		if u.GetLabels()["app.kubernetes.io/instance"] != releaseName {
			t.Errorf("%s lacks the app.kubernetes.io/instance label", Key(u))
		}
	}
}

// checkDevicePluginHostAccess checks that the agent touches the host through the kubelet's
// device-plugins folder only, without privilege.
func checkDevicePluginHostAccess(t *testing.T, dp *unstructured.Unstructured) {
	t.Helper()
	spec := podSpec(t, dp)
	for _, field := range []string{"hostNetwork", "hostPID", "hostIPC"} {
		if spec[field] == true {
			t.Errorf("device plugin sets %s", field)
		}
	}
	var hostPaths []string
	vols, _ := spec["volumes"].([]any)
	for _, v := range vols {
		if p, found, _ := unstructured.NestedString(v.(map[string]any), "hostPath", "path"); found {
			hostPaths = append(hostPaths, p)
		}
	}
	if !slices.Equal(hostPaths, []string{"/var/lib/kubelet/device-plugins"}) {
		t.Errorf("device plugin host paths = %v, want only /var/lib/kubelet/device-plugins", hostPaths)
	}
	c := container(t, spec)
	sc, _ := c["securityContext"].(map[string]any)
	if sc["privileged"] == true || sc["allowPrivilegeEscalation"] != false {
		t.Errorf("device plugin securityContext = %s, want privileged and allowPrivilegeEscalation false", toJSON(sc))
	}
	if drop := toJSON(sc["capabilities"]); !strings.Contains(drop, `"drop":["ALL"]`) || strings.Contains(drop, "add") {
		t.Errorf("device plugin capabilities = %s, want every capability dropped and none added", drop)
	}
}

// TestChartToggles renders the chart with each feature switched and checks what changes.
func TestChartToggles(t *testing.T) {
	tests := []struct {
		name   string
		values map[string]any
		check  func(t *testing.T, r *Rendered)
	}{{
		name:   "crds disabled",
		values: set("crds.enabled", false),
		check: func(t *testing.T, r *Rendered) {
			if n := len(OfKind(r.Objects, "CustomResourceDefinition")); n != 0 {
				t.Errorf("%d CRDs rendered, want none", n)
			}
		},
	}, {
		name:   "crds not kept",
		values: set("crds.keep", false),
		check: func(t *testing.T, r *Rendered) {
			crds := OfKind(r.Objects, "CustomResourceDefinition")
			if len(crds) == 0 {
				t.Fatal("no CRDs rendered")
			}
			for _, crd := range crds {
				if _, ok := crd.GetAnnotations()["helm.sh/resource-policy"]; ok {
					t.Errorf("%s keeps the resource-policy annotation", Key(crd))
				}
			}
		},
	}, {
		name:   "device plugin disabled",
		values: set("devicePlugin.enabled", false),
		check: func(t *testing.T, r *Rendered) {
			for _, u := range r.Objects {
				if strings.Contains(u.GetName(), "deviceplugin") {
					t.Errorf("%s rendered without the device plugin", Key(u))
				}
			}
			mustFind(t, r.Objects, "Deployment", "sdfleet-manager")
		},
	}, {
		name:   "simulated GPUs on every node",
		values: set("simulate.enabled", true),
		check: func(t *testing.T, r *Rendered) {
			dp := mustFind(t, r.Objects, "DaemonSet", "sdfleet-deviceplugin")
			spec := podSpec(t, dp)
			a := args(container(t, spec))
			for _, want := range []string{"--gpu-source=simulated", "--simulator-config=/etc/sdfleet/simulator/scenario.yaml"} {
				if !slices.Contains(a, want) {
					t.Errorf("device plugin args %v lack %s", a, want)
				}
			}
			if spec["affinity"] != nil {
				t.Errorf("simulated agents keep the GPU node affinity %s; they must run on any node", toJSON(spec["affinity"]))
			}
			cm := mustFind(t, r.Objects, "ConfigMap", "sdfleet-simulator")
			scenario, _, _ := unstructured.NestedString(cm.Object, "data", "scenario.yaml")
			if !strings.Contains(scenario, "NVIDIA L40S") {
				t.Errorf("simulator ConfigMap lacks the default scenario:\n%s", scenario)
			}
			checkDevicePluginHostAccess(t, dp)
		},
	}, {
		name:   "simulated GPUs on GPU nodes only",
		values: merge(set("simulate.enabled", true), set("simulate.allNodes", false)),
		check: func(t *testing.T, r *Rendered) {
			spec := podSpec(t, mustFind(t, r.Objects, "DaemonSet", "sdfleet-deviceplugin"))
			if !strings.Contains(toJSON(spec["affinity"]), "nvidia.com/gpu.present") {
				t.Errorf("affinity = %s, want the GPU node label", toJSON(spec["affinity"]))
			}
		},
	}, {
		name:   "AMD GPU nodes too",
		values: merge(set("devicePlugin.amd.enabled", true), set("devicePlugin.gpuSource", "amdgpu")),
		check: func(t *testing.T, r *Rendered) {
			dp := mustFind(t, r.Objects, "DaemonSet", "sdfleet-deviceplugin")
			spec := podSpec(t, dp)
			terms, _, _ := unstructured.NestedSlice(spec, "affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution", "nodeSelectorTerms")
			if got := toJSON(terms); len(terms) != 2 || !strings.Contains(got, `"key":"nvidia.com/gpu.present"`) ||
				!strings.Contains(got, `"key":"feature.node.kubernetes.io/amd-gpu"`) {
				t.Errorf("node selector terms = %s, want NVIDIA or AMD GPU nodes", got)
			}
			if tol := toJSON(spec["tolerations"]); !strings.Contains(tol, `"key":"amd.com/gpu"`) || !strings.Contains(tol, `"key":"nvidia.com/gpu"`) {
				t.Errorf("tolerations = %s, want both vendors' taints", tol)
			}
			if a := args(container(t, spec)); !slices.Contains(a, "--gpu-source=amdgpu") {
				t.Errorf("device plugin args %v lack --gpu-source=amdgpu", a)
			}
			// Reading sysfs needs neither privilege nor another host path.
			checkDevicePluginHostAccess(t, dp)
		},
	}, {
		name:   "custom GPU node label",
		values: set("devicePlugin.gpuNodeLabel", map[string]any{"key": "accelerator", "values": []any{"h100", "l40s"}}),
		check: func(t *testing.T, r *Rendered) {
			spec := podSpec(t, mustFind(t, r.Objects, "DaemonSet", "sdfleet-deviceplugin"))
			if got := toJSON(spec["affinity"]); !strings.Contains(got, `"key":"accelerator"`) || !strings.Contains(got, `"values":["h100","l40s"]`) {
				t.Errorf("affinity = %s, want accelerator in (h100, l40s)", got)
			}
		},
	}, {
		name:   "no GPU node label",
		values: set("devicePlugin.gpuNodeLabel.key", ""),
		check: func(t *testing.T, r *Rendered) {
			spec := podSpec(t, mustFind(t, r.Objects, "DaemonSet", "sdfleet-deviceplugin"))
			if spec["affinity"] != nil {
				t.Errorf("affinity = %s, want none", toJSON(spec["affinity"]))
			}
		},
	}, {
		name:   "service monitors",
		values: set("metrics.serviceMonitor", map[string]any{"enabled": true, "labels": map[string]any{"release": "prom"}}),
		check: func(t *testing.T, r *Rendered) {
			sms := OfKind(r.Objects, "ServiceMonitor")
			if len(sms) != 2 {
				t.Fatalf("%d ServiceMonitors, want 2 (manager, deviceplugin)", len(sms))
			}
			for _, sm := range sms {
				if sm.GetLabels()["release"] != "prom" {
					t.Errorf("%s lacks the extra label release=prom", Key(sm))
				}
				sel, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
				matched := 0
				for _, svc := range OfKind(r.Objects, "Service") {
					if selects(sel, svc.GetLabels()) {
						matched++
						if !strings.Contains(toJSON(svc.Object["spec"]), `"name":"metrics"`) {
							t.Errorf("%s selects %s, which has no port named metrics", Key(sm), Key(svc))
						}
					}
				}
				if matched != 1 {
					t.Errorf("%s selects %d Services, want exactly 1", Key(sm), matched)
				}
			}
		},
	}, {
		name:   "grafana dashboard",
		values: set("dashboard", map[string]any{"enabled": true, "annotations": map[string]any{"grafana_folder": "GPUs"}}),
		check: func(t *testing.T, r *Rendered) {
			cm := mustFind(t, r.Objects, "ConfigMap", "sdfleet-dashboard")
			if cm.GetLabels()["grafana_dashboard"] != "1" || cm.GetAnnotations()["grafana_folder"] != "GPUs" {
				t.Errorf("dashboard ConfigMap labels %v annotations %v, want grafana_dashboard=1 and grafana_folder", cm.GetLabels(), cm.GetAnnotations())
			}
			data, _, _ := unstructured.NestedString(cm.Object, "data", "sdfleet.json")
			file, err := os.ReadFile(filepath.Join(chartDir, "dashboards", "sdfleet.json"))
			if err != nil {
				t.Fatal(err)
			}
			if strings.TrimSpace(data) != strings.TrimSpace(string(file)) {
				t.Errorf("dashboard ConfigMap differs from dashboards/sdfleet.json")
			}
		},
	}, {
		name:   "no metrics services",
		values: set("metrics.service.enabled", false),
		check: func(t *testing.T, r *Rendered) {
			if n := len(OfKind(r.Objects, "Service")); n != 0 {
				t.Errorf("%d Services rendered, want none", n)
			}
		},
	}, {
		name: "operator settings",
		values: set("manager", map[string]any{"defaultInferenceImage": "registry.example/sdgen:1", "leaderElection": false,
			"replicas": 2, "image": map[string]any{"tag": "9.9.9"}, "extraArgs": []any{"--max-concurrent-reconciles=8"}}),
		check: func(t *testing.T, r *Rendered) {
			mgr := mustFind(t, r.Objects, "Deployment", "sdfleet-manager")
			c := container(t, podSpec(t, mgr))
			for _, want := range []string{"--default-image=registry.example/sdgen:1", "--leader-elect=false", "--max-concurrent-reconciles=8",
				"--allowed-image-prefixes=registry.example/sdgen", "--allowed-host-path-prefixes="} {
				if !slices.Contains(args(c), want) {
					t.Errorf("manager args %v lack %s", args(c), want)
				}
			}
			if c["image"] != "ghcr.io/sdfleet/manager:9.9.9" {
				t.Errorf("manager image = %v", c["image"])
			}
			if n, _, _ := unstructured.NestedFieldNoCopy(mgr.Object, "spec", "replicas"); toJSON(n) != "2" {
				t.Errorf("replicas = %v, want 2", n)
			}
			// The admission policy's parameters follow the default image too.
			cm := mustFind(t, r.Objects, "ConfigMap", "sdfleet-job-policy")
			if got, _, _ := unstructured.NestedString(cm.Object, "data", "allowedImagePrefixes"); got != "registry.example/sdgen" {
				t.Errorf("job policy allowedImagePrefixes = %q, want the default image's repository", got)
			}
		},
	}, {
		name: "job policy lists",
		values: set("jobPolicy", map[string]any{"allowedHostPathPrefixes": []any{"/srv/a", "/srv/b"},
			"allowedImagePrefixes": []any{"registry.example/ml/", "ghcr.io/sdfleet/sdgen"}}),
		check: func(t *testing.T, r *Rendered) {
			c := container(t, podSpec(t, mustFind(t, r.Objects, "Deployment", "sdfleet-manager")))
			for _, want := range []string{"--allowed-host-path-prefixes=/srv/a,/srv/b", "--allowed-image-prefixes=registry.example/ml/,ghcr.io/sdfleet/sdgen"} {
				if !slices.Contains(args(c), want) {
					t.Errorf("manager args %v lack %s", args(c), want)
				}
			}
			cm := mustFind(t, r.Objects, "ConfigMap", "sdfleet-job-policy")
			if got := toJSON(cm.Object["data"]); got != `{"allowedHostPathPrefixes":"/srv/a,/srv/b","allowedImagePrefixes":"registry.example/ml/,ghcr.io/sdfleet/sdgen"}` {
				t.Errorf("job policy parameters = %s", got)
			}
		},
	}, {
		name:   "no admission policy, no user roles",
		values: merge(set("jobPolicy.admissionPolicy.enabled", false), set("userRoles.enabled", false)),
		check: func(t *testing.T, r *Rendered) {
			for _, kind := range []string{"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"} {
				if objs := OfKind(r.Objects, kind); len(objs) != 0 {
					t.Errorf("%s rendered with jobPolicy.admissionPolicy.enabled=false", Key(objs[0]))
				}
			}
			for _, name := range []string{"sdfleet-view", "sdfleet-edit", "sdfleet-gpunode-reader"} {
				if Find(r.Objects, "ClusterRole", name) != nil {
					t.Errorf("ClusterRole %s rendered with userRoles.enabled=false", name)
				}
			}
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.check(t, render(t, tt.values)) })
	}
}

// TestChartValuesSchema checks that wrong values are refused with a message naming them.
func TestChartValuesSchema(t *testing.T) {
	tests := []struct {
		name   string
		values map[string]any
		want   string
	}{
		{"wrong type", set("manager.replicas", "two"), "replicas"},
		{"unknown key", set("manager.replica", 2), "replica"},
		{"unknown top-level key", set("devicePlugins", map[string]any{}), "devicePlugins"},
		{"value outside the enum", set("devicePlugin.deviceListStrategy", "magic"), "deviceListStrategy"},
		{"GPU source outside the enum", set("devicePlugin.gpuSource", "simulated"), "gpuSource"},
		{"bad duration", set("devicePlugin.sampleInterval", "soon"), "sampleInterval"},
		{"port out of range", set("manager.metricsPort", 70000), "metricsPort"},
		{"flag without dashes", set("manager.extraArgs", []any{"verbose"}), "extraArgs"},
		{"scenario without GPUs", set("simulate.scenario.gpus", []any{}), "gpus"},
		{"relative host path prefix", set("jobPolicy.allowedHostPathPrefixes", []any{"srv/models"}), "allowedHostPathPrefixes"},
		{"unclean host path prefix", set("jobPolicy.allowedHostPathPrefixes", []any{"/srv/"}), "allowedHostPathPrefixes"},
		{"host path prefix with a comma", set("jobPolicy.allowedHostPathPrefixes", []any{"/srv,/etc"}), "allowedHostPathPrefixes"},
		{"image prefix with a comma", set("jobPolicy.allowedImagePrefixes", []any{"a,b"}), "allowedImagePrefixes"},
		{"simulator control port out of range", set("simulate.controlPort", 70000), "controlPort"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := RenderChart(chartDir, Release{Name: releaseName, Namespace: releaseNamespace}, tt.values)
			if err == nil {
				t.Fatalf("values %s accepted", toJSON(tt.values))
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not name %s", err, tt.want)
			}
		})
	}
}

// TestChartValuesDocumented checks that every value in values.yaml has a comment.
func TestChartValuesDocumented(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	for i, line := range lines {
		trimmed := strings.TrimSpace(line)
		// A key with a scalar or inline value (not a block parent, not a list item) needs the
		// comment on the line before it.
		if trimmed == "" || strings.HasPrefix(trimmed, "#") || strings.HasPrefix(trimmed, "-") || strings.HasPrefix(line, "      ") {
			continue
		}
		k, v, ok := strings.Cut(trimmed, ":")
		if !ok || strings.TrimSpace(v) == "" {
			continue
		}
		if i == 0 || !strings.HasPrefix(strings.TrimSpace(lines[i-1]), "#") {
			t.Errorf("values.yaml line %d: %s has no comment above it", i+1, k)
		}
	}
}

// TestChartCopiesGeneratedFiles checks that the chart's copies of the CRDs and ClusterRoles are
// those `make manifests` generated.
func TestChartCopiesGeneratedFiles(t *testing.T) {
	pairs := map[string]string{
		"config/rbac/role.yaml":                          "charts/sdfleet/files/rbac/manager-role.yaml",
		"config/rbac/deviceplugin/role.yaml":             "charts/sdfleet/files/rbac/deviceplugin-role.yaml",
		"config/rbac/gateway/role.yaml":                  "charts/sdfleet/files/rbac/gateway-role.yaml",
		"config/policy/validating_admission_policy.yaml": "charts/sdfleet/files/policy/validating_admission_policy.yaml",
	}
	crds, _ := filepath.Glob(filepath.Join(repoRoot, "config", "crd", "bases", "*.yaml"))
	for _, crd := range crds {
		pairs["config/crd/bases/"+filepath.Base(crd)] = "charts/sdfleet/files/crds/" + filepath.Base(crd)
	}
	copies, _ := filepath.Glob(filepath.Join(chartDir, "files", "crds", "*.yaml"))
	if len(copies) != len(crds) {
		t.Errorf("chart has %d CRD copies, config/crd/bases %d: run `make manifests`", len(copies), len(crds))
	}
	for from, to := range pairs {
		want, err := os.ReadFile(filepath.Join(repoRoot, from))
		if err != nil {
			t.Errorf("generated file: %v", err)
			continue
		}
		got, err := os.ReadFile(filepath.Join(repoRoot, to))
		if err != nil || string(got) != string(want) {
			t.Errorf("%s is not a copy of %s: run `make manifests` (charts/sync-generated.sh)", to, from)
		}
	}
}

func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func toJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	return string(b)
}
