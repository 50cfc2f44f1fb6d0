package packaging

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// The API access the code uses, as "group resource verb" (group "" is the core group). The
// operator's comes from controllers/, the node agent's from deviceplugin/; when the code needs
// more, its +kubebuilder:rbac markers change and so must this list, in review.
var (
	managerAccess = []string{
		" nodes get", " nodes list", " nodes watch",
		" persistentvolumeclaims get", " persistentvolumeclaims list", " persistentvolumeclaims watch",
		" pods create", " pods delete", " pods get", " pods list", " pods watch",
		"coordination.k8s.io leases create", "coordination.k8s.io leases get", "coordination.k8s.io leases list",
		"coordination.k8s.io leases patch", "coordination.k8s.io leases update", "coordination.k8s.io leases watch",
		"events.k8s.io events create", "events.k8s.io events patch",
		"sdfleet.io gpunodes get", "sdfleet.io gpunodes list", "sdfleet.io gpunodes watch",
		// The learned speeds, status.learnedSpeeds, by server-side apply.
		"sdfleet.io gpunodes/status patch",
		"sdfleet.io imagegenerationjobs delete", "sdfleet.io imagegenerationjobs get",
		"sdfleet.io imagegenerationjobs list", "sdfleet.io imagegenerationjobs watch",
		"sdfleet.io imagegenerationjobs/status get", "sdfleet.io imagegenerationjobs/status patch",
		"sdfleet.io imagegenerationjobs/status update",
	}
	devicePluginAccess = []string{
		" nodes get", " nodes patch",
		"sdfleet.io gpunodes create", "sdfleet.io gpunodes patch",
		"sdfleet.io gpunodes/status patch",
	}
)

// TestRBACLeastPrivilege checks the chart's ClusterRoles: generated from the markers, no
// wildcards, no Secrets, exactly the access the code uses.
func TestRBACLeastPrivilege(t *testing.T) {
	objs := render(t, nil).Objects
	roles := map[string]struct {
		generated string
		access    []string
		account   string
	}{
		"sdfleet-manager-role":      {"config/rbac/role.yaml", managerAccess, "sdfleet-manager"},
		"sdfleet-deviceplugin-role": {"config/rbac/deviceplugin/role.yaml", devicePluginAccess, "sdfleet-deviceplugin"},
	}
	if got := append(OfKind(objs, "ClusterRole"), OfKind(objs, "Role")...); len(got) != len(roles) {
		t.Errorf("chart renders roles %v, want only %d ClusterRoles", keys(got), len(roles))
	}
	for name, want := range roles {
		role := mustFind(t, objs, "ClusterRole", name)
		rules, _, _ := unstructured.NestedSlice(role.Object, "rules")
		granted := expand(t, name, rules)
		slices.Sort(want.access)
		if !slices.Equal(granted, want.access) {
			t.Errorf("%s grants\n  %s\nthe code uses\n  %s", name, strings.Join(granted, "\n  "), strings.Join(want.access, "\n  "))
		}

		data, err := os.ReadFile(filepath.Join(repoRoot, want.generated))
		if err != nil {
			t.Fatalf("generated role: %v (run `make manifests`)", err)
		}
		gen, err := ReadYAML(data, want.generated)
		if err != nil {
			t.Fatal(err)
		}
		if toJSON(gen["rules"]) != toJSON(rules) {
			t.Errorf("%s rules differ from %s", name, want.generated)
		}

		binding := mustFind(t, objs, "ClusterRoleBinding", strings.TrimSuffix(name, "-role")+"-rolebinding")
		if ref, _, _ := unstructured.NestedString(binding.Object, "roleRef", "name"); ref != name {
			t.Errorf("%s binds %s, want %s", Key(binding), ref, name)
		}
		subjects := toJSON(binding.Object["subjects"])
		if !strings.Contains(subjects, `"name":"`+want.account+`"`) || !strings.Contains(subjects, `"namespace":"`+releaseNamespace+`"`) {
			t.Errorf("%s subjects %s, want ServiceAccount %s/%s", Key(binding), subjects, releaseNamespace, want.account)
		}
	}
}

// expand lists a role's rules as sorted "group resource verb" entries, failing on wildcards,
// Secrets, non-resource URLs and resource names.
func expand(t *testing.T, role string, rules []any) []string {
	t.Helper()
	var out []string
	for i, r := range rules {
		rule := r.(map[string]any)
		groups, _, _ := unstructured.NestedStringSlice(rule, "apiGroups")
		resources, _, _ := unstructured.NestedStringSlice(rule, "resources")
		verbs, _, _ := unstructured.NestedStringSlice(rule, "verbs")
		if _, ok := rule["nonResourceURLs"]; ok {
			t.Errorf("%s rule %d grants non-resource URLs", role, i)
		}
		for _, field := range [][]string{groups, resources, verbs} {
			if slices.Contains(field, "*") {
				t.Errorf("%s rule %d has a wildcard: %s", role, i, toJSON(rule))
			}
		}
		for _, res := range resources {
			if res == "secrets" || strings.HasPrefix(res, "secrets/") {
				t.Errorf("%s rule %d grants access to Secrets", role, i)
			}
			for _, g := range groups {
				for _, v := range verbs {
					out = append(out, g+" "+res+" "+v)
				}
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
