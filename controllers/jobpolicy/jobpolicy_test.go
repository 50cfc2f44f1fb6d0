package jobpolicy

import (
	"strings"
	"testing"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
)

func hostPath(p string) sdfleetv1alpha1.StorageLocation {
	return sdfleetv1alpha1.StorageLocation{HostPath: &sdfleetv1alpha1.HostPathLocation{Path: p}}
}

func claim(name string) sdfleetv1alpha1.StorageLocation {
	return sdfleetv1alpha1.StorageLocation{PersistentVolumeClaim: &sdfleetv1alpha1.PVCLocation{ClaimName: name}}
}

func TestCheck(t *testing.T) {
	policy, err := New([]string{"/srv/sdfleet", "/data/models"}, nil, "ghcr.io/sdfleet/sdgen:0.1.0")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name          string
		model, output sdfleetv1alpha1.StorageLocation
		image         string
		// wantFields are the refused fields, in order; none means the job may run.
		wantFields []string
	}{
		{"claims only", claim("m"), claim("o"), "", nil},
		{"model folder under an allowed prefix", hostPath("/data/models/sd15"), hostPath("/srv/sdfleet/out"), "", nil},
		{"output is the allowed folder itself", hostPath("/srv/sdfleet/models/sd15"), hostPath("/srv/sdfleet"), "", nil},
		{"model is the allowed folder: its parent would be mounted", hostPath("/data/models"), claim("o"), "",
			[]string{"spec.model.hostPath.path"}},
		{"etc", hostPath("/etc/shadow"), hostPath("/etc"), "", []string{"spec.model.hostPath.path", "spec.output.hostPath.path"}},
		{"root output", claim("m"), hostPath("/"), "", []string{"spec.output.hostPath.path"}},
		{"kubelet folder", claim("m"), hostPath("/var/lib/kubelet"), "", []string{"spec.output.hostPath.path"}},
		{"a sibling sharing the prefix's spelling", claim("m"), hostPath("/srv/sdfleet-evil"), "", []string{"spec.output.hostPath.path"}},
		{"unclean path leaving the folder", claim("m"), hostPath("/srv/sdfleet/../../etc"), "", []string{"spec.output.hostPath.path"}},
		{"model directly under root", hostPath("/sd15"), claim("o"), "", []string{"spec.model.hostPath.path"}},
		{"default image's repository, other tag", claim("m"), claim("o"), "ghcr.io/sdfleet/sdgen:0.2.0", nil},
		{"default image's repository by digest", claim("m"), claim("o"), "ghcr.io/sdfleet/sdgen@sha256:0123abcd", nil},
		{"a repository sharing the prefix's spelling", claim("m"), claim("o"), "ghcr.io/sdfleet/sdgen-evil:1", []string{"spec.image"}},
		{"another registry", claim("m"), claim("o"), "docker.io/library/busybox", []string{"spec.image"}},
		{"a repository below the default one", claim("m"), claim("o"), "ghcr.io/sdfleet/sdgen/other:1", []string{"spec.image"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := &sdfleetv1alpha1.ImageGenerationJobSpec{Model: tt.model, Output: tt.output, Image: tt.image}
			errs := policy.Check(spec)
			var got []string
			for _, e := range errs {
				got = append(got, e.Field)
			}
			if strings.Join(got, ",") != strings.Join(tt.wantFields, ",") {
				t.Fatalf("Check refused %v (%v), want %v", got, errs, tt.wantFields)
			}
		})
	}
}

func TestCheckMessages(t *testing.T) {
	off, err := New(nil, []string{"registry.local/team/"}, "ghcr.io/sdfleet/sdgen:0.1.0")
	if err != nil {
		t.Fatal(err)
	}
	spec := &sdfleetv1alpha1.ImageGenerationJobSpec{Model: hostPath("/etc/x"), Output: claim("o"), Image: "evil.io/x:1"}
	msg := off.Check(spec).ToAggregate().Error()
	for _, want := range []string{"spec.model.hostPath.path", "hostPath is disabled on this cluster", "spec.image",
		`"evil.io/x:1"`, "registry.local/team/"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not contain %q", msg, want)
		}
	}
	if off.Check(&sdfleetv1alpha1.ImageGenerationJobSpec{Model: claim("m"), Output: claim("o"),
		Image: "registry.local/team/sdgen:2"}) != nil {
		t.Error("an image below an allowed registry path was refused")
	}
}

func TestNew(t *testing.T) {
	for _, bad := range [][]string{{"relative"}, {"/srv/"}, {"/srv/./x"}, {""}} {
		if _, err := New(bad, nil, "img"); err == nil || !strings.Contains(err.Error(), "host path prefix") {
			t.Errorf("New(%q) error = %v, want one naming the host path prefix", bad, err)
		}
	}
	if _, err := New(nil, []string{"a,b"}, "img"); err == nil || !strings.Contains(err.Error(), "image prefix") {
		t.Errorf("New(image prefix with a comma) error = %v", err)
	}
}

func TestRepository(t *testing.T) {
	for ref, want := range map[string]string{
		"ghcr.io/sdfleet/sdgen:0.1.0":         "ghcr.io/sdfleet/sdgen",
		"localhost:5000/sdgen":                "localhost:5000/sdgen",
		"localhost:5000/sdgen:dev":            "localhost:5000/sdgen",
		"ghcr.io/sdfleet/sdgen@sha256:abc123": "ghcr.io/sdfleet/sdgen",
		"sdgen":                               "sdgen",
	} {
		if got := Repository(ref); got != want {
			t.Errorf("Repository(%q) = %q, want %q", ref, got, want)
		}
	}
}
