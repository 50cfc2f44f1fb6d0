package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/go-logr/logr"

	"github.com/sdfleet/sdfleet/inference/backend"
	"github.com/sdfleet/sdfleet/inference/checkpoint"
	"github.com/sdfleet/sdfleet/inference/models"
	"github.com/sdfleet/sdfleet/inference/models/clip"
	"github.com/sdfleet/sdfleet/inference/models/unet"
	"github.com/sdfleet/sdfleet/inference/models/vae"
	"github.com/sdfleet/sdfleet/inference/noise"
	"github.com/sdfleet/sdfleet/inference/sampler"
	"github.com/sdfleet/sdfleet/inference/tensor"
	"github.com/sdfleet/sdfleet/inference/tokenizer"
)

// Options configure a Pipeline.
type Options struct {
	// Checkpoint is passed to checkpoint.Open (tokenizer folders, variant).
	Checkpoint checkpoint.Options
	// KeepModels keeps every network loaded between phases and requests,
	// trading memory for speed when several images are generated.
	KeepModels bool
	// Log receives load, truncation and release messages.
	Log logr.Logger
}

// Progress is reported after each denoising step.
type Progress struct {
	Step, Steps int
	Elapsed     time.Duration
	// ETA extrapolates the mean step time over the remaining steps.
	ETA time.Duration
}

// Hooks observe intermediate values, for tests and diagnostics. Slices
// are only valid during the call.
type Hooks struct {
	// Progress is called after each denoising step.
	Progress func(Progress)
	// Embeddings receives the text embeddings [batch, 77, width]: the
	// unconditional row first when guidance is on. For SDXL the width is
	// both encoders' side by side (768 + 1280).
	Embeddings func(*tensor.Tensor)
	// Pooled receives SDXL's pooled text embeddings [batch, 1280], in
	// the same order; it is not called for other families.
	Pooled func(*tensor.Tensor)
	// InitialLatents receives the scaled starting noise [1, C, h, w].
	InitialLatents func(latents []float32)
	// Prediction receives the UNet's raw output of step i (0-based),
	// [batch, C, h, w] in PyTorch's order, unconditional first.
	Prediction func(i int, pred []float32)
	// Step receives, after step i (0-based), the guided noise prediction
	// and the updated latents, both [1, C, h, w] in PyTorch's order.
	Step func(i int, eps, latents []float32)
	// Image receives the decoded image [1, H, W, 3], values in [0, 1].
	Image func(*tensor.Tensor)
}

// Timings are the durations of a generation's phases.
type Timings struct {
	Load, Encode, Denoise, Decode time.Duration
}

// Output is a generated image.
type Output struct {
	Image   *image.NRGBA
	Timings Timings
	// Dropped lists the words of each prompt cut at 75 tokens.
	Dropped []string
}

// Pipeline generates images from one checkpoint on one backend. It is not
// safe for concurrent use.
type Pipeline struct {
	path  string
	model *checkpoint.Model
	b     backend.Backend
	tok   *tokenizer.Tokenizer
	// tok2 is SDXL's second tokenizer, nil for other families.
	tok2 *tokenizer.Tokenizer
	opts Options
	log  logr.Logger

	text    *clip.Model
	text2   *clip.Model // SDXL's second text encoder
	denoise *unet.Model
	decoder *vae.Decoder
	// load is the time spent opening and loading not yet reported.
	load time.Duration
}

// Open opens the checkpoint at path (a diffusers folder or a single
// .safetensors file) and its tokenizer. Networks are loaded on first use.
func Open(path string, b backend.Backend, opts Options) (*Pipeline, error) {
	start := time.Now()
	m, err := checkpoint.Open(path, opts.Checkpoint)
	if err != nil {
		return nil, &ModelError{Path: path, Err: err}
	}
	if m.Family != checkpoint.SD1 && m.Family != checkpoint.SD2 && m.Family != checkpoint.SDXL {
		_ = m.Close()
		return nil, &ModelError{Path: path, Err: fmt.Errorf("model family %s is not supported (want %s, %s or %s)", m.Family, checkpoint.SD1, checkpoint.SD2, checkpoint.SDXL)}
	}
	if err := checkPrediction(path, m); err != nil {
		_ = m.Close()
		return nil, err
	}
	tok, dir, err := openTokenizer(m, opts)
	if err != nil {
		_ = m.Close()
		return nil, err
	}
	if m.TextEncoder.VocabSize < tok.VocabSize() {
		_ = m.Close()
		return nil, &ModelError{Path: dir, Err: fmt.Errorf("tokenizer has %d symbols but the text encoder's embedding only %d", tok.VocabSize(), m.TextEncoder.VocabSize)}
	}
	p := &Pipeline{path: path, model: m, b: b, tok: tok, opts: opts, log: opts.Log}
	if m.Family == checkpoint.SDXL {
		if p.tok2, err = openSecondTokenizer(m); err != nil {
			_ = m.Close()
			return nil, err
		}
	}
	p.load = time.Since(start)
	p.log.V(1).Info("checkpoint opened", "path", path, "layout", m.Layout, "family", m.Family)
	return p, nil
}

// openTokenizer loads the text encoder's tokenizer folder, or CLIP's
// built-in vocabulary for a single-file checkpoint that has no folder
// beside it (and was given none) when its text encoder has exactly CLIP's
// embedding rows: such files, the usual way SD 1.x is shared, carry no
// tokenizer. dir names what was loaded, for errors.
func openTokenizer(m *checkpoint.Model, opts Options) (tok *tokenizer.Tokenizer, dir string, err error) {
	dir, dirErr := m.TokenizerDir(checkpoint.TextEncoder)
	if dirErr != nil {
		builtin := m.Layout == checkpoint.SingleFile && opts.Checkpoint.TokenizerDir == "" &&
			m.TextEncoder.VocabSize == tokenizer.BuiltinVocabSize
		if !builtin {
			return nil, "", &ModelError{Path: m.Path, Err: dirErr}
		}
		if tok, err = tokenizer.BuiltinCLIP(); err != nil {
			return nil, "", err
		}
		opts.Log.V(1).Info("no tokenizer folder beside the checkpoint; using the built-in CLIP vocabulary", "path", m.Path)
		return tok, "built-in CLIP vocabulary", nil
	}
	if tok, err = tokenizer.LoadAny(dir); err != nil {
		return nil, "", &ModelError{Path: dir, Err: err}
	}
	return tok, dir, nil
}

// clipOptions reads SD 2.x's single-file OpenCLIP tower from its
// penultimate layer, as the original model does; diffusers folders of SD 2.x
// store the tower already cut to that layer.
func clipOptions(m *checkpoint.Model) clip.Options {
	if m.Family == checkpoint.SD2 && m.Layout == checkpoint.SingleFile {
		return clip.Options{SkipLastLayers: 1}
	}
	return clip.Options{}
}

// checkPrediction rejects diffusers folders whose scheduler says the UNet
// predicts something other than the noise (SD 2.x 768-v models predict
// "v_prediction"), which the samplers do not implement.
func checkPrediction(path string, m *checkpoint.Model) error {
	if m.Layout != checkpoint.Diffusers {
		return nil
	}
	file := filepath.Join(path, "scheduler", "scheduler_config.json")
	data, err := os.ReadFile(file)
	if err != nil {
		return nil // absent: diffusers' default is epsilon prediction
	}
	var cfg struct {
		PredictionType string `json:"prediction_type"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		return &ModelError{Path: file, Err: fmt.Errorf("want a JSON object: %w", err)}
	}
	if cfg.PredictionType != "" && cfg.PredictionType != "epsilon" {
		return &ModelError{Path: file, Err: fmt.Errorf("prediction_type %q is not supported (want epsilon)", cfg.PredictionType)}
	}
	return nil
}

// Model is the opened checkpoint.
func (p *Pipeline) Model() *checkpoint.Model { return p.model }

// Tokenizer is the text encoder's tokenizer: its folder's, or the
// built-in CLIP vocabulary.
func (p *Pipeline) Tokenizer() *tokenizer.Tokenizer { return p.tok }

// Close releases the networks and unmaps the checkpoint.
func (p *Pipeline) Close() error {
	p.dropText()
	p.dropText2()
	p.dropUNet()
	p.dropVAE()
	if p.model == nil {
		return nil
	}
	err := p.model.Close()
	p.model = nil
	return err
}

// LatentScale is how many pixels one latent element covers per side.
func (p *Pipeline) LatentScale() int { return 1 << (len(p.model.VAE.BlockOutChannels) - 1) }

func (p *Pipeline) modelErr(err error) error {
	var we *models.WeightError
	path := p.path
	if errors.As(err, &we) && we.File != "" {
		path = we.File
	}
	return &ModelError{Path: path, Err: err}
}

func (p *Pipeline) textEncoder() (*clip.Model, error) {
	if p.text == nil {
		start := time.Now()
		m, err := clip.New(p.b, models.FromCheckpoint(p.model, checkpoint.TextEncoder), p.model.TextEncoder, clipOptions(p.model))
		if err != nil {
			return nil, p.modelErr(err)
		}
		p.text = m
		p.dropStoredWeights()
		p.load += time.Since(start)
		p.log.V(1).Info("text encoder loaded", "seconds", time.Since(start).Seconds(), "bytes", m.PackedBytes())
	}
	return p.text, nil
}

func (p *Pipeline) unet() (*unet.Model, error) {
	if p.denoise == nil {
		start := time.Now()
		m, err := unet.New(p.b, models.FromCheckpoint(p.model, checkpoint.UNet), p.model.UNet)
		if err != nil {
			return nil, p.modelErr(err)
		}
		p.denoise = m
		p.dropStoredWeights()
		p.load += time.Since(start)
		p.log.V(1).Info("unet loaded", "seconds", time.Since(start).Seconds(), "bytes", m.PackedBytes())
	}
	return p.denoise, nil
}

func (p *Pipeline) vae() (*vae.Decoder, error) {
	if p.decoder == nil {
		start := time.Now()
		m, err := vae.New(p.b, models.FromCheckpoint(p.model, checkpoint.VAE), p.model.VAE)
		if err != nil {
			return nil, p.modelErr(err)
		}
		p.decoder = m
		p.dropStoredWeights()
		p.load += time.Since(start)
		p.log.V(1).Info("vae decoder loaded", "seconds", time.Since(start).Seconds(), "bytes", m.PackedBytes())
	}
	return p.decoder, nil
}

// dropStoredWeights takes the checkpoint's mapped pages out of resident memory once a network
// is packed: otherwise the stored fp16 copy of the UNet stays resident beside its packed
// float32 copy for the whole denoising loop.
func (p *Pipeline) dropStoredWeights() {
	if err := p.model.DropResidentPages(); err != nil {
		p.log.V(1).Info("could not drop the checkpoint's resident pages", "error", err.Error())
	}
}

// dropText, dropUNet and dropVAE free a network's weights on the backend
// and forget it.
func (p *Pipeline) dropText() {
	if p.text != nil {
		p.text.Release()
		p.text = nil
	}
}

func (p *Pipeline) dropUNet() {
	if p.denoise != nil {
		p.denoise.Release()
		p.denoise = nil
	}
}

func (p *Pipeline) dropVAE() {
	if p.decoder != nil {
		p.decoder.Release()
		p.decoder = nil
	}
}

// release drops a network unless models are kept, and returns the memory
// to the system so the next phase's peak does not stack on it.
func (p *Pipeline) release(which string, drop func()) {
	if p.opts.KeepModels {
		return
	}
	drop()
	debug.FreeOSMemory()
	p.log.V(1).Info("released", "network", which)
}

// Generate runs one request. ctx is checked between steps.
func (p *Pipeline) Generate(ctx context.Context, req Request, hooks Hooks) (*Output, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	if p.model == nil {
		return nil, fmt.Errorf("pipeline is closed")
	}
	out := &Output{}
	guided := req.Guidance > 1

	start := time.Now()
	var (
		emb, added backend.Tensor
		err        error
	)
	if p.model.Family == checkpoint.SDXL {
		xl, err := p.encodeXL(req, guided, hooks, out)
		if err != nil {
			return nil, err
		}
		emb, added = xl.context, xl.added
		defer p.b.Release(emb)
		defer p.b.Release(added)
	} else {
		if emb, err = p.encode(req, guided, out, &out.Timings); err != nil {
			return nil, err
		}
		defer p.b.Release(emb)
	}
	if hooks.Embeddings != nil {
		host, err := backend.ToHost(p.b, emb)
		if err != nil {
			return nil, err
		}
		hooks.Embeddings(host)
	}
	p.release("text encoders", func() { p.dropText(); p.dropText2() })
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	latents, err := p.denoiseLatents(ctx, req, emb, added, guided, hooks, &out.Timings)
	if err != nil {
		return nil, err
	}
	return p.decode(req, latents, hooks, out, start)
}

// encode runs the text encoder of SD 1.x and 2.x: [uncond, cond] as one
// batch when guided.
func (p *Pipeline) encode(req Request, guided bool, out *Output, t *Timings) (backend.Tensor, error) {
	prompts := []string{req.Prompt}
	if guided {
		prompts = []string{req.NegativePrompt, req.Prompt}
	}
	ids := make([][]int, len(prompts))
	for i, text := range prompts {
		enc := p.tok.Encode(text)
		ids[i] = enc.IDs
		if enc.Truncated {
			out.Dropped = append(out.Dropped, enc.Dropped)
			p.log.Info("prompt longer than 75 tokens was truncated", "which", []string{"prompt", "negative prompt"}[boolIndex(guided && i == 0)], "dropped", enc.Dropped)
		}
	}
	te, err := p.textEncoder()
	if err != nil {
		return nil, err
	}
	encStart := time.Now()
	emb, err := te.Encode(ids)
	if err != nil {
		return nil, err
	}
	// A backend that records work runs it here, so the phase is timed.
	if err := p.b.Sync(); err != nil {
		p.b.Release(emb)
		return nil, err
	}
	t.Encode = time.Since(encStart)
	return emb, nil
}

// decode releases the UNet, decodes the latents [1, C, h, w] with the VAE
// and finishes out.
func (p *Pipeline) decode(req Request, latents []float32, hooks Hooks, out *Output, start time.Time) (*Output, error) {
	p.release("unet", p.dropUNet)

	dec, err := p.vae()
	if err != nil {
		return nil, err
	}
	decStart := time.Now()
	if p.model.Family == checkpoint.SDXL {
		// SDXL's VAE overflows half precision: decode it with float32
		// activations on every backend.
		restore, err := backend.F32Activations(p.b)
		if err != nil {
			return nil, fmt.Errorf("SDXL VAE decode with float32 activations: %w", err)
		}
		defer restore()
	}
	lc := p.model.VAE.LatentChannels
	h, w := req.Height/p.LatentScale(), req.Width/p.LatentScale()
	nhwc := make([]float32, len(latents))
	if err := models.NCHWToNHWC(nhwc, latents, 1, lc, h, w); err != nil {
		return nil, err
	}
	z, err := p.b.Alloc(1, h, w, lc)
	if err != nil {
		return nil, err
	}
	defer p.b.Release(z)
	if err := p.b.Write(z, nhwc); err != nil {
		return nil, err
	}
	img, err := dec.Decode(z)
	if err != nil {
		return nil, err
	}
	if !finite(img.Data) {
		return nil, &NonFiniteError{Where: "decoded image"}
	}
	if hooks.Image != nil {
		hooks.Image(img)
	}
	out.Image = toImage(img)
	out.Timings.Decode = time.Since(decStart)
	p.release("vae", p.dropVAE)
	// Load time accumulates from Open (or the previous request) until a
	// request reports it.
	out.Timings.Load, p.load = p.load, 0
	p.log.V(1).Info("generated", "seconds", time.Since(start).Seconds())
	return out, nil
}

func boolIndex(b bool) int {
	if b {
		return 1
	}
	return 0
}

// denoiseLatents runs the sampler loop and returns the final latents
// [1, C, h, w].
func (p *Pipeline) denoiseLatents(ctx context.Context, req Request, emb, added backend.Tensor, guided bool, hooks Hooks, t *Timings) ([]float32, error) {
	sm, err := sampler.New(req.Sampler, req.Steps)
	if err != nil {
		return nil, &InputError{"sampler", err.Error()}
	}
	src, err := noise.New(req.RNG, req.Seed)
	if err != nil {
		return nil, &InputError{"rng", err.Error()}
	}
	net, err := p.unet()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	cfg := net.Config()
	c, h, w := cfg.InChannels, req.Height/p.LatentScale(), req.Width/p.LatentScale()
	if cfg.OutChannels != c {
		return nil, p.modelErr(fmt.Errorf("unet in_channels %d and out_channels %d differ; only text-to-image UNets are supported", c, cfg.OutChannels))
	}
	// The initial noise is drawn in PyTorch's [1, C, h, w] order.
	latents := make([]float32, c*h*w)
	src.Fill(latents)
	sigma := float32(sm.InitNoiseSigma())
	for i := range latents {
		latents[i] *= sigma
	}
	if hooks.InitialLatents != nil {
		hooks.InitialLatents(latents)
	}
	batch := emb.Dims()[0]
	// The latents live on the host, where the sampler steps them; each
	// step uploads the scaled batch and reads the prediction back (64 KiB
	// each way for a 512×512 image).
	x, err := p.b.Alloc(batch, h, w, c)
	if err != nil {
		return nil, err
	}
	defer p.b.Release(x)
	input := make([]float32, batch*len(latents))
	predNHWC := make([]float32, batch*len(latents))
	scaled := make([]float32, len(latents))
	eps := make([]float32, len(latents))
	epsBatch := make([]float32, batch*len(latents))
	steps := sm.Steps()
	for i := range steps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		timestep, scale := sm.ModelInput(i)
		for k, v := range latents {
			scaled[k] = v * float32(scale)
		}
		for b := range batch {
			if err := models.NCHWToNHWC(input[b*len(latents):(b+1)*len(latents)], scaled, 1, c, h, w); err != nil {
				return nil, err
			}
		}
		if err := p.b.Write(x, input); err != nil {
			return nil, fmt.Errorf("step %d: %w", i+1, err)
		}
		pred, err := net.ForwardAdded(x, timestep, emb, added)
		if err != nil {
			return nil, fmt.Errorf("step %d: %w", i+1, err)
		}
		err = p.b.Read(predNHWC, pred)
		p.b.Release(pred)
		if err != nil {
			return nil, fmt.Errorf("step %d: %w", i+1, err)
		}
		if err := models.NHWCToNCHW(epsBatch, predNHWC, batch, h, w, c); err != nil {
			return nil, err
		}
		if hooks.Prediction != nil {
			hooks.Prediction(i, epsBatch)
		}
		if guided {
			g := float32(req.Guidance)
			uncond, cond := epsBatch[:len(eps)], epsBatch[len(eps):]
			for k := range eps {
				eps[k] = uncond[k] + g*(cond[k]-uncond[k])
			}
		} else {
			copy(eps, epsBatch)
		}
		if err := sm.Step(i, latents, eps, src); err != nil {
			return nil, fmt.Errorf("step %d: %w", i+1, err)
		}
		if !finite(latents) {
			return nil, &NonFiniteError{Step: i + 1, Steps: steps, Where: "latents"}
		}
		if hooks.Step != nil {
			hooks.Step(i, eps, latents)
		}
		if hooks.Progress != nil {
			elapsed := time.Since(start)
			eta := time.Duration(float64(elapsed) / float64(i+1) * float64(steps-i-1))
			hooks.Progress(Progress{Step: i + 1, Steps: steps, Elapsed: elapsed, ETA: eta})
		}
	}
	t.Denoise = time.Since(start)
	return latents, nil
}

func finite(v []float32) bool {
	for _, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return false
		}
	}
	return true
}

// toImage converts [1, H, W, 3] values in [0, 1] to 8-bit pixels, rounding
// half to even as numpy does.
func toImage(t *tensor.Tensor) *image.NRGBA {
	h, w, c := t.Shape[1], t.Shape[2], t.Shape[3]
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			px := t.Data[(y*w+x)*c:]
			o := img.PixOffset(x, y)
			for k := range 3 {
				v := px[min(k, c-1)]
				img.Pix[o+k] = uint8(math.RoundToEven(float64(v * 255)))
			}
			img.Pix[o+3] = 255
		}
	}
	return img
}
