package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sdfleet/sdfleet/controllers/podcontract"
	"github.com/sdfleet/sdfleet/inference/backend"
	"github.com/sdfleet/sdfleet/inference/backend/vulkan/vk"
	"github.com/sdfleet/sdfleet/inference/checkpoint"
	"github.com/sdfleet/sdfleet/inference/models"
	"github.com/sdfleet/sdfleet/inference/pipeline"
	"github.com/sdfleet/sdfleet/inference/testmodel"
)

var (
	tinyOnce   sync.Once
	tinyPaths  map[checkpoint.Layout]string
	tinyErr    error
	tinyFolder string
)

// tinyModels generates the tiny test model in both layouts once per run.
func tinyModels(t *testing.T) map[checkpoint.Layout]string {
	t.Helper()
	tinyOnce.Do(func() {
		tinyFolder, tinyErr = os.MkdirTemp("", "sdgen-generate")
		if tinyErr != nil {
			return
		}
		tinyPaths = map[checkpoint.Layout]string{}
		for _, l := range []checkpoint.Layout{checkpoint.Diffusers, checkpoint.SingleFile} {
			var p string
			p, tinyErr = testmodel.Generate(filepath.Join(tinyFolder, string(l)), testmodel.Options{Size: testmodel.Tiny, Layout: l, Seed: 3})
			if tinyErr != nil {
				return
			}
			tinyPaths[l] = p
		}
	})
	if tinyErr != nil {
		t.Fatal(tinyErr)
	}
	return tinyPaths
}

func TestMain(m *testing.M) {
	code := m.Run()
	if tinyFolder != "" {
		_ = os.RemoveAll(tinyFolder)
	}
	os.Exit(code)
}

type generated struct {
	code           int
	stdout, stderr string
	png            []byte
	result         generateResult
	resultRaw      string
}

func generate(t *testing.T, args ...string) generated {
	t.Helper()
	dir := t.TempDir()
	out := filepath.Join(dir, "sub", "img.png")
	resFile := filepath.Join(dir, "result.json")
	full := append([]string{"generate", "--output", out, "--result-file", resFile}, args...)
	var stdout, stderr bytes.Buffer
	g := generated{code: run(full, &stdout, &stderr), stdout: stdout.String(), stderr: stderr.String()}
	g.png, _ = os.ReadFile(out)
	raw, err := os.ReadFile(resFile)
	if err != nil {
		t.Fatalf("sdgen %q: no result file: %v (stderr %s)", args, err, g.stderr)
	}
	g.resultRaw = string(raw)
	if err := json.Unmarshal(raw, &g.result); err != nil {
		t.Fatalf("result file %q: %v", raw, err)
	}
	return g
}

func small(model string, extra ...string) []string {
	return append([]string{"--model", model, "--prompt", "a red fox", "--negative-prompt", "blurry", "--width", "64", "--height", "48", "--steps", "3", "--seed", "11"}, extra...)
}

func TestGenerateBothLayoutsSameBytes(t *testing.T) {
	models := tinyModels(t)
	a := generate(t, small(models[checkpoint.Diffusers])...)
	b := generate(t, small(models[checkpoint.SingleFile])...)
	for _, g := range []generated{a, b} {
		if g.code != 0 {
			t.Fatalf("exit %d: %s", g.code, g.stderr)
		}
	}
	if len(a.png) == 0 || !bytes.Equal(a.png, b.png) {
		t.Fatalf("the layouts gave different or empty PNGs (%d and %d bytes)", len(a.png), len(b.png))
	}
	img, err := png.Decode(bytes.NewReader(a.png))
	if err != nil || img.Bounds().Dx() != 64 || img.Bounds().Dy() != 48 {
		t.Fatalf("PNG: %v, bounds %v", err, img.Bounds())
	}
	for _, text := range []string{"tEXtparameters\x00a red fox\nNegative prompt: blurry\nSteps: 3, Sampler: DDIM, CFG scale: 7.5, Seed: 11, Size: 64x48", `tEXtsdfleet` + "\x00" + `{"prompt":"a red fox"`} {
		if !bytes.Contains(a.png, []byte(text)) {
			t.Errorf("PNG lacks text chunk %q", text)
		}
	}

	// The result file is what the controller parses.
	r, ok := podcontract.ParseResult(a.resultRaw)
	if !ok {
		t.Fatalf("result %q is not a podcontract.Result", a.resultRaw)
	}
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(a.png)
	if r.SHA256 != hex.EncodeToString(sum[:]) || r.Device != "cpu" || !strings.HasSuffix(r.OutputPath, "sub/img.png") || r.Error != "" {
		t.Errorf("result %+v does not describe the PNG", r)
	}
	res := a.result
	if res.Width != 64 || res.Height != 48 || res.Seed != 11 || res.Steps != 3 || res.Sampler != "ddim" || res.ExitCode != 0 {
		t.Errorf("result settings %+v", res)
	}
	if res.PeakHostMemoryBytes <= 0 || res.DenoiseMilliseconds < 0 {
		t.Errorf("result figures %+v", res)
	}

	// One JSON progress line per step on stdout.
	var steps []int
	sc := bufio.NewScanner(strings.NewReader(a.stdout))
	for sc.Scan() {
		var p progressLine
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil || p.Type != "progress" || p.Steps != 3 {
			t.Fatalf("stdout line %q is not a progress line", sc.Text())
		}
		steps = append(steps, p.Step)
	}
	if len(steps) != 3 || steps[0] != 1 || steps[2] != 3 {
		t.Errorf("progress steps %v, want 1 2 3", steps)
	}
}

func TestGenerateSeeds(t *testing.T) {
	model := tinyModels(t)[checkpoint.Diffusers]
	a := generate(t, small(model, "--seed", "5", "--sampler", "euler-ancestral")...)
	b := generate(t, small(model, "--seed", "5", "--sampler", "euler-ancestral")...)
	c := generate(t, small(model, "--seed", "6", "--sampler", "euler-ancestral")...)
	if a.code != 0 || b.code != 0 || c.code != 0 {
		t.Fatalf("exit codes %d %d %d: %s", a.code, b.code, c.code, a.stderr+c.stderr)
	}
	if !bytes.Equal(a.png, b.png) {
		t.Error("the same seed gave different bytes")
	}
	ia, _ := png.Decode(bytes.NewReader(a.png))
	ic, _ := png.Decode(bytes.NewReader(c.png))
	same := true
	for y := 0; y < 48 && same; y++ {
		for x := 0; x < 64; x++ {
			if ia.At(x, y) != ic.At(x, y) {
				same = false
				break
			}
		}
	}
	if same {
		t.Error("different seeds gave the same image")
	}
}

func TestGenerateEnvironmentVariables(t *testing.T) {
	model := tinyModels(t)[checkpoint.SingleFile]
	t.Setenv("SDFLEET_MODEL", model)
	t.Setenv("SDFLEET_PROMPT", "a cat")
	t.Setenv("SDFLEET_STEPS", "2")
	t.Setenv("SDFLEET_WIDTH", "32")
	t.Setenv("SDFLEET_HEIGHT", "40")
	t.Setenv(podcontract.EnvGPUUUID, "GPU-1234")
	// No Vulkan driver: the pod's GPU is unusable and auto falls back.
	t.Setenv("VK_ICD_FILENAMES", "/nonexistent/icd.json")
	t.Setenv("VK_DRIVER_FILES", "/nonexistent/icd.json")
	g := generate(t, "--steps", "1")
	if g.code != 0 {
		t.Fatalf("exit %d: %s", g.code, g.stderr)
	}
	if g.result.Steps != 1 || g.result.Width != 32 || g.result.Height != 40 {
		t.Errorf("result %+v: want steps 1 from the flag, size 32x40 from the environment", g.result)
	}
	if !strings.Contains(g.stderr, "running on the CPU") || !strings.Contains(g.stderr, "GPU-1234") {
		t.Errorf("no CPU fallback line naming the GPU in %q", g.stderr)
	}
	if g.result.GPUUUID != "GPU-1234" {
		t.Errorf("result names GPU %q, want the pod's GPU-1234", g.result.GPUUUID)
	}
}

func TestGenerateExitCodes(t *testing.T) {
	model := tinyModels(t)[checkpoint.Diffusers]
	corrupt := filepath.Join(t.TempDir(), "corrupt.safetensors")
	data, err := os.ReadFile(tinyModels(t)[checkpoint.SingleFile])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(corrupt, data[:len(data)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "absent")
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"empty prompt", []string{"--model", model, "--prompt", " "}, podcontract.ExitInvalidInput, "--prompt"},
		{"width not a multiple of 8", small(model, "--width", "65"), podcontract.ExitInvalidInput, "--width"},
		{"height zero", small(model, "--height", "0"), podcontract.ExitInvalidInput, "--height"},
		{"unknown sampler", small(model, "--sampler", "plms"), podcontract.ExitInvalidInput, "--sampler"},
		{"bad rng", small(model, "--rng", "xorshift"), podcontract.ExitInvalidInput, "--rng"},
		{"bad device", small(model, "--device", "tpu"), podcontract.ExitInvalidInput, "--device"},
		{"bad precision", small(model, "--precision", "fp8"), podcontract.ExitUsage, "--precision \"fp8\": expected auto, fp32, bf16"},
		{"bad number", small(model, "--steps", "many"), podcontract.ExitUsage, "flag -steps"},
		{"unknown flag", small(model, "--colour", "red"), podcontract.ExitUsage, "-colour"},
		{"extra argument", small(model, "fox"), podcontract.ExitUsage, "unexpected arguments"},
		{"no model", []string{"--prompt", "x"}, podcontract.ExitUsage, "--model"},
		{"not a PNG", small(model, "--output", "out.jpg"), podcontract.ExitInvalidInput, "--output"},
		{"missing model", small(missing), podcontract.ExitModelError, missing},
		{"corrupt model", small(corrupt), podcontract.ExitModelError, corrupt},
		{"no GPU backend", small(model, "--device", "cuda:0"), podcontract.ExitDeviceError, "cuda:0"},
	}
	for _, c := range cases {
		g := generate(t, c.args...)
		if g.code != c.code || !strings.Contains(g.stderr, c.want) {
			t.Errorf("%s: exit %d, stderr %q; want exit %d mentioning %q", c.name, g.code, g.stderr, c.code, c.want)
		}
		if g.result.ExitCode != c.code || !strings.Contains(g.result.Error, c.want) || len(g.png) != 0 {
			t.Errorf("%s: result %+v, want exit code %d and an error mentioning %q, and no image", c.name, g.result, c.code, c.want)
		}
	}
}

func TestGenerateHelpDocumentsExitCodesAndEnvironment(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"generate", "--help"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"$SDFLEET_PROMPT", "$SDFLEET_NEGATIVE_PROMPT", "$SDFLEET_RESULT_FILE", "65  invalid input", "66  model error", "69  device error", "71  out of memory"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("generate --help lacks %q", want)
		}
	}
}

func TestExitCodeOf(t *testing.T) {
	cases := []struct {
		err  error
		want int
	}{
		{nil, 0},
		{flag.ErrHelp, 0},
		{usageError{"--steps many"}, podcontract.ExitUsage},
		{fmt.Errorf("wrapped: %w", usageError{"--bogus"}), podcontract.ExitUsage},
		{invalidInput("--width 65"), podcontract.ExitInvalidInput},
		{fmt.Errorf("wrapped: %w", &pipeline.InputError{Field: "width", Message: "odd"}), podcontract.ExitInvalidInput},
		{&pipeline.ModelError{Path: "m", Err: errors.New("bad")}, podcontract.ExitModelError},
		{exitError{podcontract.ExitOutOfMemory, errors.New("too big")}, podcontract.ExitOutOfMemory},
		{exitError{podcontract.ExitDeviceError, errors.New("no gpu")}, podcontract.ExitDeviceError},
		{fmt.Errorf("step 3: %w", &backend.OutOfMemoryError{What: "activation [2 64 64 320]", Bytes: 10 << 20, Device: "gpu"}), podcontract.ExitOutOfMemory},
		{&pipeline.ModelError{Path: "m", Err: &models.WeightError{Tensor: "unet/conv_in", Err: &backend.OutOfMemoryError{What: "weight", Device: "gpu"}}}, podcontract.ExitOutOfMemory},
		{fmt.Errorf("step 2: %w", &vk.Error{Call: "vkQueueSubmit", Result: vk.ErrorDeviceLost}), podcontract.ExitDeviceError},
		{&pipeline.NonFiniteError{Step: 3, Steps: 20, Where: "latents"}, 1},
		{context.Canceled, 1},
	}
	for _, c := range cases {
		if got := exitCodeOf(c.err); got != c.want {
			t.Errorf("exitCodeOf(%v) = %d, want %d", c.err, got, c.want)
		}
	}
}

// A prompt is a flag's value, never a flag: `--prompt --help` (or -h, or
// something that looks like another flag) is the text of the image.
func TestGeneratePromptThatLooksLikeAFlag(t *testing.T) {
	model := tinyModels(t)[checkpoint.Diffusers]
	for _, prompt := range []string{"--help", "-h", "-help", "--steps=1"} {
		g := generate(t, "--model", model, "--prompt", prompt, "--width", "64", "--height", "48", "--steps", "2", "--seed", "11")
		if g.code != 0 {
			t.Fatalf("prompt %q: exit %d, stderr %s", prompt, g.code, g.stderr)
		}
		if strings.Contains(g.stdout, "Usage:") || len(g.png) == 0 || g.result.Validate() != nil {
			t.Fatalf("prompt %q: printed help or wrote no image: stdout %q, result %+v", prompt, g.stdout, g.result)
		}
		if !bytes.Contains(g.png, []byte(prompt+"\nSteps: 2")) {
			t.Errorf("prompt %q: the PNG's parameters do not start with the prompt", prompt)
		}
	}
	// In a flag's place, --help is still help, and writes nothing.
	out := filepath.Join(t.TempDir(), "help.png")
	var stdout, stderr bytes.Buffer
	code := run([]string{"generate", "--model", model, "--prompt", "a fox", "--output", out, "--help"}, &stdout, &stderr)
	if _, err := os.Stat(out); code != 0 || !strings.Contains(stdout.String(), "Usage: sdgen generate") || err == nil {
		t.Errorf("--help after the flags: exit %d, stdout %q, stat of the PNG: %v", code, stdout.String(), err)
	}
}

// The memory check budgets what each backend keeps in the container: the
// CPU its weights as stored and float32 activations, lavapipe fp16 ones
// (its device memory is the process's), a GPU only staging, one weight's
// conversion and the image.
func TestHostMemoryNeedFollowsTheBackend(t *testing.T) {
	m, err := checkpoint.Open(tinyModels(t)[checkpoint.Diffusers], checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	req := pipeline.Request{Width: 512, Height: 512}
	var stored, largest int64
	for _, c := range []checkpoint.Component{checkpoint.UNet, checkpoint.TextEncoder, checkpoint.TextEncoder2, checkpoint.VAE} {
		var bytes int64
		for _, name := range m.Names(c) {
			tt, _ := m.Tensor(c, name)
			bytes += tt.NumElements() * tt.DType.Size()
			largest = max(largest, tt.NumElements())
		}
		stored = max(stored, bytes)
	}
	cpuNeed := hostMemoryNeed(m, req, hostMemory)
	if want := stored + 512*512*256*4*4; cpuNeed != want {
		t.Errorf("CPU: %d bytes, want the weights as stored and VAE activations, %d", cpuNeed, want)
	}
	soft, gpu := hostMemoryNeed(m, req, softwareDevice), hostMemoryNeed(m, req, gpuMemory)
	if !(gpu < soft && soft < cpuNeed) {
		t.Errorf("GPU %d, lavapipe %d, CPU %d bytes: want each below the next", gpu, soft, cpuNeed)
	}
	if gpu != 80<<20+6*largest+512*512*32 {
		t.Errorf("GPU: %d bytes, want staging, one weight's conversion and the image only", gpu)
	}
}

// TestGenerateSingleFileWithoutTokenizerFolder runs sdgen on a single-file
// checkpoint with CLIP's embedding and no tokenizer folder, as real
// single-file SD 1.x checkpoints are shared.
func TestGenerateSingleFileWithoutTokenizerFolder(t *testing.T) {
	path, err := testmodel.Generate(t.TempDir(), testmodel.Options{Size: testmodel.Tiny, Layout: checkpoint.SingleFile, Seed: 5, CLIPVocab: true})
	if err != nil {
		t.Fatal(err)
	}
	g := generate(t, small(path)...)
	if g.code != 0 {
		t.Fatalf("exit %d: %s", g.code, g.stderr)
	}
	img, err := png.Decode(bytes.NewReader(g.png))
	if err != nil || img.Bounds().Dx() != 64 || img.Bounds().Dy() != 48 {
		t.Fatalf("PNG: %v", err)
	}
}

// TestGenerateBF16MatchesFP32 compares the tiny model's image in bf16
// precision with the fp32 one. bf16 keeps 8 significant bits, so every
// rounding of a weight or activation errs by at most 2⁻⁹ of it; over the
// many independent roundings in each dot product these errors add in
// quadrature rather than coherently, and the difference measured here is
// an RMS of about 2 levels in 255 (41 dB). 35 dB, an RMS of 4.5 levels
// (1.8% of the range), leaves room for other seeds and kernels while
// catching faults in the bf16 layout: pairing each A value with the other
// row of its pair gives 9 dB.
func TestGenerateBF16MatchesFP32(t *testing.T) {
	model := tinyModels(t)[checkpoint.Diffusers]
	fp32 := generate(t, small(model, "--device", "cpu", "--precision", "fp32")...)
	bf16 := generate(t, small(model, "--device", "cpu", "--precision", "bf16")...)
	for _, g := range []generated{fp32, bf16} {
		if g.code != 0 {
			t.Fatalf("exit %d: %s", g.code, g.stderr)
		}
	}
	if !strings.Contains(bf16.stderr, `"precision"="bf16"`) || !strings.Contains(fp32.stderr, `"precision"="fp32"`) {
		t.Fatalf("the log does not name the precisions asked for:\n%s\n%s", fp32.stderr, bf16.stderr)
	}
	if bytes.Equal(fp32.png, bf16.png) {
		t.Fatal("bf16 and fp32 gave identical bytes: bf16 is not in use")
	}
	p := psnr(t, fp32.png, bf16.png)
	if p < 35 {
		t.Errorf("PSNR %.1f dB between bf16 and fp32, want at least 35", p)
	}
	t.Logf("PSNR %.1f dB between bf16 and fp32", p)
}
