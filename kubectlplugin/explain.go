package kubectlplugin

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	"github.com/sdfleet/sdfleet/controllers/placementrecord"
)

type explainOptions struct{ *Options }

func newExplainCommand(o *Options) *cobra.Command {
	e := &explainOptions{Options: o}
	return &cobra.Command{
		Use:   "explain-placement JOB",
		Short: "For each image of a job: where it was placed, why, and the GPUs it was compared with",
		Long: "Reads the job's status, its image pods and its events. For each image it prints the GPU chosen and why,\n" +
			"the other GPUs the controller compared at that moment (their memory load, their expected finish when\n" +
			"speeds were known, and why each lost), as recorded on the image pod; the GPUs it failed on (retries\n" +
			"avoid them) and the controller's events about it. When the pod is gone or cannot be read, it lists\n" +
			"every GPU of the cluster as it is now instead, with the reason it is or is not usable.",
		Example: "  kubectl sdfleet explain-placement fox-x7k2p -n studio",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.run(cmd.Context(), args[0])
		},
	}
}

func (e *explainOptions) run(ctx context.Context, name string) error {
	c, err := e.client()
	if err != nil {
		return err
	}
	ns, err := e.namespace()
	if err != nil {
		return err
	}
	job := &sdfleetv1alpha1.ImageGenerationJob{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, job); err != nil {
		return err
	}
	var events corev1.EventList
	if err := c.List(ctx, &events, client.InNamespace(ns), client.MatchingFieldsSelector{Selector: fields.SelectorFromSet(fields.Set{
		"involvedObject.kind": "ImageGenerationJob", "involvedObject.name": name,
	})}); err != nil {
		return fmt.Errorf("list the job's events: %w", err)
	}
	var nodes sdfleetv1alpha1.GPUNodeList
	if err := c.List(ctx, &nodes); err != nil {
		return fmt.Errorf("list gpunodes: %w", err)
	}
	records, note := placementRecords(ctx, c, job)
	return Explain(e.Out, job, events.Items, nodes.Items, records, note)
}

// placementRecords reads the decision the controller recorded on each image's pod. A pod that
// is gone, or predates the record, has none; when pods cannot be read at all, note says why.
func placementRecords(ctx context.Context, c client.Client, job *sdfleetv1alpha1.ImageGenerationJob) (map[int32]placementrecord.Record, string) {
	records := map[int32]placementrecord.Record{}
	for _, img := range job.Status.Images {
		if img.PodName == "" {
			continue
		}
		var pod corev1.Pod
		if err := c.Get(ctx, types.NamespacedName{Namespace: job.Namespace, Name: img.PodName}, &pod); err != nil {
			if apierrors.IsForbidden(err) {
				return records, "you may not read the job's pods, where the controller records its decisions: showing the GPUs as they are now"
			}
			continue
		}
		if value, ok := pod.Annotations[placementrecord.Annotation]; ok {
			if r, err := placementrecord.Decode(value); err == nil {
				records[img.Index] = r
			}
		}
	}
	return records, ""
}

// policyRule says how each policy picks the winner among the usable GPUs.
var policyRule = map[sdfleetv1alpha1.PlacementPolicy]string{
	sdfleetv1alpha1.PlacementLeastLoaded: "each image goes to the healthy GPU with room and the lowest effective memory load at that moment (the earliest expected finish once speeds are learned)",
	sdfleetv1alpha1.PlacementRoundRobin:  "the GPUs are sorted by load once and image i goes to GPU i mod n",
	sdfleetv1alpha1.PlacementPack:        "each image goes to the most loaded GPU it still fits on, keeping whole GPUs free",
	sdfleetv1alpha1.PlacementPinned:      "only the GPUs listed in spec.placement.gpus are used",
}

var imageInNote = regexp.MustCompile(`\bimage (\d+)\b`)

// Explain writes the placement of every image of job, from its status, the decisions recorded
// on its pods, its events and the GPUs of the cluster.
func Explain(out io.Writer, job *sdfleetv1alpha1.ImageGenerationJob, events []corev1.Event, nodes []sdfleetv1alpha1.GPUNode,
	records map[int32]placementrecord.Record, note string) error {
	sort.SliceStable(events, func(i, j int) bool { return eventTime(events[i]).Before(eventTime(events[j])) })
	perImage := map[int32][]corev1.Event{}
	var jobEvents []corev1.Event
	for _, ev := range events {
		if m := imageInNote.FindStringSubmatch(ev.Message); m != nil {
			i, _ := strconv.ParseInt(m[1], 10, 32)
			perImage[int32(i)] = append(perImage[int32(i)], ev)
		} else {
			jobEvents = append(jobEvents, ev)
		}
	}
	policy := job.Spec.Placement.Policy
	if policy == "" {
		policy = sdfleetv1alpha1.PlacementLeastLoaded
	}
	fmt.Fprintf(out, "Job %s/%s: %d images, policy %s, %s\n", job.Namespace, job.Name, job.Spec.Images, policy, phaseOf(job))
	fmt.Fprintf(out, "  Policy: %s\n", policyRule[policy])
	for _, ev := range jobEvents {
		fmt.Fprintf(out, "  %s: %s\n", ev.Reason, ev.Message)
	}
	if note != "" {
		fmt.Fprintf(out, "  Note: %s\n", note)
	}
	rows := GPURows(nodes, nil)
	names := map[string]string{}
	for _, r := range rows {
		names[r.UUID] = fmt.Sprintf("%s GPU %d (%s)", r.Node, r.Index, r.UUID)
	}
	for _, img := range job.Status.Images {
		fmt.Fprintf(out, "\nImage %d: %s on %s", img.Index, img.Phase, where(img))
		if img.GPUMemoryLoadPercent != nil {
			fmt.Fprintf(out, ", chosen at %d%% memory load", *img.GPUMemoryLoadPercent)
		}
		fmt.Fprintf(out, ", attempt %d\n", max(img.Attempts, 1))
		if len(img.FailedGPUs) > 0 {
			fmt.Fprintf(out, "  Failed before on: %s (not chosen again while another GPU has room)\n", strings.Join(img.FailedGPUs, ", "))
		}
		if img.Message != "" {
			fmt.Fprintf(out, "  Message: %s\n", img.Message)
		}
		for _, ev := range perImage[img.Index] {
			fmt.Fprintf(out, "  %s: %s\n", ev.Reason, ev.Message)
		}
		if r, ok := records[img.Index]; ok {
			printRecord(out, r, names)
			continue
		}
		if len(rows) == 0 {
			continue
		}
		fmt.Fprintln(out, "  Candidates now:")
		for _, r := range rows {
			fmt.Fprintf(out, "    %s GPU %d (%s)\t%s\n", r.Node, r.Index, r.UUID, candidateNote(img, r, job))
		}
	}
	return nil
}

// printRecord writes the decision recorded when the image was placed.
func printRecord(out io.Writer, r placementrecord.Record, names map[string]string) {
	ranked := "memory load"
	if r.RankedBy == placementrecord.RankedByFinish {
		ranked = "expected finish"
	}
	fmt.Fprintf(out, "  Chosen (%s, by %s): %s\n", r.Policy, ranked, r.Chosen.Why)
	if len(r.Others) == 0 {
		fmt.Fprintln(out, "  Compared at placement: no other GPU")
		return
	}
	fmt.Fprintln(out, "  Compared at placement:")
	for _, o := range r.Others {
		name := names[o.UUID]
		if name == "" {
			name = o.UUID + " (no longer published)"
		}
		fmt.Fprintf(out, "    %s\t%s; load %d%%", name, o.Why, o.LoadPercent)
		if o.ExpectedFinishSeconds > 0 {
			fmt.Fprintf(out, ", expected finish %.1fs", o.ExpectedFinishSeconds)
		}
		fmt.Fprintln(out)
	}
}

// candidateNote says whether a GPU is usable for img now, and why not.
func candidateNote(img sdfleetv1alpha1.ImageStatus, r GPURow, job *sdfleetv1alpha1.ImageGenerationJob) string {
	speed := "speed not learned yet"
	if r.Speed != "-" {
		speed = r.Speed + " s per megapixel-step"
	}
	load := fmt.Sprintf("memory %d%%, utilisation %d%%, %s", r.MemoryPct, r.UtilPct, speed)
	var notes []string
	if img.GPUUUID == r.UUID {
		notes = append(notes, "chosen")
	}
	if r.Health != sdfleetv1alpha1.GPUHealthy {
		reason := r.Reason
		if reason == "" {
			reason = "no reason given"
		}
		notes = append(notes, "unhealthy ("+reason+"): never chosen")
	}
	for _, failed := range img.FailedGPUs {
		if failed == r.UUID {
			notes = append(notes, "the image failed here before")
		}
	}
	if job.Spec.Placement.Policy == sdfleetv1alpha1.PlacementPinned && !pinned(job, r) {
		notes = append(notes, "not among the pinned GPUs")
	}
	if len(notes) == 0 {
		notes = append(notes, "usable")
	}
	return strings.Join(notes, "; ") + "; " + load
}

func pinned(job *sdfleetv1alpha1.ImageGenerationJob, r GPURow) bool {
	for _, sel := range job.Spec.Placement.GPUs {
		if (sel.UUID != "" && sel.UUID == r.UUID) || (sel.Node == r.Node && sel.Index != nil && *sel.Index == r.Index) {
			return true
		}
	}
	return false
}

func eventTime(ev corev1.Event) time.Time {
	switch {
	case !ev.EventTime.IsZero():
		return ev.EventTime.Time
	case !ev.LastTimestamp.IsZero():
		return ev.LastTimestamp.Time
	}
	return ev.CreationTimestamp.Time
}
