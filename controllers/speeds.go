package controllers

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	"github.com/sdfleet/sdfleet/controllers/podcontract"
	"github.com/sdfleet/sdfleet/controllers/throughput"
)

// The operator writes the speeds it learned into the GPUNodes' status, under its own field
// manager; the node agent owns the rest of the status.
// +kubebuilder:rbac:groups=sdfleet.io,resources=gpunodes/status,verbs=patch

// SpeedFieldManager is the field manager of status.learnedSpeeds and status.speeds.
const SpeedFieldManager = "sdfleet-operator"

var gpuSpeedGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
	Name: "sdfleet_gpu_seconds_per_megapixel_step",
	Help: "Learned time of one sampler step of a one-megapixel image on the GPU when it has the GPU to itself, in seconds.",
}, []string{"node", "gpu", "UUID"})

func init() { metrics.Registry.MustRegister(gpuSpeedGauge) }

// imageWork is the megapixel-steps of one image of job, the defaults filled in.
func imageWork(job *sdfleetv1alpha1.ImageGenerationJob) float64 {
	w, h, steps := job.Spec.Width, job.Spec.Height, job.Spec.Steps
	if w <= 0 {
		w = 512
	}
	if h <= 0 {
		h = 512
	}
	if steps <= 0 {
		steps = 20
	}
	return throughput.MegapixelSteps(w, h, steps)
}

// podWork reads AnnotationWork; 0 when absent or not a positive number.
func podWork(pod *corev1.Pod) float64 {
	v, err := strconv.ParseFloat(pod.Annotations[AnnotationWork], 64)
	if err != nil || !(v > 0) || math.IsInf(v, 0) {
		return 0
	}
	return v
}

// learnFromFinish feeds an image pod that succeeded on a GPU to the speed learner: the duration
// its result reports, its work and how many images shared the GPU meanwhile.
func (r *ImageGenerationJobReconciler) learnFromFinish(pod *corev1.Pod, concurrency float64) {
	uuid, node := pod.Annotations[AnnotationGPUUUID], pod.Annotations[AnnotationNode]
	work := podWork(pod)
	term := containerTermination(pod)
	if uuid == "" || node == "" || work == 0 || term == nil || term.ExitCode != 0 {
		return
	}
	result, ok := podcontract.ParseResult(term.Message)
	if !ok || result.DurationMilliseconds <= 0 {
		return
	}
	at := term.FinishedAt.Time
	if at.IsZero() {
		at = r.now()
	}
	if r.speeds.Observe(throughput.Finish{UUID: uuid, Duration: time.Duration(result.DurationMilliseconds) * time.Millisecond,
		Work: work, Concurrency: concurrency, At: at}) > 0 {
		r.speedsToPublish.add(node)
	}
}

// restoreSpeeds starts the learner from the speeds an earlier run published, for the GPUs it
// has not measured itself; the node's metrics follow at the next publication.
func (r *ImageGenerationJobReconciler) restoreSpeeds(gn *sdfleetv1alpha1.GPUNode) {
	for _, s := range gn.Status.LearnedSpeeds {
		v, err := strconv.ParseFloat(s.SecondsPerMegapixelStep, 64)
		if err == nil && r.speeds.Restore(s.UUID, v, s.Images) {
			r.speedsToPublish.add(gn.Name)
		}
	}
}

// nodeSet is a set of node names, safe for concurrent use.
type nodeSet struct {
	mu    sync.Mutex
	nodes map[string]struct{}
}

func newNodeSet() *nodeSet { return &nodeSet{nodes: map[string]struct{}{}} }

func (s *nodeSet) add(n string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nodes[n] = struct{}{}
}

// take returns the nodes and empties the set.
func (s *nodeSet) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.nodes))
	for n := range s.nodes {
		out = append(out, n)
	}
	clear(s.nodes)
	sort.Strings(out)
	return out
}

// publishSpeeds writes the learned speeds of the nodes whose GPUs finished images since the
// last call into their GPUNodes' status. A node whose write failed is tried again next time.
func (r *ImageGenerationJobReconciler) publishSpeeds(ctx context.Context) {
	log := logf.FromContext(ctx)
	measured := r.speeds.Measured()
	for _, name := range r.speedsToPublish.take() {
		var gn sdfleetv1alpha1.GPUNode
		if err := r.client.Get(ctx, client.ObjectKey{Name: name}, &gn); err != nil {
			if !apierrors.IsNotFound(err) {
				log.Error(err, "read GPUNode to publish its learned speeds", "node", name)
				r.speedsToPublish.add(name)
			}
			continue
		}
		speeds, summary := nodeSpeeds(&gn, measured)
		for _, s := range speeds {
			v, _ := strconv.ParseFloat(s.SecondsPerMegapixelStep, 64)
			gpuSpeedGauge.WithLabelValues(name, strconv.Itoa(int(s.Index)), s.UUID).Set(v)
		}
		if len(speeds) == 0 || (summary == gn.Status.Speeds && equality.Semantic.DeepEqual(speeds, gn.Status.LearnedSpeeds)) {
			// Nothing new to say: the figures round to what the GPUNode already shows.
			continue
		}
		if err := r.applySpeeds(ctx, name, speeds, summary); err != nil {
			if !apierrors.IsNotFound(err) {
				log.Error(err, "publish learned GPU speeds", "node", name)
				r.speedsToPublish.add(name)
			}
			continue
		}
	}
}

// nodeSpeeds is the learnedSpeeds list of a node's GPUs, in index order, and its summary.
func nodeSpeeds(gn *sdfleetv1alpha1.GPUNode, measured map[string]throughput.Speed) ([]sdfleetv1alpha1.GPUSpeed, string) {
	var out []sdfleetv1alpha1.GPUSpeed
	for _, g := range gn.Status.GPUs {
		sp, ok := measured[g.UUID]
		if !ok {
			continue
		}
		out = append(out, sdfleetv1alpha1.GPUSpeed{UUID: g.UUID, Index: g.Index,
			SecondsPerMegapixelStep: formatSeconds(sp.SecondsPerMegapixelStep), Images: sp.Samples})
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Index < out[b].Index })
	parts := make([]string, len(out))
	for i, s := range out {
		parts[i] = fmt.Sprintf("%d=%s", s.Index, s.SecondsPerMegapixelStep)
	}
	return out, strings.Join(parts, " ")
}

// formatSeconds writes a positive figure with three significant digits, without an exponent.
func formatSeconds(v float64) string {
	if !(v > 0) || math.IsInf(v, 0) {
		return "0"
	}
	prec := min(max(2-int(math.Floor(math.Log10(v))), 0), 9)
	return strconv.FormatFloat(v, 'f', prec, 64)
}

// applySpeeds writes status.learnedSpeeds and status.speeds of GPUNode name by server-side
// apply, leaving the agent's fields alone.
func (r *ImageGenerationJobReconciler) applySpeeds(ctx context.Context, name string, speeds []sdfleetv1alpha1.GPUSpeed, summary string) error {
	list := make([]any, len(speeds))
	for i, s := range speeds {
		list[i] = map[string]any{"uuid": s.UUID, "index": int64(s.Index),
			"secondsPerMegapixelStep": s.SecondsPerMegapixelStep, "images": s.Images}
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": sdfleetv1alpha1.GroupVersion.String(),
		"kind":       "GPUNode",
		"metadata":   map[string]any{"name": name},
		"status":     map[string]any{"learnedSpeeds": list, "speeds": summary},
	}}
	return r.client.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(SpeedFieldManager), client.ForceOwnership)
}
