package readerpod

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	"github.com/sdfleet/sdfleet/controllers/podcontract"
	"github.com/sdfleet/sdfleet/internal/imagestream"
)

// Labels of reader pods. They carry none of the image pods' labels, so the job's controller
// never counts a reader as one of its pods.
const (
	LabelComponent = "app.kubernetes.io/component"
	// ComponentReader is LabelComponent's value on reader pods.
	ComponentReader = "image-reader"
	// LabelReaderFor is the name of the job a reader pod reads (cut to a label value).
	LabelReaderFor = "sdfleet.io/reader-for"
)

const (
	// ContainerName is the reader pod's only container.
	ContainerName = "reader"
	// volumeName is the output volume inside the reader pod.
	volumeName = "output"
	// Lifetime bounds how long a reader pod lives even if nobody deletes it: its main process
	// ends after it, and the kubelet stops the pod at the deadline just after.
	Lifetime = 10 * time.Minute
)

// Pod is the reader pod for job's output volume running image, pinned to node when node is not
// empty (a host folder exists on one node only). It is owned by the job, without blocking its
// deletion, so that the garbage collector removes a reader left behind with its job.
func Pod(job *sdfleetv1alpha1.ImageGenerationJob, image, node string) *corev1.Pod {
	label := job.Name
	if len(label) > 63 {
		label = label[:63]
	}
	for len(label) > 0 && (label[len(label)-1] == '-' || label[len(label)-1] == '.') {
		label = label[:len(label)-1]
	}
	var affinity *corev1.Affinity
	if node != "" {
		affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
				NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{
					Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{node},
				}}}},
			},
		}}
	}
	var tolerations []corev1.Toleration
	for _, t := range job.Spec.Placement.Tolerations {
		tolerations = append(tolerations, *t.DeepCopy())
	}
	command := append(append([]string(nil), imagestream.HoldCommand...),
		imagestream.FlagHoldFor, Lifetime.String())
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: "sdfleet-reader-",
			Namespace:    job.Namespace,
			Labels:       map[string]string{LabelComponent: ComponentReader, LabelReaderFor: label},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: sdfleetv1alpha1.GroupVersion.String(), Kind: "ImageGenerationJob",
				Name: job.Name, UID: job.UID,
			}},
		},
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			ActiveDeadlineSeconds:         ptr.To(int64((Lifetime + time.Minute).Seconds())),
			TerminationGracePeriodSeconds: ptr.To[int64](2),
			AutomountServiceAccountToken:  ptr.To(false),
			EnableServiceLinks:            ptr.To(false),
			Affinity:                      affinity,
			Tolerations:                   tolerations,
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot:   ptr.To(true),
				RunAsUser:      ptr.To[int64](65532),
				RunAsGroup:     ptr.To[int64](65532),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: []corev1.Container{{
				Name:            ContainerName,
				Image:           image,
				ImagePullPolicy: corev1.PullIfNotPresent,
				Command:         command,
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{
						corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("32Mi"),
					},
					Limits: corev1.ResourceList{
						corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("128Mi"),
					},
				},
				TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
				SecurityContext: &corev1.SecurityContext{
					RunAsNonRoot:             ptr.To(true),
					AllowPrivilegeEscalation: ptr.To(false),
					ReadOnlyRootFilesystem:   ptr.To(true),
					Privileged:               ptr.To(false),
					Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
					SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
				},
				VolumeMounts: []corev1.VolumeMount{{Name: volumeName, MountPath: podcontract.OutputMountPath, ReadOnly: true}},
			}},
			Volumes: []corev1.Volume{outputVolume(job.Spec.Output)},
		},
	}
}

// outputVolume mounts the job's output read-only: the claim whole (the files are named inside
// it), or the host folder itself, which must exist (a reader never creates one).
func outputVolume(loc sdfleetv1alpha1.StorageLocation) corev1.Volume {
	v := corev1.Volume{Name: volumeName}
	switch {
	case loc.PersistentVolumeClaim != nil:
		v.PersistentVolumeClaim = &corev1.PersistentVolumeClaimVolumeSource{ClaimName: loc.PersistentVolumeClaim.ClaimName, ReadOnly: true}
	case loc.HostPath != nil:
		v.HostPath = &corev1.HostPathVolumeSource{Path: "/" + podcontract.CleanRelative(loc.HostPath.Path), Type: ptr.To(corev1.HostPathDirectory)}
	default:
		v.EmptyDir = &corev1.EmptyDirVolumeSource{}
	}
	return v
}

// FileOf is where image index of job lies relative to the output volume's root, as the image
// pod wrote it (podcontract.OutputRelativePath).
func FileOf(job *sdfleetv1alpha1.ImageGenerationJob, index int32) string {
	prefix := ""
	if pvc := job.Spec.Output.PersistentVolumeClaim; pvc != nil {
		prefix = pvc.Path
	}
	return podcontract.OutputRelativePath(prefix, job.Namespace, job.Name, index)
}

// exportCommand is the exec command that streams files out of the reader.
func exportCommand(files []string) []string {
	return append(append(append([]string(nil), imagestream.ExportCommand...), imagestream.FlagRoot, podcontract.OutputMountPath), files...)
}
