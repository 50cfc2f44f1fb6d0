package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sort"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	"github.com/sdfleet/sdfleet/controllers/reservations"
)

// Labels and annotations of the jobs the gateway creates.
const (
	// LabelCaller holds Caller.Key of the job's requester, so that "the caller's latest job"
	// (AUTOMATIC1111's progress) is a label query.
	LabelCaller = "sdfleet.io/gateway-caller"
	// AnnotationRequestedBy is the requester's Kubernetes user name.
	AnnotationRequestedBy = "sdfleet.io/requested-by"
	// AnnotationModel is the name of the administrator's model the job uses.
	AnnotationModel = "sdfleet.io/model"
	// AnnotationAPI is the API the request came through: openai, a1111 or native.
	AnnotationAPI = "sdfleet.io/gateway-api"
	// AnnotationEndUser is OpenAI's user parameter: the application's own end user.
	AnnotationEndUser = "sdfleet.io/end-user"
)

const jobResource = "imagegenerationjobs"

// jobRequest is what every API's request comes down to.
type jobRequest struct {
	API            string
	Model          string
	Prompt         string
	NegativePrompt string
	Images         int32
	Width, Height  int32
	Steps          int32
	GuidanceScale  string
	Sampler        sdfleetv1alpha1.Sampler
	Seed           *int64
	// Spec, when set (the native API), is the caller's spec; the gateway still sets model and
	// output itself.
	Spec *sdfleetv1alpha1.ImageGenerationJobSpec
}

// buildJob makes the ImageGenerationJob of a request. The model comes from the
// administrator's map and the output location from the configuration: nothing the caller
// sent becomes a path or an image. modelField names the request field of the model.
func (s *Server) buildJob(c Caller, req jobRequest, modelField string) (*sdfleetv1alpha1.ImageGenerationJob, *Error) {
	name := req.Model
	if name == "" {
		name = s.cfg.DefaultModel
	}
	model, ok := s.cfg.Models.Models[name]
	if !ok {
		return nil, &Error{Status: http.StatusBadRequest, Field: modelField, Code: "model_not_found",
			Message: fmt.Sprintf("%s: model %q is not one of this gateway's models (%v)", modelField, name, s.cfg.Names())}
	}
	var spec sdfleetv1alpha1.ImageGenerationJobSpec
	if req.Spec != nil {
		spec = *req.Spec.DeepCopy()
	} else {
		spec = sdfleetv1alpha1.ImageGenerationJobSpec{
			Prompt: req.Prompt, NegativePrompt: req.NegativePrompt, Images: req.Images,
			Width: req.Width, Height: req.Height, Steps: req.Steps, GuidanceScale: req.GuidanceScale,
			Sampler: req.Sampler, Seed: req.Seed,
		}
	}
	spec.Model = *model.DeepCopy()
	spec.Output = *s.cfg.Output.DeepCopy()
	spec.Image = ""
	return &sdfleetv1alpha1.ImageGenerationJob{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: "gw-",
			Namespace:    c.Namespace,
			Labels:       map[string]string{LabelCaller: c.Key()},
			Annotations: map[string]string{
				AnnotationRequestedBy: c.User.Username, AnnotationModel: name, AnnotationAPI: req.API,
			},
		},
		Spec: spec,
	}, nil
}

// createJob authorises and creates the job.
func (s *Server) createJob(ctx context.Context, c Caller, job *sdfleetv1alpha1.ImageGenerationJob) *Error {
	if err := s.auth.authorize(ctx, c, access{Verb: "create", Resource: jobResource, Namespace: c.Namespace}); err != nil {
		return err
	}
	if err := s.client.Create(ctx, job); err != nil {
		return asError(err)
	}
	s.mu.Lock()
	s.lastJob[c.Key()] = types.NamespacedName{Namespace: job.Namespace, Name: job.Name}
	s.mu.Unlock()
	s.log.V(1).Info("created job", "namespace", job.Namespace, "job", job.Name, "user", c.User.Username,
		"images", job.Spec.Images, "api", job.Annotations[AnnotationAPI])
	return nil
}

// finished reports whether a job is Complete or Failed.
func finished(job *sdfleetv1alpha1.ImageGenerationJob) bool {
	return meta.IsStatusConditionTrue(job.Status.Conditions, sdfleetv1alpha1.JobComplete) ||
		meta.IsStatusConditionTrue(job.Status.Conditions, sdfleetv1alpha1.JobFailed)
}

// awaitJob waits, on informer events, until the job finishes or the wait timeout passes. done
// is false on timeout; the job returned is the latest seen.
func (s *Server) awaitJob(ctx context.Context, key types.NamespacedName) (job *sdfleetv1alpha1.ImageGenerationJob, done bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.WaitTimeout)
	defer cancel()
	changed, stop := s.watch.wait(key)
	defer stop()
	job = &sdfleetv1alpha1.ImageGenerationJob{}
	for {
		err := s.cache.Get(ctx, key, job)
		switch {
		case err == nil && finished(job):
			return job, true, nil
		case err != nil && !apierrors.IsNotFound(err) && ctx.Err() == nil:
			return nil, false, err
		}
		select {
		case <-changed:
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				if err != nil { // not in the cache yet: read it from the API server
					err = s.apiReader.Get(context.WithoutCancel(ctx), key, job)
				}
				return job, false, err
			}
			return nil, false, ctx.Err()
		}
	}
}

// succeededImages are the job's written images in index order; a failed job or one without
// a written image is an error saying why.
func succeededImages(job *sdfleetv1alpha1.ImageGenerationJob) ([]sdfleetv1alpha1.ImageStatus, *Error) {
	var out []sdfleetv1alpha1.ImageStatus
	for _, img := range job.Status.Images {
		if img.Phase == sdfleetv1alpha1.ImageSucceeded {
			out = append(out, img)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Index < out[j].Index })
	if c := meta.FindStatusCondition(job.Status.Conditions, sdfleetv1alpha1.JobFailed); c != nil && c.Status == metav1.ConditionTrue {
		return nil, &Error{Status: http.StatusInternalServerError, Code: "job_failed",
			Message: fmt.Sprintf("job %s/%s failed (%s): %s", job.Namespace, job.Name, c.Reason, c.Message)}
	}
	if len(out) == 0 {
		return nil, &Error{Status: http.StatusInternalServerError, Code: "job_failed",
			Message: fmt.Sprintf("job %s/%s finished without a written image", job.Namespace, job.Name)}
	}
	return out, nil
}

// openImage opens the PNG of one image, inside the output volume only: the path comes from
// the job's status, and os.Root refuses anything (a symbolic link included) that would leave
// the volume.
func (s *Server) openImage(job *sdfleetv1alpha1.ImageGenerationJob, img sdfleetv1alpha1.ImageStatus) (*os.File, *Error) {
	rel, ok := s.cfg.localImagePath(job, img.OutputPath)
	if !ok {
		return nil, notFound("image %d of job %s/%s is not on this gateway's output volume", img.Index, job.Namespace, job.Name)
	}
	root, err := os.OpenRoot(s.cfg.OutputDir)
	if err != nil {
		return nil, &Error{Status: http.StatusInternalServerError, Code: "output_unavailable",
			Message: fmt.Sprintf("the gateway's output volume %s: %v", s.cfg.OutputDir, err)}
	}
	defer func() { _ = root.Close() }()
	f, err := root.Open(rel)
	if err != nil {
		return nil, notFound("image %d of job %s/%s: %s is not readable on the output volume: %v",
			img.Index, job.Namespace, job.Name, img.OutputPath, err)
	}
	return f, nil
}

// openImages opens every written image of a finished job, closing them all on failure.
func (s *Server) openImages(job *sdfleetv1alpha1.ImageGenerationJob) ([]*os.File, []sdfleetv1alpha1.ImageStatus, *Error) {
	imgs, e := succeededImages(job)
	if e != nil {
		return nil, nil, e
	}
	files := make([]*os.File, 0, len(imgs))
	for _, img := range imgs {
		f, e := s.openImage(job, img)
		if e != nil {
			closeAll(files)
			return nil, nil, e
		}
		files = append(files, f)
	}
	return files, imgs, nil
}

func closeAll(files []*os.File) {
	for _, f := range files {
		_ = f.Close()
	}
}

// JobEvent is a job's progress, as /v1/events sends it.
type JobEvent struct {
	Namespace string                   `json:"namespace"`
	Name      string                   `json:"name"`
	Phase     sdfleetv1alpha1.JobPhase `json:"phase,omitempty"`
	Images    int32                    `json:"images"`
	Pending   int32                    `json:"pending"`
	Running   int32                    `json:"running"`
	Succeeded int32                    `json:"succeeded"`
	Failed    int32                    `json:"failed"`
}

func jobEventOf(job *sdfleetv1alpha1.ImageGenerationJob) JobEvent {
	return JobEvent{Namespace: job.Namespace, Name: job.Name, Phase: job.Status.Phase, Images: job.Spec.Images,
		Pending: job.Status.Pending, Running: job.Status.Running, Succeeded: job.Status.Succeeded, Failed: job.Status.Failed}
}

// GPU is one GPU of the cluster, as /v1/gpus and the "gpu" events show it.
type GPU struct {
	Node               string                    `json:"node"`
	Index              int32                     `json:"index"`
	UUID               string                    `json:"uuid"`
	Product            string                    `json:"product,omitempty"`
	MemoryTotalBytes   int64                     `json:"memoryTotalBytes"`
	MemoryUsedBytes    int64                     `json:"memoryUsedBytes"`
	MemoryUsedPercent  int32                     `json:"memoryUsedPercent"`
	UtilizationPercent int32                     `json:"utilizationPercent"`
	TemperatureCelsius int32                     `json:"temperatureCelsius"`
	PowerWatts         int32                     `json:"powerWatts"`
	Health             sdfleetv1alpha1.GPUHealth `json:"health"`
	HealthReason       string                    `json:"healthReason,omitempty"`
	Simulated          bool                      `json:"simulated,omitempty"`
	LastHeartbeatTime  *metav1.Time              `json:"lastHeartbeatTime,omitempty"`
	// SecondsPerMegapixelStep is the operator's learned speed of the GPU (status.learnedSpeeds),
	// empty before it has learned one; SpeedImages is how many images the figure rests on.
	SecondsPerMegapixelStep string `json:"secondsPerMegapixelStep,omitempty"`
	SpeedImages             int64  `json:"speedImages,omitempty"`
	// ReservedBytes is the memory sdfleet reserves on the GPU for the images placed there and
	// not finished (package reservations), ReservedImages how many they are, and
	// ReservedPercent the bytes as a share of the total.
	ReservedBytes   int64 `json:"reservedBytes"`
	ReservedImages  int   `json:"reservedImages"`
	ReservedPercent int32 `json:"reservedPercent"`
}

// withShare is g with sdfleet's reservations on it.
func (g GPU) withShare(s reservations.Share) GPU {
	g.ReservedBytes, g.ReservedImages = s.Bytes, s.Images
	g.ReservedPercent = reservations.Percent(s.Bytes, g.MemoryTotalBytes)
	return g
}

// sameState compares what a GPU event reports, leaving the heartbeat out.
func (g GPU) sameState(o GPU) bool {
	g.LastHeartbeatTime, o.LastHeartbeatTime = nil, nil
	return g == o
}

func gpusOf(n *sdfleetv1alpha1.GPUNode) []GPU {
	out := make([]GPU, 0, len(n.Status.GPUs))
	speeds := make(map[string]sdfleetv1alpha1.GPUSpeed, len(n.Status.LearnedSpeeds))
	for _, sp := range n.Status.LearnedSpeeds {
		speeds[sp.UUID] = sp
	}
	for _, g := range n.Status.GPUs {
		var pct int32
		if g.MemoryTotalBytes > 0 {
			pct = int32(g.MemoryUsedBytes * 100 / g.MemoryTotalBytes)
		}
		out = append(out, GPU{
			Node: n.Name, Index: g.Index, UUID: g.UUID, Product: g.ProductName,
			MemoryTotalBytes: g.MemoryTotalBytes, MemoryUsedBytes: g.MemoryUsedBytes, MemoryUsedPercent: pct,
			UtilizationPercent: g.UtilizationPercent, TemperatureCelsius: g.TemperatureCelsius, PowerWatts: g.PowerWatts,
			Health: g.Health, HealthReason: g.HealthReason, Simulated: n.Status.Simulated,
			LastHeartbeatTime:       n.Status.LastHeartbeatTime,
			SecondsPerMegapixelStep: speeds[g.UUID].SecondsPerMegapixelStep, SpeedImages: speeds[g.UUID].Images,
		})
	}
	return out
}

// latestCallerJob is the caller's most recent gateway job in its namespace, nil when none.
func (s *Server) latestCallerJob(ctx context.Context, c Caller) (*sdfleetv1alpha1.ImageGenerationJob, error) {
	s.mu.Lock()
	key, mine := s.lastJob[c.Key()]
	s.mu.Unlock()
	if mine && key.Namespace == c.Namespace {
		job := &sdfleetv1alpha1.ImageGenerationJob{}
		if err := s.cache.Get(ctx, key, job); err == nil {
			return job, nil
		}
	}
	// Created by another replica, or before a restart: the caller's label finds it.
	var list sdfleetv1alpha1.ImageGenerationJobList
	if err := s.cache.List(ctx, &list, client.InNamespace(c.Namespace), client.MatchingLabels{LabelCaller: c.Key()}); err != nil {
		return nil, err
	}
	var latest *sdfleetv1alpha1.ImageGenerationJob
	for i := range list.Items {
		j := &list.Items[i]
		if latest == nil || latest.CreationTimestamp.Before(&j.CreationTimestamp) ||
			(latest.CreationTimestamp.Equal(&j.CreationTimestamp) && latest.Name < j.Name) {
			latest = j
		}
	}
	return latest, nil
}

// sinceStart is how long ago t was, zero when unset.
func sinceStart(t *metav1.Time, now time.Time) time.Duration {
	if t == nil {
		return 0
	}
	return now.Sub(t.Time)
}
