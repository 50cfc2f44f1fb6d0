package reservations

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
)

func job(width, height int32, perImage string, phases map[string][]sdfleetv1alpha1.ImagePhase) sdfleetv1alpha1.ImageGenerationJob {
	j := sdfleetv1alpha1.ImageGenerationJob{Spec: sdfleetv1alpha1.ImageGenerationJobSpec{Width: width, Height: height}}
	if perImage != "" {
		q := resource.MustParse(perImage)
		j.Spec.GPUMemoryPerImage = &q
	}
	i := int32(0)
	for uuid, ps := range phases {
		for _, p := range ps {
			j.Status.Images = append(j.Status.Images, sdfleetv1alpha1.ImageStatus{Index: i, Phase: p, GPUUUID: uuid})
			i++
		}
	}
	return j
}

func TestPerImage(t *testing.T) {
	for _, tc := range []struct {
		name          string
		width, height int32
		perImage      string
		want          int64
	}{
		{"512x512", 512, 512, "", 3 * GiB},
		{"1024x1024", 1024, 1024, "", 6 * GiB},
		{"defaulted size", 0, 0, "", 3 * GiB},
		{"given", 512, 512, "5Gi", 5 * GiB},
		{"published by the controller", 512, 512, "", 4 * GiB},
		{"published wins over the spec", 512, 512, "5Gi", 4 * GiB},
		{"SDXL model path", 1024, 1024, "", 8 * GiB},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := job(tc.width, tc.height, tc.perImage, nil)
			if strings.HasPrefix(tc.name, "published") {
				j.Status.MemoryPerImage = &sdfleetv1alpha1.MemoryEstimate{Bytes: 4 * GiB}
			}
			if strings.HasPrefix(tc.name, "SDXL") {
				j.Spec.Model.HostPath = &sdfleetv1alpha1.HostPathLocation{Path: "/models/sd_xl_base_1.0.safetensors"}
			}
			if got := PerImage(&j); got != tc.want {
				t.Errorf("PerImage = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestByGPU(t *testing.T) {
	running, pending := sdfleetv1alpha1.ImageRunning, sdfleetv1alpha1.ImagePending
	jobs := []sdfleetv1alpha1.ImageGenerationJob{
		job(512, 512, "", map[string][]sdfleetv1alpha1.ImagePhase{
			"GPU-a": {running, pending, sdfleetv1alpha1.ImageSucceeded, sdfleetv1alpha1.ImageFailed},
			"GPU-b": {running},
			"":      {sdfleetv1alpha1.ImageWaiting, running}, // not placed, or on the CPU
		}),
		job(512, 512, "1Gi", map[string][]sdfleetv1alpha1.ImagePhase{"GPU-a": {running}}),
		job(512, 512, "", map[string][]sdfleetv1alpha1.ImagePhase{"GPU-c": {sdfleetv1alpha1.ImageSucceeded}}),
	}
	got := ByGPU(jobs)
	want := map[string]Share{"GPU-a": {Bytes: 7 * GiB, Images: 3}, "GPU-b": {Bytes: 3 * GiB, Images: 1}}
	if len(got) != len(want) || got["GPU-a"] != want["GPU-a"] || got["GPU-b"] != want["GPU-b"] {
		t.Errorf("ByGPU = %v, want %v", got, want)
	}
	if OfJob(&jobs[2]) != nil {
		t.Errorf("a job with no active image reserves %v", OfJob(&jobs[2]))
	}
	for _, tc := range []struct {
		bytes, total int64
		want         int32
	}{{7 * GiB, 80 * GiB, 8}, {0, 80 * GiB, 0}, {90 * GiB, 80 * GiB, 100}, {GiB, 0, 0}} {
		if got := Percent(tc.bytes, tc.total); got != tc.want {
			t.Errorf("Percent(%d, %d) = %d, want %d", tc.bytes, tc.total, got, tc.want)
		}
	}
}
