package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
)

// nativeJobRequest is the body of POST /v1/jobs: an ImageGenerationJob spec in which model
// names one of the administrator's models. output and image belong to the administrator and
// may not be sent.
type nativeJobRequest struct {
	sdfleetv1alpha1.ImageGenerationJobSpec
	// Model shadows spec.model: a model name, not a location.
	Model string `json:"model,omitempty"`
	// Output and Image shadow the spec's fields so that sending them is refused by name.
	Output json.RawMessage `json:"output,omitempty"`
	Image  json.RawMessage `json:"image,omitempty"`
}

func (s *Server) nativeCreate(w http.ResponseWriter, r *http.Request, c Caller) *Error {
	var body nativeJobRequest
	if e := decodeJSON(r, &body, true); e != nil {
		if e.Field == "model" {
			e.Message = "model: want the name of one of this gateway's models (" + strings.Join(s.cfg.Names(), ", ") + ")"
		}
		return e
	}
	switch {
	case len(body.Output) > 0:
		return badField("output", "set by the gateway's administrator; leave it out")
	case len(body.Image) > 0:
		return badField("image", "set by the gateway's administrator; leave it out")
	}
	// A native job may be as large as the API allows: it returns at once and its images are
	// fetched one by one.
	spec := body.ImageGenerationJobSpec
	job, e := s.buildJob(c, jobRequest{API: "native", Model: body.Model, Spec: &spec}, "model")
	if e != nil {
		return e
	}
	if e := s.createJob(r.Context(), c, job); e != nil {
		return e
	}
	status := "/v1/jobs/" + job.Namespace + "/" + job.Name
	w.Header().Set("Location", status)
	return writeJSON(w, http.StatusCreated, map[string]any{
		"namespace": job.Namespace, "name": job.Name, "url": s.baseURL(r) + status,
	})
}

func (s *Server) nativeGet(w http.ResponseWriter, r *http.Request, c Caller) *Error {
	job, e := s.readableJob(r, c)
	if e != nil {
		return e
	}
	return writeJSON(w, http.StatusOK, job)
}

// readableJob authorises get on the job of the path and reads it.
func (s *Server) readableJob(r *http.Request, c Caller) (*sdfleetv1alpha1.ImageGenerationJob, *Error) {
	key := types.NamespacedName{Namespace: r.PathValue("namespace"), Name: r.PathValue("name")}
	if e := s.auth.authorize(r.Context(), c, access{Verb: "get", Resource: jobResource, Namespace: key.Namespace, Name: key.Name}); e != nil {
		return nil, e
	}
	job := &sdfleetv1alpha1.ImageGenerationJob{}
	if err := s.cache.Get(r.Context(), key, job); err != nil {
		// Created a moment ago, the cache may not have it yet.
		if err := s.apiReader.Get(r.Context(), key, job); err != nil {
			return nil, asError(err)
		}
	}
	job.APIVersion, job.Kind = sdfleetv1alpha1.GroupVersion.String(), "ImageGenerationJob"
	job.ManagedFields = nil
	return job, nil
}

func (s *Server) nativeImage(w http.ResponseWriter, r *http.Request, c Caller) *Error {
	file := r.PathValue("file")
	digits, ok := strings.CutSuffix(file, ".png")
	index, err := strconv.ParseInt(digits, 10, 32)
	if !ok || err != nil || index < 0 || strconv.FormatInt(index, 10) != digits {
		return &Error{Status: http.StatusBadRequest, Field: "index", Code: "invalid_value",
			Message: fmt.Sprintf("image %q: want <index>.png with a whole number index, for example 0.png", file)}
	}
	job, e := s.readableJob(r, c)
	if e != nil {
		return e
	}
	for _, img := range job.Status.Images {
		if img.Index != int32(index) {
			continue
		}
		if img.Phase != sdfleetv1alpha1.ImageSucceeded {
			return notFound("image %d of job %s/%s is %s, not written yet", index, job.Namespace, job.Name, img.Phase)
		}
		f, e := s.openImage(job, img)
		if e != nil {
			return e
		}
		defer func() { _ = f.Close() }()
		modTime := time.Time{}
		if img.FinishTime != nil {
			modTime = img.FinishTime.Time
		}
		w.Header().Set("Content-Type", "image/png")
		if img.SHA256 != "" {
			w.Header().Set("ETag", `"`+img.SHA256+`"`)
		}
		http.ServeContent(w, r, file, modTime, f)
		return nil
	}
	return notFound("job %s/%s has no image %d in its status", job.Namespace, job.Name, index)
}

func (s *Server) nativeGPUs(w http.ResponseWriter, r *http.Request, c Caller) *Error {
	if e := s.auth.authorize(r.Context(), c, access{Verb: "list", Resource: "gpunodes"}); e != nil {
		return e
	}
	gpus, e := s.allGPUs(r)
	if e != nil {
		return e
	}
	return writeJSON(w, http.StatusOK, map[string]any{"gpus": gpus})
}

func (s *Server) allGPUs(r *http.Request) ([]GPU, *Error) {
	var nodes sdfleetv1alpha1.GPUNodeList
	if err := s.cache.List(r.Context(), &nodes); err != nil {
		return nil, asError(err)
	}
	gpus := []GPU{}
	for i := range nodes.Items {
		gpus = append(gpus, gpusOf(&nodes.Items[i])...)
	}
	s.watch.addShares(gpus)
	sort.Slice(gpus, func(i, j int) bool {
		if gpus[i].Node != gpus[j].Node {
			return gpus[i].Node < gpus[j].Node
		}
		return gpus[i].Index < gpus[j].Index
	})
	return gpus, nil
}

// nativeEvents streams Server-Sent Events: "job" for progress of the jobs of the caller's
// namespace (watch imagegenerationjobs there) and "gpu" for GPU status changes (list
// gpunodes; left out for callers without it). A snapshot of the current state comes first.
func (s *Server) nativeEvents(w http.ResponseWriter, r *http.Request, c Caller) *Error {
	ctx := r.Context()
	if e := s.auth.authorize(ctx, c, access{Verb: "watch", Resource: jobResource, Namespace: c.Namespace}); e != nil {
		return e
	}
	gpus := s.auth.authorize(ctx, c, access{Verb: "list", Resource: "gpunodes"}) == nil
	flusher, ok := w.(http.Flusher)
	if !ok {
		return &Error{Status: http.StatusInternalServerError, Code: "no_streaming", Message: "this connection cannot stream events"}
	}
	sub := newSubscriber(c.Namespace, gpus)
	defer s.watch.subscribe(sub)()

	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	var snapshot []event
	if gpus {
		all, e := s.allGPUs(r)
		if e != nil {
			return e
		}
		for _, g := range all {
			snapshot = append(snapshot, event{Type: "gpu", Data: g})
		}
	}
	var jobs sdfleetv1alpha1.ImageGenerationJobList
	if err := s.cache.List(ctx, &jobs, client.InNamespace(c.Namespace)); err != nil {
		return asError(err)
	}
	for i := range jobs.Items {
		snapshot = append(snapshot, event{Type: "job", Data: jobEventOf(&jobs.Items[i])})
	}
	for _, ev := range snapshot {
		if err := writeEvent(w, ev); err != nil {
			return nil
		}
	}
	flusher.Flush()
	keepAlive := time.NewTicker(15 * time.Second)
	defer keepAlive.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-sub.overflow:
			_ = writeEvent(w, event{Type: "overflow", Data: map[string]string{
				"message": "the client read events too slowly; reconnect for a fresh snapshot"}})
			flusher.Flush()
			return nil
		case ev := <-sub.events:
			if err := writeEvent(w, ev); err != nil {
				return nil
			}
			flusher.Flush()
		case <-keepAlive.C:
			if _, err := w.Write([]byte(": keep-alive\n\n")); err != nil {
				return nil
			}
			flusher.Flush()
		}
	}
}

// writeEvent writes one Server-Sent Event; JSON has no raw newlines, so one data line holds it.
func writeEvent(w http.ResponseWriter, ev event) error {
	data, err := json.Marshal(ev.Data)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	b.WriteString("event: ")
	b.WriteString(ev.Type)
	b.WriteString("\ndata: ")
	b.Write(data)
	b.WriteString("\n\n")
	_, err = w.Write(b.Bytes())
	return err
}
