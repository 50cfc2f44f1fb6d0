package gateway

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/types"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
)

// a1111Sampler is one of AUTOMATIC1111's sampler names and the job sampler it means.
type a1111Sampler struct {
	Name    string
	Aliases []string
	Sampler sdfleetv1alpha1.Sampler
}

// a1111Samplers are the samplers sdfleet runs, under the web UI's names.
var a1111Samplers = []a1111Sampler{
	{Name: "DDIM", Aliases: []string{"ddim"}, Sampler: sdfleetv1alpha1.SamplerDDIM},
	{Name: "Euler a", Aliases: []string{"k_euler_a", "k_euler_ancestral", "euler_ancestral"}, Sampler: sdfleetv1alpha1.SamplerEulerAncestral},
	{Name: "DPM++ 2M Karras", Aliases: []string{"k_dpmpp_2m_ka", "dpmpp_2m_karras"}, Sampler: sdfleetv1alpha1.SamplerDPMPP2MKarras},
}

// samplerFromA1111 maps a sampler name (and, for web UI 1.9 and later, the scheduler) to the
// job's sampler. Empty means the web UI's default, Euler a.
func samplerFromA1111(name, scheduler string) (sdfleetv1alpha1.Sampler, bool) {
	if name == "" {
		return sdfleetv1alpha1.SamplerEulerAncestral, true
	}
	// Web UI 1.9 split "DPM++ 2M Karras" into sampler "DPM++ 2M" and scheduler "Karras".
	if strings.EqualFold(name, "DPM++ 2M") && strings.EqualFold(scheduler, "karras") {
		return sdfleetv1alpha1.SamplerDPMPP2MKarras, true
	}
	for _, s := range a1111Samplers {
		if strings.EqualFold(name, s.Name) {
			return s.Sampler, true
		}
		for _, a := range s.Aliases {
			if strings.EqualFold(name, a) {
				return s.Sampler, true
			}
		}
	}
	return "", false
}

func a1111SamplerName(s sdfleetv1alpha1.Sampler) string {
	for _, a := range a1111Samplers {
		if a.Sampler == s {
			return a.Name
		}
	}
	return string(s)
}

// a1111Request is the part of the web UI's txt2img body that sdfleet acts on. Other fields
// clients send (restore_faces, styles, ...) are accepted and have no effect, as in the web UI
// when the feature is off.
type a1111Request struct {
	Prompt           string         `json:"prompt"`
	NegativePrompt   string         `json:"negative_prompt"`
	Steps            *int           `json:"steps"`
	CFGScale         *float64       `json:"cfg_scale"`
	Width            *int           `json:"width"`
	Height           *int           `json:"height"`
	Seed             *int64         `json:"seed"`
	SamplerName      string         `json:"sampler_name"`
	SamplerIndex     string         `json:"sampler_index"`
	Scheduler        string         `json:"scheduler"`
	BatchSize        *int           `json:"batch_size"`
	NIter            *int           `json:"n_iter"`
	OverrideSettings map[string]any `json:"override_settings"`
}

// parseA1111 checks the request, naming the web UI's field at fault, and fills the web UI's
// defaults (20 steps, cfg_scale 7, 512x512, a random seed, Euler a, one image).
func parseA1111(req a1111Request, maxImages int) (jobRequest, *Error) {
	out := jobRequest{API: "a1111", Prompt: req.Prompt, NegativePrompt: req.NegativePrompt,
		Images: 1, Width: 512, Height: 512, Steps: 20, GuidanceScale: "7"}
	if strings.TrimSpace(req.Prompt) == "" {
		return out, badField("prompt", "want a non-empty prompt")
	}
	for field, text := range map[string]string{"prompt": req.Prompt, "negative_prompt": req.NegativePrompt} {
		if len(text) > sdfleetv1alpha1.MaxPromptLength {
			return out, badField(field, "%d bytes; want at most %d", len(text), sdfleetv1alpha1.MaxPromptLength)
		}
	}
	if req.Steps != nil {
		if *req.Steps < 1 || *req.Steps > 150 {
			return out, badField("steps", "%d; want 1 to 150", *req.Steps)
		}
		out.Steps = int32(*req.Steps)
	}
	if req.CFGScale != nil {
		g := *req.CFGScale
		if math.IsNaN(g) || g < 0 || g > 50 {
			return out, badField("cfg_scale", "%v; want 0 to 50", g)
		}
		out.GuidanceScale = strconv.FormatFloat(math.Round(g*1000)/1000, 'f', -1, 64)
	}
	for _, d := range []struct {
		field string
		v     *int
		dst   *int32
	}{{"width", req.Width, &out.Width}, {"height", req.Height, &out.Height}} {
		if d.v == nil {
			continue
		}
		if *d.v < 64 || *d.v > 2048 || *d.v%8 != 0 {
			return out, badField(d.field, "%d; want a multiple of 8 from 64 to 2048", *d.v)
		}
		*d.dst = int32(*d.v)
	}
	if req.Seed != nil && *req.Seed != -1 {
		if *req.Seed < 0 {
			return out, badField("seed", "%d; want -1 (random) or 0 and above", *req.Seed)
		}
		out.Seed = req.Seed
	}
	name, field := req.SamplerName, "sampler_name"
	if name == "" && req.SamplerIndex != "" {
		name, field = req.SamplerIndex, "sampler_index"
	}
	sampler, ok := samplerFromA1111(name, req.Scheduler)
	if !ok {
		names := make([]string, len(a1111Samplers))
		for i, s := range a1111Samplers {
			names[i] = strconv.Quote(s.Name)
		}
		return out, badField(field, "%q is not a sampler of this server; want one of %s", name, strings.Join(names, ", "))
	}
	out.Sampler = sampler
	batch, iter := 1, 1
	if req.BatchSize != nil {
		batch = *req.BatchSize
		if batch < 1 || batch > maxImages {
			return out, badField("batch_size", "%d; want 1 to %d", batch, maxImages)
		}
	}
	if req.NIter != nil {
		iter = *req.NIter
		if iter < 1 || iter > maxImages {
			return out, badField("n_iter", "%d; want 1 to %d", iter, maxImages)
		}
	}
	if batch*iter > maxImages {
		return out, badField("batch_size", "batch_size x n_iter is %d images; want at most %d", batch*iter, maxImages)
	}
	out.Images = int32(batch * iter)
	if v, ok := req.OverrideSettings["sd_model_checkpoint"]; ok {
		model, isString := v.(string)
		if !isString {
			return out, badField("override_settings.sd_model_checkpoint", "want a model name (a string)")
		}
		out.Model = model
	}
	return out, nil
}

func (s *Server) a1111Txt2Img(w http.ResponseWriter, r *http.Request, c Caller) *Error {
	raw := map[string]any{}
	var body a1111Request
	if e := decodeJSON(r, &body, false); e != nil {
		return e
	}
	req, e := parseA1111(body, s.cfg.MaxImagesPerRequest)
	if e != nil {
		return e
	}
	job, e := s.buildJob(c, req, "override_settings.sd_model_checkpoint")
	if e != nil {
		return e
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
	files, imgs, e := s.openImages(done)
	if e != nil {
		return e
	}
	defer closeAll(files)
	seeds := make([]int64, len(imgs))
	gpus := make([]string, len(imgs))
	for i, img := range imgs {
		seeds[i], gpus[i] = img.Seed, img.GPUUUID
	}
	var seed int64
	if done.Status.Seed != nil {
		seed = *done.Status.Seed
	}
	info, _ := json.Marshal(map[string]any{
		"prompt": req.Prompt, "negative_prompt": req.NegativePrompt, "seed": seed, "all_seeds": seeds,
		"steps": req.Steps, "cfg_scale": req.GuidanceScale, "width": req.Width, "height": req.Height,
		"sampler_name": a1111SamplerName(req.Sampler), "sd_model_name": done.Annotations[AnnotationModel],
		"batch_size": len(imgs), "job": key.String(), "gpus": gpus,
	})
	raw["prompt"], raw["negative_prompt"], raw["steps"], raw["cfg_scale"] = req.Prompt, req.NegativePrompt, req.Steps, req.GuidanceScale
	raw["width"], raw["height"], raw["seed"], raw["sampler_name"] = req.Width, req.Height, seed, a1111SamplerName(req.Sampler)
	raw["batch_size"], raw["n_iter"] = req.Images, 1
	params, _ := json.Marshal(raw)
	infoString, _ := json.Marshal(string(info))

	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 64<<10)
	_, _ = bw.WriteString(`{"images":[`)
	for i, f := range files {
		if i > 0 {
			_ = bw.WriteByte(',')
		}
		_ = bw.WriteByte('"')
		if err := streamBase64(bw, f); err != nil {
			return asError(err)
		}
		_ = bw.WriteByte('"')
	}
	fmt.Fprintf(bw, `],"parameters":%s,"info":%s}`+"\n", params, infoString)
	if err := bw.Flush(); err != nil {
		s.log.V(1).Info("client went away while images were sent", "job", key.String(), "error", err.Error())
	}
	return nil
}

func (s *Server) a1111Samplers(w http.ResponseWriter, _ *http.Request, _ Caller) *Error {
	out := make([]map[string]any, 0, len(a1111Samplers))
	for _, sm := range a1111Samplers {
		out = append(out, map[string]any{"name": sm.Name, "aliases": sm.Aliases, "options": map[string]string{}})
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) a1111Models(w http.ResponseWriter, _ *http.Request, _ Caller) *Error {
	out := make([]map[string]any, 0, len(s.cfg.Models.Models))
	for _, name := range s.cfg.Names() {
		out = append(out, map[string]any{"title": name, "model_name": name, "hash": nil, "sha256": nil,
			"filename": name, "config": nil})
	}
	return writeJSON(w, http.StatusOK, out)
}
