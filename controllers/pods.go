package controllers

import (
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	"github.com/sdfleet/sdfleet/controllers/placementrecord"
	"github.com/sdfleet/sdfleet/controllers/podcontract"
)

// Volume names inside image pods.
const (
	modelVolume   = "model"
	outputVolume  = "output"
	scratchVolume = "scratch"
)

// podPlacement is where a new pod goes.
type podPlacement struct {
	// CPU is true for a CPU-fallback pod: no GPU, no node pinning.
	CPU bool
	// Node, GPUIndex and GPUUUID name the chosen GPU.
	Node     string
	GPUIndex int32
	GPUUUID  string
	// LoadPercent is the GPU's effective load when chosen.
	LoadPercent int32
	// Policy chose the GPU.
	Policy sdfleetv1alpha1.PlacementPolicy
	// Bytes is the GPU memory reserved for the image.
	Bytes int64
	// Work is the image's megapixel-steps.
	Work float64
	// Record is the decision's candidates and reasons, as placementrecord.Annotation's value.
	Record string
}

// imageSeed is the seed of image index: the job's seed plus the index, wrapping within the
// non-negative int64 range.
func imageSeed(jobSeed int64, index int32) int64 {
	return int64((uint64(jobSeed) + uint64(index)) & (1<<63 - 1))
}

// buildPod returns the pod that generates image index of job, the seq-th pod of that image.
func buildPod(job *sdfleetv1alpha1.ImageGenerationJob, index, seq int32, jobSeed int64, p podPlacement,
	defaultImage string) *corev1.Pod {
	spec := &job.Spec
	device := podcontract.DeviceAuto
	deviceAnnotation := DeviceGPU
	if p.CPU {
		device = podcontract.DeviceCPU
		deviceAnnotation = DeviceCPU
	}
	image := spec.Image
	if image == "" {
		image = defaultImage
	}
	modelPath := podcontract.ModelMountPath
	switch {
	case spec.Model.PersistentVolumeClaim != nil:
		modelPath = podcontract.InVolume(podcontract.ModelMountPath, spec.Model.PersistentVolumeClaim.Path)
	case spec.Model.HostPath != nil:
		if _, base := podcontract.HostModelMount(spec.Model.HostPath.Path); base != "" {
			modelPath = podcontract.InVolume(podcontract.ModelMountPath, base)
		}
	}
	args := []string{
		podcontract.FlagPrompt, spec.Prompt,
		podcontract.FlagNegativePrompt, spec.NegativePrompt,
		podcontract.FlagSeed, strconv.FormatInt(imageSeed(jobSeed, index), 10),
		podcontract.FlagSteps, strconv.FormatInt(int64(spec.Steps), 10),
		podcontract.FlagWidth, strconv.FormatInt(int64(spec.Width), 10),
		podcontract.FlagHeight, strconv.FormatInt(int64(spec.Height), 10),
		podcontract.FlagGuidance, spec.GuidanceScale,
		podcontract.FlagSampler, string(spec.Sampler),
		podcontract.FlagModel, modelPath,
		podcontract.FlagOutput, podcontract.InVolume(podcontract.OutputMountPath, outputPathInVolume(job, index)),
		podcontract.FlagDevice, device,
		podcontract.FlagResultFile, podcontract.ResultFile,
	}

	resources := corev1.ResourceRequirements{Requests: corev1.ResourceList{}, Limits: corev1.ResourceList{}}
	if spec.Resources != nil {
		for name, q := range spec.Resources.Requests {
			resources.Requests[name] = q.DeepCopy()
		}
		for name, q := range spec.Resources.Limits {
			resources.Limits[name] = q.DeepCopy()
		}
	}
	annotations := map[string]string{
		AnnotationDevice: deviceAnnotation,
		AnnotationPolicy: string(p.Policy),
		AnnotationRetry:  strconv.FormatInt(int64(seq), 10),
	}
	if p.Work > 0 {
		annotations[AnnotationWork] = strconv.FormatFloat(p.Work, 'g', 6, 64)
	}
	var affinity *corev1.Affinity
	if !p.CPU {
		gpu := corev1.ResourceName(sdfleetv1alpha1.ResourcePrefix + strconv.FormatInt(int64(p.GPUIndex), 10))
		resources.Requests[gpu] = resource.MustParse("1")
		resources.Limits[gpu] = resource.MustParse("1")
		affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
				NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{
					Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{p.Node},
				}}}},
			},
		}}
		annotations[AnnotationNode] = p.Node
		annotations[AnnotationGPUUUID] = p.GPUUUID
		annotations[AnnotationGPUIndex] = strconv.FormatInt(int64(p.GPUIndex), 10)
		annotations[AnnotationGPULoad] = strconv.FormatInt(int64(p.LoadPercent), 10)
		annotations[AnnotationReservedBytes] = strconv.FormatInt(p.Bytes, 10)
		if p.Record != "" {
			annotations[placementrecord.Annotation] = p.Record
		}
	}
	if len(resources.Requests) == 0 {
		resources.Requests = nil
	}
	if len(resources.Limits) == 0 {
		resources.Limits = nil
	}

	var nodeSelector map[string]string
	if len(spec.Placement.NodeSelector) > 0 {
		nodeSelector = make(map[string]string, len(spec.Placement.NodeSelector))
		for k, v := range spec.Placement.NodeSelector {
			nodeSelector[k] = v
		}
	}
	var tolerations []corev1.Toleration
	for _, t := range spec.Placement.Tolerations {
		tolerations = append(tolerations, *t.DeepCopy())
	}

	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:      PodName(job.Name, index, seq),
			Namespace: job.Namespace,
			Labels: map[string]string{
				LabelJob:        jobLabelValue(job.Name),
				LabelJobUID:     string(job.UID),
				LabelImageIndex: strconv.FormatInt(int64(index), 10),
			},
			Annotations: annotations,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion:         sdfleetv1alpha1.GroupVersion.String(),
				Kind:               "ImageGenerationJob",
				Name:               job.Name,
				UID:                job.UID,
				Controller:         ptr.To(true),
				BlockOwnerDeletion: ptr.To(true),
			}},
		},
		Spec: corev1.PodSpec{
			RestartPolicy:                corev1.RestartPolicyNever,
			AutomountServiceAccountToken: ptr.To(false),
			EnableServiceLinks:           ptr.To(false),
			Affinity:                     affinity,
			NodeSelector:                 nodeSelector,
			Tolerations:                  tolerations,
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot:   ptr.To(true),
				RunAsUser:      ptr.To[int64](65532),
				RunAsGroup:     ptr.To[int64](65532),
				FSGroup:        ptr.To[int64](65532),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: []corev1.Container{{
				Name:                     podcontract.ContainerName,
				Image:                    image,
				ImagePullPolicy:          corev1.PullIfNotPresent,
				Command:                  append([]string(nil), podcontract.Command...),
				Args:                     args,
				Resources:                resources,
				TerminationMessagePath:   podcontract.ResultFile,
				TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
				SecurityContext: &corev1.SecurityContext{
					RunAsNonRoot:             ptr.To(true),
					AllowPrivilegeEscalation: ptr.To(false),
					ReadOnlyRootFilesystem:   ptr.To(true),
					Privileged:               ptr.To(false),
					Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
					SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
				},
				VolumeMounts: []corev1.VolumeMount{
					{Name: modelVolume, MountPath: podcontract.ModelMountPath, ReadOnly: true},
					{Name: outputVolume, MountPath: podcontract.OutputMountPath},
					{Name: scratchVolume, MountPath: podcontract.ScratchMountPath},
				},
			}},
			Volumes: []corev1.Volume{
				volumeFor(modelVolume, spec.Model, true),
				volumeFor(outputVolume, spec.Output, false),
				{Name: scratchVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			},
		},
	}
}

// volumeFor mounts a storage location. A claim is mounted whole and the path chosen inside it
// (cleaned, so it cannot leave the volume); a host path is mounted at the named path itself.
func volumeFor(name string, loc sdfleetv1alpha1.StorageLocation, readOnly bool) corev1.Volume {
	v := corev1.Volume{Name: name}
	switch {
	case loc.PersistentVolumeClaim != nil:
		v.PersistentVolumeClaim = &corev1.PersistentVolumeClaimVolumeSource{
			ClaimName: loc.PersistentVolumeClaim.ClaimName, ReadOnly: readOnly,
		}
	case loc.HostPath != nil && readOnly:
		// The model: its folder is mounted, not the model itself, so that a model that is
		// missing on the node is reported by sdgen (exit 66, naming the path) instead of
		// leaving the pod unable to start.
		dir, base := podcontract.HostModelMount(loc.HostPath.Path)
		hostType := corev1.HostPathDirectory
		if base == "" {
			hostType = corev1.HostPathUnset
		}
		v.HostPath = &corev1.HostPathVolumeSource{Path: dir, Type: &hostType}
	case loc.HostPath != nil:
		hostType := corev1.HostPathDirectoryOrCreate
		v.HostPath = &corev1.HostPathVolumeSource{Path: "/" + podcontract.CleanRelative(loc.HostPath.Path), Type: &hostType}
	default:
		// The API requires one of the two; an empty volume keeps a malformed object from
		// producing an invalid pod, and sdgen reports the missing model.
		v.EmptyDir = &corev1.EmptyDirVolumeSource{}
	}
	return v
}

// outputPathInVolume is where image index is written, relative to the output volume's root.
func outputPathInVolume(job *sdfleetv1alpha1.ImageGenerationJob, index int32) string {
	prefix := ""
	if job.Spec.Output.PersistentVolumeClaim != nil {
		prefix = job.Spec.Output.PersistentVolumeClaim.Path
	}
	return podcontract.OutputRelativePath(prefix, job.Namespace, job.Name, index)
}

// outputPathForStatus is the image's PNG as status.images[].outputPath reports it: inside the
// claim for a PersistentVolumeClaim, the absolute path on the node for a host path.
func outputPathForStatus(job *sdfleetv1alpha1.ImageGenerationJob, index int32) string {
	rel := outputPathInVolume(job, index)
	if hp := job.Spec.Output.HostPath; hp != nil {
		return podcontract.InVolume("/"+podcontract.CleanRelative(hp.Path), rel)
	}
	return rel
}
