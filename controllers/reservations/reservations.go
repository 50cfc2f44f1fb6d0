package reservations

import (
	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	"github.com/sdfleet/sdfleet/controllers/memorymodel"
)

// GiB is 2^30 bytes.
const GiB = memorymodel.GiB

// PerImage is the GPU memory one image of job reserves on its GPU: the figure the controller
// reserves and publishes in status.memoryPerImage (spec.gpuMemoryPerImage, else what finished
// images of the same model used, else the family's default); before the controller has
// published it, spec.gpuMemoryPerImage or the family's default for the image size, the family
// guessed from the model's path (see memorymodel.DefaultBytes).
func PerImage(job *sdfleetv1alpha1.ImageGenerationJob) int64 {
	if e := job.Status.MemoryPerImage; e != nil && e.Bytes > 0 {
		return e.Bytes
	}
	if q := job.Spec.GPUMemoryPerImage; q != nil && q.Value() > 0 {
		return q.Value()
	}
	w, h := int64(job.Spec.Width), int64(job.Spec.Height)
	if w <= 0 {
		w = 512
	}
	if h <= 0 {
		h = 512
	}
	var path string
	switch m := job.Spec.Model; {
	case m.PersistentVolumeClaim != nil:
		path = m.PersistentVolumeClaim.Path
	case m.HostPath != nil:
		path = m.HostPath.Path
	}
	return memorymodel.DefaultBytes(memorymodel.FamilyFromPath(path), w*h)
}

// Share is what sdfleet reserves on one GPU.
type Share struct {
	Bytes  int64 `json:"bytes"`
	Images int   `json:"images"`
}

// OfJob is job's reservations by GPU UUID: its images placed on a GPU whose pod is starting
// (Pending) or running. Nil when it has none.
func OfJob(job *sdfleetv1alpha1.ImageGenerationJob) map[string]Share {
	var out map[string]Share
	per := int64(-1)
	for _, img := range job.Status.Images {
		if img.GPUUUID == "" || (img.Phase != sdfleetv1alpha1.ImagePending && img.Phase != sdfleetv1alpha1.ImageRunning) {
			continue
		}
		if per < 0 {
			per = PerImage(job)
			out = map[string]Share{}
		}
		s := out[img.GPUUUID]
		s.Bytes += per
		s.Images++
		out[img.GPUUUID] = s
	}
	return out
}

// ByGPU sums the reservations of jobs by GPU UUID.
func ByGPU(jobs []sdfleetv1alpha1.ImageGenerationJob) map[string]Share {
	out := map[string]Share{}
	for i := range jobs {
		for uuid, s := range OfJob(&jobs[i]) {
			t := out[uuid]
			t.Bytes += s.Bytes
			t.Images += s.Images
			out[uuid] = t
		}
	}
	return out
}

// Percent is bytes as a whole percentage of total, at most 100.
func Percent(bytes, total int64) int32 {
	if total <= 0 || bytes <= 0 {
		return 0
	}
	return int32(min(bytes*100/total, 100))
}
