package v1alpha1_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/sdfleet/sdfleet/api/v1alpha1"
)

// etcdObjectLimit is the largest object etcd stores by default (--max-request-bytes).
const etcdObjectLimit = 1536 * 1024

// worstCaseStatus fills every bounded field of the status of a MaxImages-image job to its limit:
// alternating succeeded and failed indexes (the longest compressed ranges), MaxImageDetails
// entries with every field set at its longest, and every condition.
func worstCaseStatus(spec v1.ImageGenerationJobSpec) v1.ImageGenerationJobStatus {
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	var completed, failed []string
	for i := 0; i < v1.MaxImages; i++ {
		if i%2 == 0 {
			completed = append(completed, fmt.Sprint(i))
		} else {
			failed = append(failed, fmt.Sprint(i))
		}
	}
	st := v1.ImageGenerationJobStatus{
		ObservedGeneration: 1,
		Phase:              v1.JobPhaseRunning,
		Seed:               ptr.To[int64](1<<62 + 12345),
		Pending:            v1.MaxImages,
		CompletedIndexes:   strings.Join(completed, ","),
		FailedIndexes:      strings.Join(failed, ","),
		StartTime:          &now,
	}
	for _, t := range []string{v1.JobProgressing, v1.JobComplete, v1.JobFailed, v1.JobSuspended} {
		st.Conditions = append(st.Conditions, metav1.Condition{
			Type: t, Status: metav1.ConditionFalse, ObservedGeneration: 1, LastTransitionTime: now,
			Reason: "SomeReasonThatIsLong", Message: strings.Repeat("m", 256),
		})
	}
	node := strings.Repeat("n", 63)
	for i := 0; i < v1.MaxImageDetails; i++ {
		idx := int32(v1.MaxImages - 1 - i)
		img := v1.ImageStatus{
			Index: idx, Phase: v1.ImageRunning, Seed: 1<<62 + int64(idx), Attempts: 11,
			PodName:  fmt.Sprintf("%s-%d-r10", strings.Repeat("j", 50), idx),
			Node:     node,
			Device:   "gpu",
			GPUUUID:  "GPU-8f3c1a2b-1234-5678-9abc-def012345678",
			GPUIndex: ptr.To[int32](7), GPUMemoryLoadPercent: ptr.To[int32](99),
			StartTime: &now, FinishTime: &now,
			OutputPath:           fmt.Sprintf("/%s/default/%s/%d.png", strings.Repeat("o", 60), strings.Repeat("j", 50), idx),
			SHA256:               strings.Repeat("f", 64),
			DurationMilliseconds: ptr.To[int64](123456789),
			Message:              strings.Repeat("x", 200),
		}
		for k := 0; k < 3; k++ {
			img.FailedGPUs = append(img.FailedGPUs, fmt.Sprintf("GPU-8f3c1a2b-1234-5678-9abc-def01234567%d", k))
		}
		st.Images = append(st.Images, img)
	}
	return st
}

var _ = Describe("ImageGenerationJob status size", func() {
	It("stays far below etcd's object limit for the largest allowed job", func() {
		ns := newNamespace()
		job := MakeJob("largest").Namespace(ns).Images(v1.MaxImages).Mutate(func(s *v1.ImageGenerationJobSpec) {
			s.Prompt = strings.Repeat("p", v1.MaxPromptLength)
			s.NegativePrompt = strings.Repeat("n", v1.MaxPromptLength)
		}).Obj()
		Expect(k8s.Create(ctx, job)).To(Succeed())
		job.Status = worstCaseStatus(job.Spec)
		// The API server must accept it: the status schema's own limits hold for it.
		Expect(k8s.Status().Update(ctx, job)).To(Succeed())

		stored := &v1.ImageGenerationJob{}
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(job), stored)).To(Succeed())
		Expect(stored.Status.Images).To(HaveLen(v1.MaxImageDetails))
		data, err := json.Marshal(stored)
		Expect(err).NotTo(HaveOccurred())
		GinkgoWriter.Printf("largest job serialized: %d bytes (%.1f%% of etcd's %d-byte limit)\n",
			len(data), 100*float64(len(data))/etcdObjectLimit, etcdObjectLimit)
		// "Far below": under a third of the limit, leaving room for managed fields and growth.
		Expect(len(data)).To(BeNumerically("<", etcdObjectLimit/3))
	})

	It("refuses more per-image detail than the bound", func() {
		ns := newNamespace()
		job := MakeJob("too-much-detail").Namespace(ns).Images(v1.MaxImages).Obj()
		Expect(k8s.Create(ctx, job)).To(Succeed())
		for i := 0; i <= v1.MaxImageDetails; i++ {
			job.Status.Images = append(job.Status.Images, v1.ImageStatus{Index: int32(i), Phase: v1.ImagePending})
		}
		err := k8s.Status().Update(ctx, job)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("status.images"))
	})
})
