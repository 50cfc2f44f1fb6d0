package memorymodel

import (
	"testing"
)

func TestEstimates(t *testing.T) {
	const mp = 1024 * 1024
	for _, tc := range []struct {
		name    string
		observe func(l *Learner)
		key     string
		path    string
		pixels  int64
		want    Estimate
	}{
		{
			name: "SD 1.x default at 512x512", path: "/models/sd15", pixels: 512 * 512,
			want: Estimate{Bytes: 3 * GiB, BytesPerPixel: float64(3*GiB) / (512 * 512), Source: Default},
		},
		{
			name: "SDXL default from the file name", path: "/models/sd_xl_base_1.0.safetensors", pixels: mp,
			want: Estimate{Bytes: 8 * GiB, BytesPerPixel: float64(8*GiB) / mp, Source: Default, Family: FamilySDXL},
		},
		{
			// A result without a peak teaches nothing, not even the family.
			name: "a result without a peak", path: "/models/base", pixels: mp,
			observe: func(l *Learner) { l.Observe("m", "job-0", FamilySDXL, 0, mp) },
			want:    Estimate{Bytes: 6 * GiB, BytesPerPixel: float64(6*GiB) / mp, Source: Default},
		},
		{
			name: "learned per pixel, scaled to the image", path: "/models/base", pixels: 2 * mp,
			observe: func(l *Learner) { l.Observe("m", "job-0", FamilySDXL, 9*GiB, mp) },
			want:    Estimate{Bytes: 18 * GiB, BytesPerPixel: float64(9*GiB) / mp, Source: Learned, Family: FamilySDXL, Images: 1},
		},
		{
			name: "the largest rate wins and each image counts once", path: "/models/base", pixels: mp,
			observe: func(l *Learner) {
				l.Observe("m", "job-0", FamilySD1, 2*GiB, mp)
				l.Observe("m", "job-1", FamilySD1, 3*GiB, mp)
				l.Observe("m", "job-1", FamilySD1, 3*GiB, mp)
				l.Observe("m", "job-2", FamilySD1, 1*GiB, mp)
			},
			want: Estimate{Bytes: 3 * GiB, BytesPerPixel: float64(3*GiB) / mp, Source: Learned, Family: FamilySD1, Images: 3},
		},
		{
			name: "another model's images do not count", key: "other", path: "/models/other", pixels: 512 * 512,
			observe: func(l *Learner) { l.Observe("elsewhere", "job-0", FamilySDXL, 20*GiB, mp) },
			want:    Estimate{Bytes: 3 * GiB, BytesPerPixel: float64(3*GiB) / (512 * 512), Source: Default},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := NewLearner()
			if tc.observe != nil {
				tc.observe(l)
			}
			key := tc.key
			if key == "" {
				key = "m"
			}
			if got := l.Estimate(key, tc.path, tc.pixels); got != tc.want {
				t.Errorf("estimate %+v, want %+v", l.Estimate(key, tc.path, tc.pixels), tc.want)
			}
		})
	}
}

func TestObserveReportsChanges(t *testing.T) {
	l := NewLearner()
	if l.Observe("", "a", FamilySD1, GiB, 100) || l.Observe("m", "a", FamilySD1, GiB, 0) {
		t.Error("an observation without a model or a size changed the estimate")
	}
	if !l.Observe("m", "a", FamilySD1, GiB, 100) {
		t.Error("the first observation changed nothing")
	}
	if l.Observe("m", "b", FamilySD1, GiB/2, 100) {
		t.Error("a smaller peak changed the estimate")
	}
	if !l.Observe("m", "c", FamilySDXL, GiB/2, 100) {
		t.Error("a new family did not change the estimate")
	}
}
