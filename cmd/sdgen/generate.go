package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/sdfleet/sdfleet/controllers/podcontract"
	"github.com/sdfleet/sdfleet/inference/backend"
	"github.com/sdfleet/sdfleet/inference/backend/cpu"
	"github.com/sdfleet/sdfleet/inference/backend/vulkan"
	"github.com/sdfleet/sdfleet/inference/checkpoint"
	"github.com/sdfleet/sdfleet/inference/noise"
	"github.com/sdfleet/sdfleet/inference/pipeline"
	"github.com/sdfleet/sdfleet/inference/sampler"
)

var generateCommand = command{
	name:    "generate",
	summary: "generate one image from a prompt and write it as a PNG (the image pod's entry point)",
	run:     runGenerate,
}

// exitCodesHelp documents the exit codes of `sdgen generate` (see
// controllers/podcontract), for --help.
const exitCodesHelp = `Exit codes of generate (sysexits):
   0  success
   1  any other failure (including NaN or Inf in the latents, with the step)
  64  usage: an unknown or missing flag, a value that does not parse
  65  invalid input: a size not a multiple of 8, an empty prompt, an unknown sampler
  66  model error: a missing, corrupt or unsupported checkpoint or tokenizer
      (the message names the file and tensor)
  69  device error
  70  internal error (a bug in sdgen)
  71  out of memory
`

// exitError carries an exit code other than 1 from a subcommand to run.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

// ExitCode is the process exit status.
func (e exitError) ExitCode() int { return e.code }

// exitCoder is an error that chooses the process exit status.
type exitCoder interface{ ExitCode() int }

// envPrefix marks the environment variables that set generate's flags:
// --negative-prompt is SDFLEET_NEGATIVE_PROMPT.
const envPrefix = "SDFLEET_"

func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// generateFlags are the values of generate's flags.
type generateFlags struct {
	req        pipeline.Request
	model      string
	output     string
	device     string
	precision  string
	resultFile string
	tokenizer  string
	tokenizer2 string
	quiet      bool
}

func defineGenerateFlags(fs *flag.FlagSet) *generateFlags {
	g := &generateFlags{}
	r := &g.req
	fs.StringVar(&r.Prompt, "prompt", "", "text describing the image (required)")
	fs.StringVar(&r.NegativePrompt, "negative-prompt", "", "text describing what to keep out of the image")
	fs.Uint64Var(&r.Seed, "seed", 0, "seed of the initial noise; the same seed and settings give the same bytes")
	fs.IntVar(&r.Steps, "steps", 20, "denoising steps")
	fs.IntVar(&r.Width, "width", 512, "image width in pixels, a multiple of 8")
	fs.IntVar(&r.Height, "height", 512, "image height in pixels, a multiple of 8")
	fs.Float64Var(&r.Guidance, "guidance", 7.5, "classifier-free guidance scale; 1 or less disables guidance")
	fs.StringVar(&r.Sampler, "sampler", sampler.DDIM, "sampler: "+strings.Join(sampler.Names, ", "))
	fs.StringVar(&r.RNG, "rng", noise.SDFleet, "noise generator: sdfleet, or torch to reproduce torch.randn's starting latents")
	fs.StringVar(&g.model, "model", "", "diffusers folder or single .safetensors checkpoint (required)")
	fs.StringVar(&g.tokenizer, "tokenizer", "", "tokenizer folder for a single-file checkpoint (default: \"tokenizer\" beside it, else the built-in CLIP vocabulary when the text encoder has its 49408 tokens)")
	fs.StringVar(&g.tokenizer2, "tokenizer-2", "", "second tokenizer folder for a single-file SDXL checkpoint (default: \"tokenizer_2\" beside it)")
	fs.StringVar(&g.output, "output", "", "PNG file to write; parent folders are created (required)")
	fs.StringVar(&g.device, "device", podcontract.DeviceAuto, "auto (the pod's GPU through Vulkan, the CPU when the pod has no GPU or Vulkan is unusable), cpu or vulkan:N")
	// fp32 by default: on the AVX-512 BF16 CPUs measured so far the bf16
	// dot product runs at about half the float32 FMAs' rate, so bf16 only
	// costs accuracy there; auto is for CPUs where it pays.
	fs.StringVar(&g.precision, "precision", "fp32", "arithmetic of the CPU's matrix multiplies and convolutions: fp32, bf16 (bfloat16 products, float32 sums), or auto (bf16 where the CPU has bf16 dot-product instructions, else fp32)")
	fs.StringVar(&g.resultFile, "result-file", "", "file to write the JSON result to, on success and on failure")
	fs.BoolVar(&g.quiet, "quiet", false, "no progress lines on stdout")
	// Show each flag's environment variable in --help.
	fs.VisitAll(func(f *flag.Flag) {
		f.Usage += " [$" + envName(f.Name) + "]"
	})
	return g
}

// applyEnv sets every flag whose environment variable is set; flags given
// on the command line, parsed afterwards, override them.
func applyEnv(fs *flag.FlagSet, lookup func(string) (string, bool)) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		v, ok := lookup(envName(f.Name))
		if !ok || err != nil {
			return
		}
		if e := fs.Set(f.Name, v); e != nil {
			err = usageError{fmt.Sprintf("$%s=%q: %v", envName(f.Name), v, e)}
		}
	})
	return err
}

// generateResult is what --result-file receives: the pod contract's Result
// (whose field names the controller reads) plus the generation's settings,
// phase durations and peak memory.
type generateResult struct {
	podcontract.Result
	ExitCode            int    `json:"exitCode"`
	Width               int    `json:"width,omitempty"`
	Height              int    `json:"height,omitempty"`
	Seed                uint64 `json:"seed"`
	Sampler             string `json:"sampler,omitempty"`
	Steps               int    `json:"steps,omitempty"`
	RNG                 string `json:"rng,omitempty"`
	LoadMilliseconds    int64  `json:"loadMilliseconds"`
	EncodeMilliseconds  int64  `json:"encodeMilliseconds"`
	DenoiseMilliseconds int64  `json:"denoiseMilliseconds"`
	DecodeMilliseconds  int64  `json:"decodeMilliseconds"`
}

// devicePeak is a backend that reports the most device memory it has held (the Vulkan one).
type devicePeak interface{ PeakMemoryBytes() int64 }

// progressLine is one JSON line on stdout per denoising step.
type progressLine struct {
	Type                string `json:"type"`
	Step                int    `json:"step"`
	Steps               int    `json:"steps"`
	ElapsedMilliseconds int64  `json:"elapsedMilliseconds"`
	ETAMilliseconds     int64  `json:"etaMilliseconds"`
}

func runGenerate(e *env, args []string) (err error) {
	start := time.Now()
	fs := newFlagSet(e, "generate", "--model PATH --prompt TEXT --output FILE.png [flags]")
	g := defineGenerateFlags(fs)
	usage := fs.Usage
	fs.Usage = func() {
		usage()
		fmt.Fprintln(fs.Output())
		fmt.Fprint(fs.Output(), "Every flag can also be set by the environment variable shown; the command line wins.\n\n")
		fmt.Fprint(fs.Output(), exitCodesHelp)
	}
	// The GPU the kubelet gave this container, recorded whatever the device, so that anyone can
	// check the image ran on the GPU the controller chose.
	res := generateResult{Result: podcontract.Result{GPUUUID: os.Getenv(podcontract.EnvGPUUUID)}}
	defer func() {
		if p := recover(); p != nil {
			err = exitError{podcontract.ExitInternal, fmt.Errorf("internal error: %v\n%s", p, debug.Stack())}
		}
		res.ExitCode = exitCodeOf(err)
		if c := res.ExitCode; c > 1 && !errors.As(err, new(exitCoder)) && !errors.As(err, new(usageError)) {
			err = exitError{c, err}
		}
		if err != nil && !errors.Is(err, flag.ErrHelp) {
			res.Error = podcontract.Truncate(err.Error(), podcontract.MaxMessageLength)
		}
		res.DurationMilliseconds = time.Since(start).Milliseconds()
		res.PeakHostMemoryBytes = pipeline.PeakRSS()
		if g.resultFile != "" && !errors.Is(err, flag.ErrHelp) {
			if werr := writeResult(g.resultFile, res); werr != nil {
				e.log.Error(werr, "could not write the result file", "path", g.resultFile)
				if err == nil {
					err = werr
				}
			}
		}
	}()
	if err := applyEnv(fs, os.LookupEnv); err != nil {
		return err
	}
	if err := parse(e, fs, args); err != nil {
		return err
	}
	req := g.req
	res.Width, res.Height, res.Seed, res.Sampler, res.Steps, res.RNG = req.Width, req.Height, req.Seed, req.Sampler, req.Steps, req.RNG
	if err := validateGenerate(g); err != nil {
		return err
	}
	device, err := resolveDevice(e, g.device)
	if err != nil {
		return err
	}

	// With the default GOGC the heap may grow by the size of the live
	// weights (3.4 GB for SD 1.5) in discarded activations before a
	// collection. The weights and activations hold no pointers, so
	// collecting far more often costs little: at 5% the full model's peak
	// drops by about 0.6 GB with no measurable slowdown.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	b, err := newBackend(e, device, g.precision, &res.Result)
	if err != nil {
		return err
	}
	defer b.Close()
	if dp, ok := b.(devicePeak); ok {
		// Read before Close frees the device; deferred after it, so it runs first.
		defer func() { res.PeakDeviceMemoryBytes = dp.PeakMemoryBytes() }()
	}
	p, err := pipeline.Open(g.model, b, pipeline.Options{Checkpoint: checkpoint.Options{TokenizerDir: g.tokenizer, Tokenizer2Dir: g.tokenizer2}, Log: e.log})
	if err != nil {
		return err
	}
	defer func() { _ = p.Close() }()
	family := p.Model().Family
	res.Family = string(family)
	req = withFamilyDefaults(fs, req, family)
	res.Width, res.Height = req.Width, req.Height
	if err := checkMemory(p.Model(), req, b); err != nil {
		return err
	}
	enc := json.NewEncoder(e.stdout)
	hooks := pipeline.Hooks{}
	if !g.quiet {
		hooks.Progress = func(pr pipeline.Progress) {
			_ = enc.Encode(progressLine{Type: "progress", Step: pr.Step, Steps: pr.Steps,
				ElapsedMilliseconds: pr.Elapsed.Milliseconds(), ETAMilliseconds: pr.ETA.Milliseconds()})
		}
	}
	precision := "device"
	if c, ok := b.(*cpu.Backend); ok {
		precision = string(c.Precision())
	}
	e.log.Info("generating", "precision", precision, "model", g.model, "layout", p.Model().Layout, "family", p.Model().Family, "device", res.Device,
		"backend", b.Name(), "width", req.Width, "height", req.Height, "steps", req.Steps, "sampler", req.Sampler, "seed", req.Seed)
	out, err := p.Generate(ctx, req, hooks)
	if err != nil {
		return err
	}
	t := out.Timings
	res.LoadMilliseconds, res.EncodeMilliseconds = t.Load.Milliseconds(), t.Encode.Milliseconds()
	res.DenoiseMilliseconds, res.DecodeMilliseconds = t.Denoise.Milliseconds(), t.Decode.Milliseconds()
	data, err := pipeline.ImagePNG(out.Image, req, string(p.Model().Family))
	if err != nil {
		return err
	}
	if err := pipeline.WriteFileAtomic(g.output, data); err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	res.OutputPath, res.SHA256 = g.output, hex.EncodeToString(sum[:])
	e.log.Info("wrote image", "path", g.output, "sha256", res.SHA256, "seconds", time.Since(start).Seconds())
	return nil
}

// withFamilyDefaults gives an SDXL model its native 1024×1024 when neither the command line
// nor the environment chose the size (the flags' defaults are SD 1.x's 512×512).
func withFamilyDefaults(fs *flag.FlagSet, req pipeline.Request, family checkpoint.Family) pipeline.Request {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	side := pipeline.DefaultSide(family)
	if !set["width"] {
		req.Width = side
	}
	if !set["height"] {
		req.Height = side
	}
	return req
}

// gcPercent is the garbage collector's target while generating.
const gcPercent = 5

// validateGenerate checks the flags before anything is loaded: a missing
// flag is a usage error (64), a value out of range invalid input (65).
func validateGenerate(g *generateFlags) error {
	switch {
	case g.model == "":
		return usageError{"--model is required"}
	case g.output == "":
		return usageError{"--output is required"}
	case !slices.Contains(cpu.Precisions, g.precision):
		return usageError{fmt.Sprintf("--precision %q: expected %s", g.precision, strings.Join(cpu.Precisions, ", "))}
	}
	if err := g.req.Validate(); err != nil {
		return invalidInput("--" + err.Error())
	}
	switch {
	case !strings.HasSuffix(strings.ToLower(g.output), ".png"):
		return invalidInput(fmt.Sprintf("--output %q: expected a .png file", g.output))
	case g.device != podcontract.DeviceAuto && g.device != podcontract.DeviceCPU && !gpuDevice.MatchString(g.device):
		return invalidInput(fmt.Sprintf("--device %q: expected auto, cpu or vulkan:N", g.device))
	}
	return nil
}

// invalidInput is a flag value that parsed but cannot be used (exit 65).
func invalidInput(msg string) error {
	return exitError{podcontract.ExitInvalidInput, errors.New(msg)}
}

func exitCodeOf(err error) int {
	var coded exitCoder
	var input *pipeline.InputError
	var model *pipeline.ModelError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return podcontract.ExitSuccess
	case errors.As(err, &coded):
		return coded.ExitCode()
	case errors.As(err, new(usageError)):
		return podcontract.ExitUsage
	case errors.As(err, &input):
		return podcontract.ExitInvalidInput
	case vulkan.IsDeviceLost(err):
		return podcontract.ExitDeviceError
	case errors.As(err, new(*backend.OutOfMemoryError)):
		// Before model errors: a weight that does not fit is reported
		// as a model error naming the tensor, but it is out of memory.
		return podcontract.ExitOutOfMemory
	case errors.As(err, &model):
		return podcontract.ExitModelError
	}
	return 1
}

// writeResult writes the result JSON. /dev/termination-log is written in
// place; other paths go through a temporary file and a rename.
func writeResult(path string, res generateResult) error {
	data, err := json.Marshal(res)
	if err != nil {
		return err
	}
	data = append(data, '\n')
	if st, err := os.Stat(path); err == nil && !st.Mode().IsRegular() || path == podcontract.ResultFile {
		return os.WriteFile(path, data, 0o644)
	}
	return pipeline.WriteFileAtomic(path, data)
}

// memoryLimit is the container's memory limit from cgroup v2 or v1, 0 when
// there is none.
func memoryLimit() int64 {
	for _, p := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		var v int64
		if _, err := fmt.Sscanf(strings.TrimSpace(string(data)), "%d", &v); err == nil && v > 0 && v < 1<<60 {
			return v
		}
	}
	return 0
}

// checkMemory fails with exit code 71 (out of memory) before any weight is converted when
// the container's memory limit cannot hold the largest phase (see
// hostMemoryNeed): the Go runtime cannot recover from an allocation
// failure later: it would crash with exit status 2, retried like any
// crash, without saying why. It also sets the garbage collector's soft
// limit a little under the container limit.
func checkMemory(m *checkpoint.Model, req pipeline.Request, b backend.Backend) error {
	limit := memoryLimit()
	if limit == 0 {
		return nil
	}
	debug.SetMemoryLimit(limit / 10 * 9)
	if need := hostMemoryNeed(m, req, memoryKindOf(b)); need > limit {
		return exitError{podcontract.ExitOutOfMemory, fmt.Errorf("a %dx%d image with this model needs about %d MiB, more than the container's memory limit of %d MiB", req.Width, req.Height, need>>20, limit>>20)}
	}
	return nil
}

// memoryKind is where a backend keeps weights and activations, which
// decides what the container's memory must hold.
type memoryKind int

const (
	// hostMemory: the CPU backend, float32 weights and activations.
	hostMemory memoryKind = iota
	// softwareDevice: Vulkan on lavapipe, whose device memory is the
	// process's: fp16 weights and activations.
	softwareDevice
	// gpuMemory: Vulkan on a GPU: the host holds only what passes
	// through on the way to the device.
	gpuMemory
)

func memoryKindOf(b backend.Backend) memoryKind {
	if vb, ok := b.(*vulkan.Backend); ok {
		if vb.Device().Software() {
			return softwareDevice
		}
		return gpuMemory
	}
	return hostMemory
}

// hostMemoryNeed is a rough bound on the container memory the largest
// phase needs. On the host (the CPU backend, or lavapipe's device memory)
// that is the largest network's weights (as stored on the CPU, which
// packs them without widening; fp16 on lavapipe) and the VAE's full-resolution blocks, which hold a few
// [H, W, 128..256] activations at once. A GPU backend streams each weight
// to the device through bounded staging, converting one non-fp16 weight
// at a time (float32 and fp16 copies: 6 bytes an element), and the host
// keeps only the latents and the image.
func hostMemoryNeed(m *checkpoint.Model, req pipeline.Request, kind memoryKind) int64 {
	var weights, stored, largest int64
	for _, c := range []checkpoint.Component{checkpoint.UNet, checkpoint.TextEncoder, checkpoint.TextEncoder2, checkpoint.VAE} {
		var n, bytes int64
		for _, name := range m.Names(c) {
			t, _ := m.Tensor(c, name)
			n += t.NumElements()
			bytes += t.NumElements() * t.DType.Size()
			largest = max(largest, t.NumElements())
		}
		weights = max(weights, n)
		stored = max(stored, bytes)
	}
	pixels := int64(req.Width) * int64(req.Height)
	// The Vulkan backend's staging: at most 64 MiB recorded before a
	// submit, in chunks of 16 MiB, kept pooled.
	const staging = 80 << 20
	switch kind {
	case softwareDevice:
		return 2*weights + pixels*256*2*4 + staging + 6*largest
	case gpuMemory:
		return staging + 6*largest + pixels*32
	}
	return stored + pixels*256*4*4
}
