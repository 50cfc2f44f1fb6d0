package controllers

import (
	"math"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	"github.com/sdfleet/sdfleet/controllers/memorymodel"
)

// modelKey names where a job's model is stored, the key of what finished images taught about
// it: the same checkpoint behind two claims, or under two paths, is learned twice.
func modelKey(job *sdfleetv1alpha1.ImageGenerationJob) (key, path string) {
	switch m := job.Spec.Model; {
	case m.PersistentVolumeClaim != nil:
		return "pvc:" + job.Namespace + "/" + m.PersistentVolumeClaim.ClaimName + "/" + m.PersistentVolumeClaim.Path, m.PersistentVolumeClaim.Path
	case m.HostPath != nil:
		return "hostPath:" + m.HostPath.Path, m.HostPath.Path
	}
	return "", ""
}

// imagePixels is the pixel count of one image of job, the defaults filled in.
func imagePixels(job *sdfleetv1alpha1.ImageGenerationJob) int64 {
	w, h := int64(job.Spec.Width), int64(job.Spec.Height)
	if w <= 0 {
		w = 512
	}
	if h <= 0 {
		h = 512
	}
	return w * h
}

// learnMemory feeds the job's succeeded images to the memory learner: the peak GPU memory
// each result reports and the family. The reservation is GPU memory, so an image that ran on
// the CPU (no device peak, its host memory holds float32 weights) teaches nothing. A finished
// image seen again at a later reconcile counts once.
func (r *ImageGenerationJobReconciler) learnMemory(job *sdfleetv1alpha1.ImageGenerationJob, infos []podInfo) {
	key, _ := modelKey(job)
	pixels := imagePixels(job)
	for _, info := range infos {
		if info.kind == podSucceeded {
			r.memory.Observe(key, info.name, info.result.Family, info.result.PeakDeviceMemoryBytes, pixels)
		}
	}
}

// memoryEstimate is the memory reserved for each image of job: spec.gpuMemoryPerImage, else
// what the model's finished images used per pixel, else the family's default.
func (r *ImageGenerationJobReconciler) memoryEstimate(job *sdfleetv1alpha1.ImageGenerationJob) sdfleetv1alpha1.MemoryEstimate {
	pixels := imagePixels(job)
	if q := job.Spec.GPUMemoryPerImage; q != nil && q.Value() > 0 {
		return sdfleetv1alpha1.MemoryEstimate{Bytes: q.Value(), BytesPerPixel: q.Value() / pixels, Source: sdfleetv1alpha1.MemoryFromSpec}
	}
	key, path := modelKey(job)
	e := r.memory.Estimate(key, path, pixels)
	return sdfleetv1alpha1.MemoryEstimate{Bytes: e.Bytes, BytesPerPixel: int64(math.Round(e.BytesPerPixel)),
		Source: sdfleetv1alpha1.MemorySource(e.Source), Family: e.Family, Images: int32(min(e.Images, math.MaxInt32))}
}

// memoryPerImage is spec.gpuMemoryPerImage, else the family's default for the image size
// (see memorymodel.DefaultBytes), the family guessed from the model's path: what the
// controller reserves before any image of the model has finished.
func memoryPerImage(job *sdfleetv1alpha1.ImageGenerationJob) int64 {
	if q := job.Spec.GPUMemoryPerImage; q != nil && q.Value() > 0 {
		return q.Value()
	}
	_, path := modelKey(job)
	return memorymodel.DefaultBytes(memorymodel.FamilyFromPath(path), imagePixels(job))
}
