package packaging

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestKustomizeMatchesChart checks that each kustomization in config/ deploys the same objects
// as `helm install sdfleet charts/sdfleet -n sdfleet-system` with the matching values. The
// Namespace is kustomize's alone: Helm creates it with --create-namespace.
func TestKustomizeMatchesChart(t *testing.T) {
	tests := []struct {
		dir    string
		values map[string]any
	}{
		{"default", nil},
		{"simulate", set("simulate.enabled", true)},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			kust, err := RenderKustomize(filepath.Join(repoRoot, "config", tt.dir))
			if err != nil {
				t.Fatal(err)
			}
			chart := render(t, tt.values).Objects

			ns := OfKind(kust, "Namespace")
			if len(ns) != 1 || ns[0].GetName() != releaseNamespace {
				t.Fatalf("config/%s has Namespaces %v, want exactly %s", tt.dir, keys(ns), releaseNamespace)
			}
			kustKeys := keys(withoutKind(kust, "Namespace"))
			chartKeys := keys(chart)
			if !slices.Equal(kustKeys, chartKeys) {
				t.Errorf("kinds and names differ\nkustomize: %v\nchart:     %v", kustKeys, chartKeys)
			}

			// The workloads must also run the same programs with the same flags, volumes and
			// placement.
			for _, kind := range []string{"Deployment", "DaemonSet"} {
				for _, k := range OfKind(kust, kind) {
					c := Find(chart, kind, k.GetName())
					if c == nil {
						continue
					}
					ks, cs := podSpec(t, k), podSpec(t, c)
					if ka, ca := args(container(t, ks)), args(container(t, cs)); !slices.Equal(ka, ca) {
						t.Errorf("%s %s args differ\nkustomize: %v\nchart:     %v", kind, k.GetName(), ka, ca)
					}
					for _, field := range []string{"volumes", "affinity", "tolerations", "priorityClassName", "securityContext"} {
						if kf, cf := unordered(ks[field]), unordered(cs[field]); kf != cf {
							t.Errorf("%s %s %s differ\nkustomize: %s\nchart:     %s", kind, k.GetName(), field, kf, cf)
						}
					}
					for _, field := range []string{"securityContext", "env", "volumeMounts", "resources"} {
						if kf, cf := unordered(container(t, ks)[field]), unordered(container(t, cs)[field]); kf != cf {
							t.Errorf("%s %s container %s differ\nkustomize: %s\nchart:     %s", kind, k.GetName(), field, kf, cf)
						}
					}
				}
			}
		})
	}
}

func keys(objs []*unstructured.Unstructured) []string {
	out := make([]string, 0, len(objs))
	for _, u := range objs {
		out = append(out, Key(u))
	}
	slices.Sort(out)
	return out
}

func withoutKind(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, u := range objs {
		if u.GetKind() != kind {
			out = append(out, u)
		}
	}
	return out
}

// unordered is the JSON of v, with a list's items sorted: kustomize patches and templates may
// order volumes differently without any difference in effect.
func unordered(v any) string {
	list, ok := v.([]any)
	if !ok {
		return toJSON(v)
	}
	items := make([]string, 0, len(list))
	for _, item := range list {
		items = append(items, toJSON(item))
	}
	slices.Sort(items)
	return "[" + strings.Join(items, ",") + "]"
}
