package packaging

import (
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/sdfleet/sdfleet/test/envtest"
)

// The release the tests render: named like the chart, so that object names match config/default.
const (
	releaseName      = "sdfleet"
	releaseNamespace = "sdfleet-system"
)

var (
	repoRoot = envtest.RepoRoot()
	chartDir = filepath.Join(repoRoot, "charts", "sdfleet")
)

// fataler is what the helpers need of *testing.T and GinkgoT().
type fataler interface {
	Helper()
	Fatalf(format string, args ...any)
}

// render renders the chart for the test release and fails the test on error.
func render(t fataler, values map[string]any) *Rendered {
	t.Helper()
	r, err := RenderChart(chartDir, Release{Name: releaseName, Namespace: releaseNamespace}, values)
	if err != nil {
		t.Fatalf("render chart: %v", err)
	}
	return r
}

// mustFind returns an object the test needs, failing when it is absent.
func mustFind(t fataler, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	u := Find(objs, kind, name)
	if u == nil {
		keys := make([]string, 0, len(objs))
		for _, o := range objs {
			keys = append(keys, Key(o))
		}
		t.Fatalf("no %s %s among %v", kind, name, keys)
	}
	return u
}

// podSpec returns a workload's pod template spec.
func podSpec(t fataler, u *unstructured.Unstructured) map[string]any {
	t.Helper()
	spec, found, err := unstructured.NestedMap(u.Object, "spec", "template", "spec")
	if err != nil || !found {
		t.Fatalf("%s: no spec.template.spec (%v)", Key(u), err)
	}
	return spec
}

// container returns the first container of a pod spec.
func container(t fataler, spec map[string]any) map[string]any {
	t.Helper()
	cs, _ := spec["containers"].([]any)
	if len(cs) == 0 {
		t.Fatalf("pod spec has no containers")
	}
	c, _ := cs[0].(map[string]any)
	return c
}

// args returns a container's args as strings.
func args(c map[string]any) []string {
	raw, _ := c["args"].([]any)
	out := make([]string, 0, len(raw))
	for _, a := range raw {
		s, _ := a.(string)
		out = append(out, s)
	}
	return out
}

// set builds a nested values map from a dotted path: set("a.b", 1) is {a: {b: 1}}.
func set(path string, v any) map[string]any {
	parts := strings.Split(path, ".")
	out := map[string]any{parts[len(parts)-1]: v}
	for i := len(parts) - 2; i >= 0; i-- {
		out = map[string]any{parts[i]: out}
	}
	return out
}

// merge deep-merges maps, later ones winning.
func merge(maps ...map[string]any) map[string]any {
	out := map[string]any{}
	for _, m := range maps {
		for k, v := range m {
			if sub, ok := v.(map[string]any); ok {
				if prev, ok := out[k].(map[string]any); ok {
					out[k] = merge(prev, sub)
					continue
				}
			}
			out[k] = v
		}
	}
	return out
}
