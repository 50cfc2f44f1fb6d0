package gateway

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	"github.com/sdfleet/sdfleet/controllers/podcontract"
)

// openAIRequest is the body of POST /v1/images/generations.
type openAIRequest struct {
	Prompt         string  `json:"prompt"`
	N              *int    `json:"n,omitempty"`
	Size           string  `json:"size,omitempty"`
	ResponseFormat string  `json:"response_format,omitempty"`
	Model          string  `json:"model,omitempty"`
	User           string  `json:"user,omitempty"`
	Quality        *string `json:"quality,omitempty"` // accepted, ignored: Stable Diffusion has no quality tiers
	Style          *string `json:"style,omitempty"`   // accepted, ignored
}

// parseOpenAI checks the request, naming OpenAI's parameter at fault.
func parseOpenAI(req openAIRequest, maxImages int) (jobRequest, string, *Error) {
	out := jobRequest{API: "openai", Model: req.Model, Prompt: req.Prompt, Images: 1, Width: 512, Height: 512}
	if strings.TrimSpace(req.Prompt) == "" {
		return out, "", badField("prompt", "want a non-empty description of the image")
	}
	if len(req.Prompt) > sdfleetv1alpha1.MaxPromptLength {
		return out, "", badField("prompt", "%d bytes; want at most %d", len(req.Prompt), sdfleetv1alpha1.MaxPromptLength)
	}
	if req.N != nil {
		if *req.N < 1 || *req.N > maxImages {
			return out, "", badField("n", "%d; want 1 to %d", *req.N, maxImages)
		}
		out.Images = int32(*req.N)
	}
	if req.Size != "" {
		w, h, err := parseSize(req.Size)
		if err != nil {
			return out, "", badField("size", "%q: %v", req.Size, err)
		}
		out.Width, out.Height = w, h
	}
	format := req.ResponseFormat
	switch format {
	case "":
		format = "b64_json"
	case "b64_json", "url":
	default:
		return out, "", badField("response_format", "%q; want \"b64_json\" or \"url\"", format)
	}
	return out, format, nil
}

// parseSize reads "WxH": multiples of 8 from 64 to 2048, as the job's API takes them.
func parseSize(s string) (int32, int32, error) {
	ws, hs, ok := strings.Cut(strings.ToLower(s), "x")
	if !ok {
		return 0, 0, fmt.Errorf("want WIDTHxHEIGHT, for example 512x512")
	}
	w, errW := strconv.Atoi(ws)
	h, errH := strconv.Atoi(hs)
	if errW != nil || errH != nil {
		return 0, 0, fmt.Errorf("want WIDTHxHEIGHT with whole numbers, for example 512x512")
	}
	for _, v := range []int{w, h} {
		if v < 64 || v > 2048 || v%8 != 0 {
			return 0, 0, fmt.Errorf("width and height must be multiples of 8 from 64 to 2048")
		}
	}
	return int32(w), int32(h), nil
}

func (s *Server) openAIGenerate(w http.ResponseWriter, r *http.Request, c Caller) *Error {
	var body openAIRequest
	if e := decodeJSON(r, &body, true); e != nil {
		return e
	}
	req, format, e := parseOpenAI(body, s.cfg.MaxImagesPerRequest)
	if e != nil {
		return e
	}
	job, e := s.buildJob(c, req, "model")
	if e != nil {
		return e
	}
	if body.User != "" {
		job.Annotations[AnnotationEndUser] = podcontract.Truncate(body.User, 256)
	}
	if e := s.createJob(r.Context(), c, job); e != nil {
		return e
	}
	key := types.NamespacedName{Namespace: job.Namespace, Name: job.Name}
	done, e := s.await(r, key, job)
	if e != nil || done == nil {
		return e
	}
	if !finished(done) {
		return s.writeAccepted(w, r, done)
	}
	imgs, e := succeededImages(done)
	if e != nil {
		return e
	}
	if format == "url" {
		data := make([]map[string]string, 0, len(imgs))
		for _, img := range imgs {
			data = append(data, map[string]string{"url": s.imageURL(r, done, img.Index)})
		}
		return writeJSON(w, http.StatusOK, map[string]any{"created": done.CreationTimestamp.Unix(), "data": data})
	}
	files, _, e := s.openImages(done)
	if e != nil {
		return e
	}
	defer closeAll(files)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	// Streamed: n PNGs are never held in memory as one response.
	bw := bufio.NewWriterSize(w, 64<<10)
	fmt.Fprintf(bw, `{"created":%d,"data":[`, done.CreationTimestamp.Unix())
	for i, f := range files {
		if i > 0 {
			_ = bw.WriteByte(',')
		}
		_, _ = bw.WriteString(`{"b64_json":"`)
		if err := streamBase64(bw, f); err != nil {
			return asError(err)
		}
		_, _ = bw.WriteString(`"}`)
	}
	_, _ = bw.WriteString("]}\n")
	if err := bw.Flush(); err != nil {
		s.log.V(1).Info("client went away while images were sent", "job", key.String(), "error", err.Error())
	}
	return nil
}

func (s *Server) openAIModels(w http.ResponseWriter, _ *http.Request, _ Caller) *Error {
	data := make([]map[string]any, 0, len(s.cfg.Models.Models))
	for _, name := range s.cfg.Names() {
		data = append(data, map[string]any{"id": name, "object": "model", "created": 0, "owned_by": "sdfleet"})
	}
	return writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
}

// await waits for the job. A nil job with a nil error means the client went away.
func (s *Server) await(r *http.Request, key types.NamespacedName, created *sdfleetv1alpha1.ImageGenerationJob) (*sdfleetv1alpha1.ImageGenerationJob, *Error) {
	job, _, err := s.awaitJob(r.Context(), key)
	if err != nil {
		if r.Context().Err() != nil {
			s.log.V(1).Info("client went away while its job runs", "job", key.String())
			return nil, nil
		}
		return nil, asError(err)
	}
	if job == nil {
		job = created
	}
	return job, nil
}

// writeAccepted answers a request whose job outlived the wait timeout: 202, the job's name
// and where to poll it.
func (s *Server) writeAccepted(w http.ResponseWriter, r *http.Request, job *sdfleetv1alpha1.ImageGenerationJob) *Error {
	status := "/v1/jobs/" + job.Namespace + "/" + job.Name
	w.Header().Set("Location", status)
	return writeJSON(w, http.StatusAccepted, map[string]any{
		"namespace": job.Namespace, "name": job.Name, "status": "in_progress",
		"url":     s.baseURL(r) + status,
		"message": fmt.Sprintf("the images are not ready after %v; poll %s, then fetch %s/images/<index>.png", s.cfg.WaitTimeout.Round(time.Second), status, status),
	})
}

func (s *Server) imageURL(r *http.Request, job *sdfleetv1alpha1.ImageGenerationJob, index int32) string {
	return fmt.Sprintf("%s/v1/jobs/%s/%s/images/%d.png", s.baseURL(r), job.Namespace, job.Name, index)
}

// streamBase64 copies a file into w as base64.
func streamBase64(w io.Writer, f *os.File) error {
	enc := base64.NewEncoder(base64.StdEncoding, w)
	if _, err := io.Copy(enc, f); err != nil {
		return fmt.Errorf("read %s: %w", f.Name(), err)
	}
	return enc.Close()
}
