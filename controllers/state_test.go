package controllers

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	"github.com/sdfleet/sdfleet/controllers/podcontract"
	sdtesting "github.com/sdfleet/sdfleet/controllers/testing"
)

func TestPodName(t *testing.T) {
	tests := []struct {
		index, seq int32
		want       string
	}{{0, 0, "j-0"}, {12, 0, "j-12"}, {3, 1, "j-3-r1"}, {3, 10, "j-3-r10"}}
	for _, tt := range tests {
		if got := PodName("j", tt.index, tt.seq); got != tt.want {
			t.Errorf("PodName(j, %d, %d) = %q, want %q", tt.index, tt.seq, got, tt.want)
		}
	}
	long := ""
	for len(long) < 100 {
		long += "ab-"
	}
	if v := jobLabelValue(long); len(v) > 63 || v[len(v)-1] == '-' {
		t.Errorf("jobLabelValue(%d chars) = %q: not a valid label value", len(long), v)
	}
}

func TestImageSeed(t *testing.T) {
	if got := imageSeed(42, 3); got != 45 {
		t.Errorf("imageSeed(42, 3) = %d, want 45", got)
	}
	if got := imageSeed(math.MaxInt64, 1); got != 0 {
		t.Errorf("imageSeed(MaxInt64, 1) = %d, want 0 (wraps within the non-negative range)", got)
	}
}

func TestMemoryPerImage(t *testing.T) {
	job := sdtesting.MakeJob("m", "ns").Obj()
	if got := memoryPerImage(job); got != 3*GiB {
		t.Errorf("512x512 estimate = %d, want 3 GiB", got)
	}
	job.Spec.Width, job.Spec.Height = 1024, 1024
	if got := memoryPerImage(job); got != 6*GiB {
		t.Errorf("1024x1024 estimate = %d, want 6 GiB", got)
	}
	// An SDXL model, by its name, before any image of it finished.
	job = sdtesting.MakeJob("m", "ns").ModelHostPath("/models/stable-diffusion-xl-base-1.0").Obj()
	job.Spec.Width, job.Spec.Height = 1024, 1024
	if got := memoryPerImage(job); got != 8*GiB {
		t.Errorf("SDXL 1024x1024 estimate = %d, want 8 GiB", got)
	}
	job = sdtesting.MakeJob("m", "ns").GPUMemoryPerImage(9).Obj()
	if got := memoryPerImage(job); got != 9*GiB {
		t.Errorf("spec.gpuMemoryPerImage 9Gi gave %d", got)
	}
}

func terminatedPod(exitCode int32, message string) *corev1.Pod {
	pod := buildPod(sdtesting.MakeJob("j", "ns").Obj(), 1, 0, 42,
		podPlacement{Node: "n", GPUIndex: 2, GPUUUID: "GPU-x", LoadPercent: 15, Policy: "LeastLoaded", Bytes: 3 * GiB}, "img")
	sdtesting.SetTerminated(pod, exitCode, message, time.Unix(2000, 0))
	return pod
}

func TestReadPod(t *testing.T) {
	evicted := terminatedPod(137, "")
	sdtesting.SetEvicted(evicted)
	deleting := terminatedPod(0, "")
	deleting.Status = corev1.PodStatus{Phase: corev1.PodRunning}
	deleting.DeletionTimestamp = &metav1.Time{Time: time.Unix(1, 0)}
	noContainer := terminatedPod(1, "")
	noContainer.Status.ContainerStatuses = nil
	running := terminatedPod(0, "")
	sdtesting.SetRunning(running, time.Unix(1000, 0))
	// Deleted (on suspend, by a user, by a drain) while running: the container's exit on
	// SIGTERM or SIGKILL says nothing about the image or the GPU.
	killedByDeletion := terminatedPod(137, "")
	killedByDeletion.DeletionTimestamp = &metav1.Time{Time: time.Unix(2030, 0)}
	killedByDeletion.DeletionGracePeriodSeconds = ptr.To[int64](30)
	// Failed on its own, and deleted afterwards: still a failed attempt.
	failedThenDeleted := terminatedPod(podcontract.ExitOutOfMemory, "")
	failedThenDeleted.DeletionTimestamp = &metav1.Time{Time: time.Unix(2100, 0)}
	failedThenDeleted.DeletionGracePeriodSeconds = ptr.To[int64](30)
	// Preempted or evicted by a taint: the kubelet or the scheduler says so with a condition.
	disruptedPod := terminatedPod(podcontract.ExitDeviceError, "")
	disruptedPod.Status.Conditions = append(disruptedPod.Status.Conditions, corev1.PodCondition{
		Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue, Reason: "PreemptionByScheduler"})
	// A succeeded pod being deleted is still a success.
	succeededThenDeleted := terminatedPod(0, sdtesting.SuccessMessage(terminatedPod(0, ""), 10, "cpu"))
	succeededThenDeleted.DeletionTimestamp = &metav1.Time{Time: time.Unix(1990, 0)}
	validResult := sdtesting.SuccessMessage(terminatedPod(0, ""), 10, "cpu")

	tests := []struct {
		name    string
		pod     *corev1.Pod
		kind    podKind
		failure podcontract.Failure
	}{
		{"success", terminatedPod(0, validResult), podSucceeded, ""},
		{"exit 0 without a result", terminatedPod(0, ""), podFailed, podcontract.FailureNoResult},
		{"exit 0 with log text", terminatedPod(0, "done"), podFailed, podcontract.FailureNoResult},
		{"exit 0 with an incomplete result", terminatedPod(0, `{"outputPath":"/sdfleet/output/0.png"}`), podFailed,
			podcontract.FailureNoResult},
		{"usage", terminatedPod(podcontract.ExitUsage, "bad"), podFailed, podcontract.FailureInvalidInput},
		{"invalid input", terminatedPod(podcontract.ExitInvalidInput, "bad"), podFailed, podcontract.FailureInvalidInput},
		{"model", terminatedPod(podcontract.ExitModelError, "bad"), podFailed, podcontract.FailureModel},
		{"oom", terminatedPod(podcontract.ExitOutOfMemory, ""), podFailed, podcontract.FailureOutOfMemory},
		{"device", terminatedPod(podcontract.ExitDeviceError, ""), podFailed, podcontract.FailureDevice},
		{"go runtime crash", terminatedPod(2, "fatal error: runtime: out of memory"), podFailed, podcontract.FailureOther},
		{"other", terminatedPod(139, ""), podFailed, podcontract.FailureOther},
		{"killed by its deletion", killedByDeletion, podLost, ""},
		{"failed, then deleted", failedThenDeleted, podFailed, podcontract.FailureOutOfMemory},
		{"disruption target", disruptedPod, podLost, ""},
		{"succeeded, then deleted", succeededThenDeleted, podSucceeded, ""},
		{"evicted", evicted, podLost, ""},
		{"deleted while running", deleting, podLost, ""},
		{"failed before running", noContainer, podLost, ""},
		{"running", running, podRunning, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, ok := readPod(tt.pod)
			if !ok {
				t.Fatal("readPod rejected an image pod")
			}
			if info.kind != tt.kind || info.failure != tt.failure {
				t.Errorf("kind %v failure %q, want %v %q", info.kind, info.failure, tt.kind, tt.failure)
			}
			if info.index != 1 || info.gpuUUID != "GPU-x" || info.node != "n" || *info.gpuIndex != 2 || *info.loadPercent != 15 {
				t.Errorf("placement not read back from annotations: %+v", info)
			}
		})
	}
	if _, ok := readPod(&corev1.Pod{}); ok {
		t.Error("readPod accepted a pod without an image index")
	}
}

func TestEvaluateRetries(t *testing.T) {
	failed := func(seq int32, gpu string, f podcontract.Failure) podInfo {
		return podInfo{seq: seq, kind: podFailed, gpuUUID: gpu, failure: f, message: string(f)}
	}
	tests := []struct {
		name         string
		pods         []podInfo
		wantDone     bool
		wantFailed   bool
		wantNextSeq  int32
		wantAvoid    []string
		wantFailures int32
	}{
		{"no pods", nil, false, false, 0, nil, 0},
		{"retriable under the limit", []podInfo{failed(0, "A", podcontract.FailureOutOfMemory)}, false, false, 1, []string{"A"}, 1},
		{"limit reached", []podInfo{failed(0, "A", podcontract.FailureOther), failed(1, "B", podcontract.FailureDevice),
			failed(2, "A", podcontract.FailureOther)}, true, true, 3, []string{"A", "B"}, 3},
		{"invalid input is final", []podInfo{failed(0, "A", podcontract.FailureInvalidInput)}, true, true, 1, []string{"A"}, 1},
		{"lost pods do not count", []podInfo{{seq: 0, kind: podLost}, {seq: 1, kind: podLost}}, false, false, 2, nil, 0},
		{"success wins", []podInfo{failed(0, "A", podcontract.FailureOther), {seq: 1, kind: podSucceeded}}, true, false, 2, []string{"A"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img := &imageState{pods: tt.pods}
			img.evaluate(2)
			if img.done != tt.wantDone || img.doneFailed != tt.wantFailed || img.nextSeq != tt.wantNextSeq ||
				img.failures != tt.wantFailures || fmt.Sprint(img.failedGPUs) != fmt.Sprint(tt.wantAvoid) {
				t.Errorf("done %v failed %v nextSeq %d failures %d avoid %v; want %v %v %d %d %v", img.done, img.doneFailed,
					img.nextSeq, img.failures, img.failedGPUs, tt.wantDone, tt.wantFailed, tt.wantNextSeq, tt.wantFailures, tt.wantAvoid)
			}
		})
	}
}

// A job larger than MaxImageDetails keeps the detail of its active images first, then its
// failed ones, then the most recently finished ones.
func TestImageDetailsPriority(t *testing.T) {
	job := sdtesting.MakeJob("big", "ns").Images(1000).Obj()
	var pods []podInfo
	finish := func(i int) *metav1.Time { return &metav1.Time{Time: time.Unix(int64(10000+i), 0)} }
	for i := 0; i < 900; i++ {
		p := podInfo{name: PodName("big", int32(i), 0), index: int32(i)}
		switch {
		case i < 100:
			p.kind = podRunning
		case i < 150:
			p.kind, p.failure, p.message, p.finishTime = podFailed, podcontract.FailureInvalidInput, "bad", finish(i)
		default:
			p.kind, p.finishTime = podSucceeded, finish(i)
		}
		pods = append(pods, p)
	}
	st, err := computeJobState(job, pods)
	if err != nil {
		t.Fatal(err)
	}
	details := imageDetails(job, st, 42)
	if len(details) != sdfleetv1alpha1.MaxImageDetails {
		t.Fatalf("%d details, want %d", len(details), sdfleetv1alpha1.MaxImageDetails)
	}
	counts := map[sdfleetv1alpha1.ImagePhase]int{}
	oldestSucceeded := int32(math.MaxInt32)
	for i, d := range details {
		counts[d.Phase]++
		if i > 0 && details[i-1].Index >= d.Index {
			t.Fatalf("details not sorted by index at %d", i)
		}
		if d.Phase == sdfleetv1alpha1.ImageSucceeded && d.Index < oldestSucceeded {
			oldestSucceeded = d.Index
		}
	}
	if counts[sdfleetv1alpha1.ImageRunning] != 100 || counts[sdfleetv1alpha1.ImageFailed] != 50 ||
		counts[sdfleetv1alpha1.ImageSucceeded] != 106 {
		t.Errorf("phases kept = %v, want 100 running, 50 failed, 106 succeeded", counts)
	}
	if oldestSucceeded != 900-106 {
		t.Errorf("oldest succeeded image kept = %d, want %d (the most recent ones)", oldestSucceeded, 900-106)
	}
	if st.completed.Len() != 750 || st.failed.Len() != 50 || st.running != 100 {
		t.Errorf("counts: completed %d failed %d running %d", st.completed.Len(), st.failed.Len(), st.running)
	}
	if got := st.toPlace(1000); len(got) != 100 || got[0] != 900 {
		t.Errorf("toPlace = %d images from %v, want the 100 without pods from 900", len(got), got[:1])
	}
}

// A finished image whose pod is gone keeps its status entry and stays finished.
func TestFinishedImagesSurviveTheirPods(t *testing.T) {
	job := sdtesting.MakeJob("j", "ns").Images(3).Obj()
	job.Status.CompletedIndexes = "0-1"
	job.Status.Images = []sdfleetv1alpha1.ImageStatus{{Index: 1, Phase: sdfleetv1alpha1.ImageSucceeded, SHA256: "x"}}
	st, err := computeJobState(job, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.toPlace(10); fmt.Sprint(got) != "[2]" {
		t.Errorf("toPlace = %v, want [2]: finished images must not run again", got)
	}
	details := imageDetails(job, st, 1)
	if len(details) != 1 || details[0].Index != 1 || details[0].SHA256 != "x" {
		t.Errorf("details = %+v, want the previous entry of image 1", details)
	}
}

func TestBuildPodHostPathsStayClean(t *testing.T) {
	job := sdtesting.MakeJob("j", "ns").Obj()
	job.Spec.Model.HostPath.Path = "/models//sd15/./"
	pod := buildPod(job, 0, 0, 1, podPlacement{CPU: true}, "img")
	// The model's folder is mounted and the model named inside it, so that sdgen can report a
	// model missing on the node.
	if got := pod.Spec.Volumes[0].HostPath.Path; got != "/models" {
		t.Errorf("model host path = %q, want /models", got)
	}
	if args := strings.Join(pod.Spec.Containers[0].Args, " "); !strings.Contains(args, "--model "+podcontract.ModelMountPath+"/sd15 ") {
		t.Errorf("args %q do not name the model inside its folder", args)
	}
	job.Spec.Model.HostPath.Path = "/sd15"
	pod = buildPod(job, 0, 0, 1, podPlacement{CPU: true}, "img")
	if got := pod.Spec.Volumes[0].HostPath.Path; got != "/sd15" {
		t.Errorf("a model under / mounts %q, want /sd15 itself (never the host's root)", got)
	}
	if got := outputPathForStatus(job, 7); got != "/srv/images/ns/j/7.png" {
		t.Errorf("output path = %q", got)
	}
	if pod.Spec.Affinity != nil || pod.Annotations[AnnotationDevice] != DeviceCPU {
		t.Errorf("CPU pod pinned to a node or mislabelled: %+v %v", pod.Spec.Affinity, pod.Annotations)
	}
}

// An index range of the status that does not parse is an error naming the field: read as
// empty, it would run finished images again.
func TestComputeJobStateRefusesUnparsableIndexes(t *testing.T) {
	tests := []struct {
		name, completed, failed, want string
	}{
		{"beyond spec.images", "0-5", "", "status.completedIndexes \"0-5\""},
		{"reversed range", "3-1", "", "status.completedIndexes \"3-1\""},
		{"not a number", "0,x", "", "status.completedIndexes \"0,x\""},
		{"failed indexes", "0", "-2", "status.failedIndexes \"-2\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			job := sdtesting.MakeJob("j", "ns").Images(4).Obj()
			job.Status.CompletedIndexes, job.Status.FailedIndexes = tt.completed, tt.failed
			st, err := computeJobState(job, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("computeJobState = %v, %v; want an error naming %s", st, err, tt.want)
			}
		})
	}
}

// The API server refuses a job name longer than MaxJobNameLength so that every pod name fits.
func TestLongestJobNameNamesItsPods(t *testing.T) {
	name := strings.Repeat("a", sdfleetv1alpha1.MaxJobNameLength)
	pod := PodName(name, sdfleetv1alpha1.MaxImages-1, 99)
	if errs := validation.IsDNS1123Subdomain(pod); len(errs) > 0 {
		t.Errorf("pod name of the longest job (%d characters): %v", len(pod), errs)
	}
}
