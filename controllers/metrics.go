package controllers

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
)

// The controller's metrics, served on the manager's metrics endpoint.
var (
	jobImagesGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sdfleet_job_images",
		Help: "Images of all ImageGenerationJobs by phase (Pending, Waiting, Running, Succeeded, Failed).",
	}, []string{"phase"})
	imageDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "sdfleet_image_duration_seconds",
		Help:    "Time the inference binary took per image, by GPU UUID (\"cpu\" for CPU images).",
		Buckets: []float64{0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300, 600, 1800},
	}, []string{"UUID"})
	placementDecisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sdfleet_placement_decisions_total",
		Help: "Image pods placed, by node, GPU UUID (\"cpu\" for CPU fallback) and policy.",
	}, []string{"node", "UUID", "policy"})
	imageRetries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sdfleet_image_retries_total",
		Help: "Image pods created again after a failed attempt (reason OutOfMemory, DeviceError, Error) or a lost pod (Lost).",
	}, []string{"reason"})
	imagesWaiting = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "sdfleet_images_waiting",
		Help: "Images waiting because no GPU has room for them.",
	})
)

func init() {
	metrics.Registry.MustRegister(jobImagesGauge, imageDuration, placementDecisions, imageRetries, imagesWaiting)
}

// imagePhases are the label values of sdfleet_job_images.
var imagePhases = []sdfleetv1alpha1.ImagePhase{
	sdfleetv1alpha1.ImagePending, sdfleetv1alpha1.ImageWaiting, sdfleetv1alpha1.ImageRunning,
	sdfleetv1alpha1.ImageSucceeded, sdfleetv1alpha1.ImageFailed,
}

// jobCounts is the number of images of one job in each phase.
type jobCounts map[sdfleetv1alpha1.ImagePhase]int32

// jobGauges keeps each job's counts and publishes their sums, so that a deleted job's images
// leave the gauges.
type jobGauges struct {
	mu   sync.Mutex
	jobs map[types.NamespacedName]jobCounts
}

func newJobGauges() *jobGauges { return &jobGauges{jobs: map[types.NamespacedName]jobCounts{}} }

// set records a job's counts (nil forgets the job) and republishes the totals.
func (g *jobGauges) set(job types.NamespacedName, counts jobCounts) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if counts == nil {
		delete(g.jobs, job)
	} else {
		g.jobs[job] = counts
	}
	totals := jobCounts{}
	for _, c := range g.jobs {
		for phase, n := range c {
			totals[phase] += n
		}
	}
	for _, phase := range imagePhases {
		jobImagesGauge.WithLabelValues(string(phase)).Set(float64(totals[phase]))
	}
	imagesWaiting.Set(float64(totals[sdfleetv1alpha1.ImageWaiting]))
}
