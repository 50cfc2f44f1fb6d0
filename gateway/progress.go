package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"math"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	"github.com/sdfleet/sdfleet/controllers/podcontract"
)

// stepProgress is the last progress line an image pod printed: sdgen writes one JSON object
// per denoising step on stdout.
type stepProgress struct {
	Type                string `json:"type"`
	Step                int    `json:"step"`
	Steps               int    `json:"steps"`
	ElapsedMilliseconds int64  `json:"elapsedMilliseconds"`
	ETAMilliseconds     int64  `json:"etaMilliseconds"`
}

// lastProgressLine finds the last progress line in a log tail (stderr's log lines are
// interleaved with it).
func lastProgressLine(log []byte) (stepProgress, bool) {
	var last stepProgress
	found := false
	sc := bufio.NewScanner(bytes.NewReader(log))
	for sc.Scan() {
		var p stepProgress
		if json.Unmarshal(sc.Bytes(), &p) == nil && p.Type == "progress" && p.Steps > 0 {
			last, found = p, true
		}
	}
	return last, found
}

// jobProgress is a job's progress: the fraction of its work done and the time left, from
// the finished images and the running images' progress lines.
type jobProgress struct {
	Fraction float64
	ETA      time.Duration
	Done     int32
	// Current is the least advanced running image's step, the one the caller waits for.
	Current stepProgress
}

// progressOf computes a job's progress. running maps image index to its progress line;
// images running without one count as just started.
func progressOf(job *sdfleetv1alpha1.ImageGenerationJob, running map[int32]stepProgress, now time.Time) jobProgress {
	total := job.Spec.Images
	p := jobProgress{Done: job.Status.Succeeded + job.Status.Failed}
	if total <= 0 {
		return p
	}
	if finished(job) {
		p.Fraction, p.Done = 1, total
		return p
	}
	// The time one image takes: the mean of the finished ones, else the running ones' own
	// estimate.
	var sum time.Duration
	var n int
	for _, img := range job.Status.Images {
		if img.Phase == sdfleetv1alpha1.ImageSucceeded && img.DurationMilliseconds != nil {
			sum += time.Duration(*img.DurationMilliseconds) * time.Millisecond
			n++
		}
	}
	work := float64(p.Done)
	var longestLeft time.Duration
	first := true
	activeImages := int32(0)
	for _, img := range job.Status.Images {
		if img.Phase != sdfleetv1alpha1.ImageRunning {
			continue
		}
		activeImages++
		line, ok := running[img.Index]
		if !ok {
			if n > 0 {
				left := sum/time.Duration(n) - sinceStart(img.StartTime, now)
				longestLeft = max(longestLeft, left)
			}
			continue
		}
		work += float64(line.Step) / float64(line.Steps)
		left := time.Duration(line.ETAMilliseconds) * time.Millisecond
		longestLeft = max(longestLeft, left)
		if n == 0 {
			sum += time.Duration(line.ElapsedMilliseconds+line.ETAMilliseconds) * time.Millisecond
			n++
		}
		if first || line.Step < p.Current.Step {
			p.Current, first = line, false
		}
	}
	p.Fraction = math.Min(work/float64(total), 1)
	notStarted := total - p.Done - activeImages
	if notStarted > 0 && n > 0 {
		perImage := sum / time.Duration(n)
		waves := (notStarted + max(activeImages, 1) - 1) / max(activeImages, 1)
		longestLeft += time.Duration(waves) * perImage
	}
	p.ETA = max(longestLeft, 0)
	return p
}

// maxProgressPods bounds the pod logs one progress request reads.
const maxProgressPods = 8

// runningProgress reads the last progress line of the job's running image pods. A pod whose
// log cannot be read simply has no line.
func (s *Server) runningProgress(ctx context.Context, job *sdfleetv1alpha1.ImageGenerationJob) map[int32]stepProgress {
	out := map[int32]stepProgress{}
	read := 0
	for _, img := range job.Status.Images {
		if img.Phase != sdfleetv1alpha1.ImageRunning || img.PodName == "" || read >= maxProgressPods {
			continue
		}
		read++
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		log, err := s.kube.CoreV1().Pods(job.Namespace).GetLogs(img.PodName, &corev1.PodLogOptions{
			Container: podcontract.ContainerName, TailLines: ptr.To[int64](8), LimitBytes: ptr.To[int64](8192),
		}).DoRaw(ctx)
		cancel()
		if err != nil {
			s.log.V(2).Info("no progress line", "pod", img.PodName, "error", err.Error())
			continue
		}
		if line, ok := lastProgressLine(log); ok {
			out[img.Index] = line
		}
	}
	return out
}

func (s *Server) a1111Progress(w http.ResponseWriter, r *http.Request, c Caller) *Error {
	if e := s.auth.authorize(r.Context(), c, access{Verb: "list", Resource: jobResource, Namespace: c.Namespace}); e != nil {
		return e
	}
	job, err := s.latestCallerJob(r.Context(), c)
	if err != nil {
		return asError(err)
	}
	state := map[string]any{"skipped": false, "interrupted": false, "job": "", "job_count": 0, "job_no": 0,
		"job_timestamp": "0", "sampling_step": 0, "sampling_steps": 0}
	body := map[string]any{"progress": 0.0, "eta_relative": 0.0, "state": state, "current_image": nil, "textinfo": nil}
	if job != nil {
		p := progressOf(job, s.runningProgress(r.Context(), job), time.Now())
		body["progress"], body["eta_relative"] = p.Fraction, p.ETA.Seconds()
		body["textinfo"] = string(job.Status.Phase)
		state["job"], state["job_count"], state["job_no"] = job.Namespace+"/"+job.Name, job.Spec.Images, p.Done
		state["job_timestamp"] = job.CreationTimestamp.UTC().Format("20060102150405")
		state["sampling_step"], state["sampling_steps"] = p.Current.Step, p.Current.Steps
	}
	return writeJSON(w, http.StatusOK, body)
}
