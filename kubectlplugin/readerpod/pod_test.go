package readerpod

import (
	"strings"
	"testing"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	sdtesting "github.com/sdfleet/sdfleet/controllers/testing"
)

func TestPodAndFiles(t *testing.T) {
	claim := sdtesting.MakeJob("fox", "studio").Obj()
	claim.Spec.Output = sdfleetv1alpha1.StorageLocation{PersistentVolumeClaim: &sdfleetv1alpha1.PVCLocation{ClaimName: "images", Path: "runs/a"}}
	host := sdtesting.MakeJob("fox", "studio").Obj()
	long := sdtesting.MakeJob(strings.Repeat("a", 62)+"-b-x", "studio").Obj()
	for _, tc := range []struct {
		name      string
		job       *sdfleetv1alpha1.ImageGenerationJob
		node      string
		file      string
		label     string
		checkSpec func(t *testing.T, p podView)
	}{
		{"claim", claim, "", "runs/a/studio/fox/3.png", "fox", func(t *testing.T, p podView) {
			if p.claim != "images" || !p.claimReadOnly || p.hostPath != "" || p.pinned != "" {
				t.Errorf("claim volume %+v: want images, read-only, not pinned", p)
			}
		}},
		{"host folder", host, "node-a", "studio/fox/3.png", "fox", func(t *testing.T, p podView) {
			if p.hostPath != "/srv/images" || p.pinned != "node-a" || p.claim != "" {
				t.Errorf("host volume %+v: want /srv/images pinned to node-a", p)
			}
		}},
		{"long name", long, "node-a", "studio/" + long.Name + "/3.png", strings.Repeat("a", 62), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := FileOf(tc.job, 3); got != tc.file {
				t.Errorf("FileOf = %q, want %q", got, tc.file)
			}
			pod := Pod(tc.job, "ghcr.io/sdfleet/sdgen:1", tc.node)
			if got := pod.Labels[LabelReaderFor]; got != tc.label {
				t.Errorf("label %q, want %q (a valid label value)", got, tc.label)
			}
			if m := pod.Spec.Containers[0].VolumeMounts[0]; !m.ReadOnly || m.MountPath != "/sdfleet/output" {
				t.Errorf("mount %+v: want /sdfleet/output read-only", m)
			}
			if tc.checkSpec != nil {
				v := pod.Spec.Volumes[0]
				p := podView{}
				if v.PersistentVolumeClaim != nil {
					p.claim, p.claimReadOnly = v.PersistentVolumeClaim.ClaimName, v.PersistentVolumeClaim.ReadOnly
				}
				if v.HostPath != nil {
					p.hostPath = v.HostPath.Path
				}
				if a := pod.Spec.Affinity; a != nil {
					p.pinned = a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms[0].MatchExpressions[0].Values[0]
				}
				tc.checkSpec(t, p)
			}
		})
	}
	cmd := strings.Join(exportCommand([]string{"a/0.png", "a/1.png"}), " ")
	if cmd != "sdgen export --root /sdfleet/output a/0.png a/1.png" {
		t.Errorf("export command %q", cmd)
	}
}

type podView struct {
	claim         string
	claimReadOnly bool
	hostPath      string
	pinned        string
}
