package testing

import (
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	"github.com/sdfleet/sdfleet/controllers/podcontract"
)

// GiB is 2^30 bytes.
const GiB = int64(1) << 30

// JobWrapper builds an ImageGenerationJob.
type JobWrapper struct {
	sdfleetv1alpha1.ImageGenerationJob
}

// MakeJob starts a job with the API's defaults filled in, a host-path model and output, and
// a fixed seed.
func MakeJob(name, namespace string) *JobWrapper {
	return &JobWrapper{sdfleetv1alpha1.ImageGenerationJob{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: sdfleetv1alpha1.ImageGenerationJobSpec{
			Prompt:        "a lighthouse at dawn",
			Images:        4,
			Width:         512,
			Height:        512,
			Steps:         20,
			GuidanceScale: "7.5",
			Sampler:       sdfleetv1alpha1.SamplerDDIM,
			Seed:          ptr.To[int64](42),
			Model:         sdfleetv1alpha1.StorageLocation{HostPath: &sdfleetv1alpha1.HostPathLocation{Path: "/models/sd15"}},
			Output:        sdfleetv1alpha1.StorageLocation{HostPath: &sdfleetv1alpha1.HostPathLocation{Path: "/srv/images"}},
			Placement:     sdfleetv1alpha1.PlacementSpec{Policy: sdfleetv1alpha1.PlacementLeastLoaded},
		},
	}}
}

// Obj returns the job.
func (w *JobWrapper) Obj() *sdfleetv1alpha1.ImageGenerationJob { return w.DeepCopy() }

// Images sets the number of images.
func (w *JobWrapper) Images(n int32) *JobWrapper { w.Spec.Images = n; return w }

// Prompt sets the prompt.
func (w *JobWrapper) Prompt(p string) *JobWrapper { w.Spec.Prompt = p; return w }

// ModelHostPath sets a host-path model.
func (w *JobWrapper) ModelHostPath(p string) *JobWrapper {
	w.Spec.Model = sdfleetv1alpha1.StorageLocation{HostPath: &sdfleetv1alpha1.HostPathLocation{Path: p}}
	return w
}

// OutputHostPath sets a host-path output folder.
func (w *JobWrapper) OutputHostPath(p string) *JobWrapper {
	w.Spec.Output = sdfleetv1alpha1.StorageLocation{HostPath: &sdfleetv1alpha1.HostPathLocation{Path: p}}
	return w
}

// Image sets the inference image.
func (w *JobWrapper) Image(image string) *JobWrapper { w.Spec.Image = image; return w }

// Policy sets the placement policy.
func (w *JobWrapper) Policy(p sdfleetv1alpha1.PlacementPolicy) *JobWrapper {
	w.Spec.Placement.Policy = p
	return w
}

// PinnedGPU adds a GPU by node and UUID to a Pinned job.
func (w *JobWrapper) PinnedGPU(node, uuid string) *JobWrapper {
	w.Spec.Placement.Policy = sdfleetv1alpha1.PlacementPinned
	w.Spec.Placement.GPUs = append(w.Spec.Placement.GPUs, sdfleetv1alpha1.GPUSelector{Node: node, UUID: uuid})
	return w
}

// CPUFallback sets allowCPUFallback.
func (w *JobWrapper) CPUFallback(allow bool) *JobWrapper {
	w.Spec.Placement.AllowCPUFallback = ptr.To(allow)
	return w
}

// Parallelism sets spec.parallelism.
func (w *JobWrapper) Parallelism(n int32) *JobWrapper { w.Spec.Parallelism = ptr.To(n); return w }

// BackoffLimit sets spec.backoffLimitPerImage.
func (w *JobWrapper) BackoffLimit(n int32) *JobWrapper {
	w.Spec.BackoffLimitPerImage = ptr.To(n)
	return w
}

// MaxFailedImages sets spec.maxFailedImages.
func (w *JobWrapper) MaxFailedImages(n int32) *JobWrapper {
	w.Spec.MaxFailedImages = ptr.To(n)
	return w
}

// Suspend sets spec.suspend.
func (w *JobWrapper) Suspend(s bool) *JobWrapper { w.Spec.Suspend = ptr.To(s); return w }

// ActiveDeadline sets spec.activeDeadlineSeconds.
func (w *JobWrapper) ActiveDeadline(seconds int64) *JobWrapper {
	w.Spec.ActiveDeadlineSeconds = ptr.To(seconds)
	return w
}

// TTL sets spec.ttlSecondsAfterFinished.
func (w *JobWrapper) TTL(seconds int32) *JobWrapper {
	w.Spec.TTLSecondsAfterFinished = ptr.To(seconds)
	return w
}

// GPUMemoryPerImage sets spec.gpuMemoryPerImage in GiB.
func (w *JobWrapper) GPUMemoryPerImage(gib int64) *JobWrapper {
	w.Spec.GPUMemoryPerImage = resource.NewQuantity(gib*GiB, resource.BinarySI)
	return w
}

// ModelClaim puts the model in a PersistentVolumeClaim.
func (w *JobWrapper) ModelClaim(claim, path string) *JobWrapper {
	w.Spec.Model = sdfleetv1alpha1.StorageLocation{PersistentVolumeClaim: &sdfleetv1alpha1.PVCLocation{ClaimName: claim, Path: path}}
	return w
}

// OutputClaim writes the images to a PersistentVolumeClaim.
func (w *JobWrapper) OutputClaim(claim, path string) *JobWrapper {
	w.Spec.Output = sdfleetv1alpha1.StorageLocation{PersistentVolumeClaim: &sdfleetv1alpha1.PVCLocation{ClaimName: claim, Path: path}}
	return w
}

// Toleration adds a toleration to the image pods.
func (w *JobWrapper) Toleration(key, value string) *JobWrapper {
	w.Spec.Placement.Tolerations = append(w.Spec.Placement.Tolerations, corev1.Toleration{
		Key: key, Operator: corev1.TolerationOpEqual, Value: value, Effect: corev1.TaintEffectNoSchedule,
	})
	return w
}

// Resources sets the image pods' CPU and memory requests.
func (w *JobWrapper) Resources(cpu, memory string) *JobWrapper {
	w.Spec.Resources = &sdfleetv1alpha1.ImageResources{Requests: corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(memory),
	}}
	return w
}

// GPUNodeWrapper builds a GPUNode and its status.
type GPUNodeWrapper struct{ sdfleetv1alpha1.GPUNode }

// MakeGPUNode starts a GPUNode with no GPUs, a heartbeat now and a 1 s sampling interval.
func MakeGPUNode(name string) *GPUNodeWrapper {
	now := metav1.NewTime(time.Now())
	return &GPUNodeWrapper{sdfleetv1alpha1.GPUNode{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Status: sdfleetv1alpha1.GPUNodeStatus{
			LastHeartbeatTime: &now, SampleIntervalSeconds: 1, Simulated: true, AgentVersion: "test",
		},
	}}
}

// GPUUUID is the UUID the builders give GPU index of node.
func GPUUUID(node string, index int32) string { return fmt.Sprintf("GPU-%s-%d", node, index) }

// GPU adds a healthy GPU with usedGiB of totalGiB memory in use and the given slots.
func (w *GPUNodeWrapper) GPU(index int32, usedGiB, totalGiB int64, slots int32) *GPUNodeWrapper {
	w.Status.GPUs = append(w.Status.GPUs, sdfleetv1alpha1.GPUStatus{
		Index: index, UUID: GPUUUID(w.Name, index), ProductName: "Simulated GPU",
		MemoryTotalBytes: totalGiB * GiB, MemoryUsedBytes: usedGiB * GiB,
		Health: sdfleetv1alpha1.GPUHealthy, ResourceName: fmt.Sprintf("%s%d", sdfleetv1alpha1.ResourcePrefix, index),
		Slots: slots,
	})
	w.recount()
	return w
}

// Unhealthy marks GPU index unhealthy.
func (w *GPUNodeWrapper) Unhealthy(index int32, reason string) *GPUNodeWrapper {
	for i := range w.Status.GPUs {
		if w.Status.GPUs[i].Index == index {
			w.Status.GPUs[i].Health = sdfleetv1alpha1.GPUUnhealthy
			w.Status.GPUs[i].HealthReason = reason
		}
	}
	w.recount()
	return w
}

func (w *GPUNodeWrapper) recount() {
	w.Status.GPUCount = int32(len(w.Status.GPUs))
	w.Status.HealthyGPUs = 0
	var used, total int64
	for _, g := range w.Status.GPUs {
		if g.Health == sdfleetv1alpha1.GPUHealthy {
			w.Status.HealthyGPUs++
		}
		used += g.MemoryUsedBytes
		total += g.MemoryTotalBytes
	}
	w.Status.MemoryUsedPercent = 0
	if total > 0 {
		w.Status.MemoryUsedPercent = int32(used * 100 / total)
	}
}

// Obj returns the GPUNode.
func (w *GPUNodeWrapper) Obj() *sdfleetv1alpha1.GPUNode { return w.DeepCopy() }

// SetRunning plays the kubelet starting pod's container at t.
func SetRunning(pod *corev1.Pod, t time.Time) {
	mt := metav1.NewTime(t)
	pod.Status.Phase = corev1.PodRunning
	pod.Status.StartTime = &mt
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{
		Name: podcontract.ContainerName, Image: pod.Spec.Containers[0].Image, Ready: true, Started: ptr.To(true),
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: mt}},
	}}
}

// SuccessMessage is the termination message sdgen writes for pod's image.
func SuccessMessage(pod *corev1.Pod, durationMillis int64, device string) string {
	out := ""
	args := pod.Spec.Containers[0].Args
	for i := 0; i+1 < len(args); i++ {
		if args[i] == podcontract.FlagOutput {
			out = args[i+1]
		}
	}
	return fmt.Sprintf(`{"outputPath":%q,"sha256":%q,"durationMilliseconds":%d,"device":%q}`,
		out, strings.Repeat("ab", 32), durationMillis, device)
}

// SetTerminated plays the kubelet ending pod's container with exitCode and message.
func SetTerminated(pod *corev1.Pod, exitCode int32, message string, t time.Time) {
	mt := metav1.NewTime(t)
	started := metav1.NewTime(t.Add(-time.Second))
	pod.Status.Phase = corev1.PodSucceeded
	if exitCode != 0 {
		pod.Status.Phase = corev1.PodFailed
	}
	if pod.Status.StartTime == nil {
		pod.Status.StartTime = &started
	}
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{
		Name: podcontract.ContainerName, Image: pod.Spec.Containers[0].Image,
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			ExitCode: exitCode, Message: message, StartedAt: started, FinishedAt: mt,
			Reason: map[bool]string{true: "Completed", false: "Error"}[exitCode == 0],
		}},
	}}
}

// SetEvicted plays the kubelet evicting pod before its container ran.
func SetEvicted(pod *corev1.Pod) {
	pod.Status.Phase = corev1.PodFailed
	pod.Status.Reason = "Evicted"
	pod.Status.Message = "The node was low on resource: memory."
	pod.Status.ContainerStatuses = nil
}
