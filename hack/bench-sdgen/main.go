package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sdfleet/sdfleet/inference/backend"
	"github.com/sdfleet/sdfleet/inference/backend/cpu"
	"github.com/sdfleet/sdfleet/inference/backend/vulkan"
	"github.com/sdfleet/sdfleet/inference/checkpoint"
	"github.com/sdfleet/sdfleet/inference/models"
	"github.com/sdfleet/sdfleet/inference/models/clip"
	"github.com/sdfleet/sdfleet/inference/models/unet"
	"github.com/sdfleet/sdfleet/inference/models/vae"
	"github.com/sdfleet/sdfleet/inference/pipeline"
	"github.com/sdfleet/sdfleet/inference/testmodel"
)

// sdgenGCPercent is the garbage collector setting of `sdgen generate`.
const sdgenGCPercent = 5

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench-sdgen:", err)
		os.Exit(1)
	}
}

func run() error {
	model := flag.String("model", "", "checkpoint to measure (default: generate the full random model of --family into a temporary folder)")
	familyName := flag.String("family", "sd1", "family of the generated models: sd1 (SD 1.5) or sdxl (SDXL base 1.0, about 6.9 GB in fp16)")
	size := flag.Int("size", 0, "image width and height in pixels (default 512, 1024 for sdxl)")
	steps := flag.Int("steps", 20, "steps of the whole-generation measurement")
	skipTotal := flag.Bool("skip-total", false, "skip the whole generation with the full model")
	skipTiny := flag.Bool("skip-tiny", false, "skip the tiny model's whole generation")
	skipPhases := flag.Bool("skip-phases", false, "skip the per-network measurements")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	gcPercent := flag.Int("gc-percent", sdgenGCPercent, "garbage collector target percentage, as sdgen sets it")
	device := flag.String("device", "cpu", "backend to measure: cpu or vulkan:N")
	flag.Parse()
	family, err := testmodel.ParseFamily(*familyName)
	if err != nil {
		return fmt.Errorf("--family: %w", err)
	}
	if *size == 0 {
		*size = pipeline.DefaultSide(family)
	}
	debug.SetGCPercent(*gcPercent)
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}

	tmp, err := os.MkdirTemp("", "bench-sdgen")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	b, err := openBackend(*device)
	if err != nil {
		return err
	}
	defer b.Close()
	if c, ok := b.(*cpu.Backend); ok {
		fmt.Printf("backend %s, %d workers, %dx%d\n", b.Name(), c.Workers(), *size, *size)
	} else {
		fmt.Printf("backend %s, %dx%d\n", b.Name(), *size, *size)
	}

	name := "given"
	if *model == "" {
		name = "full"
		start := time.Now()
		*model, err = testmodel.Generate(filepath.Join(tmp, "full"), testmodel.Options{Family: family, Size: testmodel.Full, Layout: checkpoint.Diffusers, Seed: 1})
		if err != nil {
			return err
		}
		fmt.Printf("generated full test model in %.1fs\n", time.Since(start).Seconds())
	}
	if !*skipPhases {
		measure := phases
		if family == checkpoint.SDXL {
			measure = phasesXL
		}
		if err := measure(b, *model, *size); err != nil {
			return err
		}
	}
	if !*skipTotal {
		if err := whole(b, name, *model, *size, *steps); err != nil {
			return err
		}
	}
	if !*skipTiny {
		tiny, err := testmodel.Generate(filepath.Join(tmp, "tiny"), testmodel.Options{Family: family, Size: testmodel.Tiny, Layout: checkpoint.Diffusers, Seed: 1})
		if err != nil {
			return err
		}
		if err := whole(b, "tiny", tiny, *size, *steps); err != nil {
			return err
		}
	}
	return nil
}

// openBackend opens the backend --device names.
func openBackend(device string) (backend.Backend, error) {
	if device == "cpu" {
		return cpu.New(cpu.Options{})
	}
	n, err := strconv.Atoi(strings.TrimPrefix(device, "vulkan:"))
	if err != nil || !strings.HasPrefix(device, "vulkan:") {
		return nil, fmt.Errorf("--device %q: expected cpu or vulkan:N", device)
	}
	return vulkan.New(vulkan.Options{Select: vulkan.Selector{Index: n}})
}

// timed prints the wall time of f and the CPU time the process spent in
// it: on a shared machine the wall time stretches with other load, while
// CPU time divided by the workers estimates the wall time on idle cores.
func timed(label string, f func() error) error {
	start, cpu0 := time.Now(), cpuTime()
	if err := f(); err != nil {
		return fmt.Errorf("%s: %w", label, err)
	}
	fmt.Printf("%-34s %8.2fs wall %8.2fs cpu\n", label, time.Since(start).Seconds(), (cpuTime() - cpu0).Seconds())
	return nil
}

// cpuTime is the user plus system CPU time of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// phases loads each network and times one evaluation of each.
func phases(b backend.Backend, path string, size int) error {
	resetPeak()
	var ck *checkpoint.Model
	if err := timed("open checkpoint", func() (err error) {
		ck, err = checkpoint.Open(path, checkpoint.Options{})
		return err
	}); err != nil {
		return err
	}
	defer ck.Close()
	var te *clip.Model
	var un *unet.Model
	var dec *vae.Decoder
	if err := timed("load text encoder", func() (err error) {
		te, err = clip.New(b, models.FromCheckpoint(ck, checkpoint.TextEncoder), ck.TextEncoder, clip.Options{})
		return err
	}); err != nil {
		return err
	}
	if err := timed("load unet", func() (err error) {
		un, err = unet.New(b, models.FromCheckpoint(ck, checkpoint.UNet), ck.UNet)
		return err
	}); err != nil {
		return err
	}
	if err := timed("load vae decoder", func() (err error) {
		dec, err = vae.New(b, models.FromCheckpoint(ck, checkpoint.VAE), ck.VAE)
		return err
	}); err != nil {
		return err
	}
	fmt.Printf("%-34s %8.2f GiB\n", "packed weights (text+unet+vae)", float64(te.PackedBytes()+un.PackedBytes()+dec.PackedBytes())/(1<<30))
	ids := make([][]int, 2)
	for i := range ids {
		ids[i] = make([]int, 77)
		for j := range ids[i] {
			ids[i][j] = (j*31 + i) % ck.TextEncoder.VocabSize
		}
	}
	var emb backend.Tensor
	if err := timed("text encoder (batch 2)", func() (err error) {
		if emb, err = te.Encode(ids); err != nil {
			return err
		}
		return b.Sync()
	}); err != nil {
		return err
	}
	defer b.Release(emb)
	r := rand.New(rand.NewPCG(1, 1))
	lat := size / 8
	noise := make([]float32, 2*lat*lat*ck.UNet.InChannels)
	for i := range noise {
		noise[i] = float32(r.NormFloat64())
	}
	work := backend.NewScope(b)
	defer work.Release()
	x, err := work.Upload(noise, 2, lat, lat, ck.UNet.InChannels)
	if err != nil {
		return err
	}
	if err := timed("unet step with guidance (batch 2)", func() error {
		pred, err := un.Forward(x, 951, emb)
		if err != nil {
			return err
		}
		defer b.Release(pred)
		return b.Sync()
	}); err != nil {
		return err
	}
	one, err := work.Upload(noise[:lat*lat*ck.UNet.InChannels], 1, lat, lat, ck.UNet.InChannels)
	if err != nil {
		return err
	}
	if err := timed("vae decode", func() error {
		_, err := dec.Decode(one)
		return err
	}); err != nil {
		return err
	}
	fmt.Printf("%-34s %8.2f GiB\n", "peak RSS, all networks loaded", float64(pipeline.PeakRSS())/(1<<30))
	return nil
}

// whole runs a complete generation through the pipeline.
func whole(b backend.Backend, name, path string, size, steps int) error {
	debug.FreeOSMemory()
	resetPeak()
	start, cpu0 := time.Now(), cpuTime()
	p, err := pipeline.Open(path, b, pipeline.Options{})
	if err != nil {
		return err
	}
	defer p.Close()
	req := pipeline.Request{Prompt: "a photo of a red cat in the forest", NegativePrompt: "dark", Width: size, Height: size,
		Steps: steps, Guidance: 7.5, Sampler: "dpmpp-2m-karras", Seed: 1}
	out, err := p.Generate(context.Background(), req, pipeline.Hooks{Progress: func(pr pipeline.Progress) {
		fmt.Fprintf(os.Stderr, "  %s step %d/%d, %.1fs\n", name, pr.Step, pr.Steps, pr.Elapsed.Seconds())
	}})
	if err != nil {
		return err
	}
	t := out.Timings
	fmt.Printf("%s model, %d steps: total %.2fs wall, %.2fs cpu (load %.2fs, encode %.2fs, denoise %.2fs = %.2fs/step, decode %.2fs), peak RSS %.2f GiB\n",
		name, steps, time.Since(start).Seconds(), (cpuTime() - cpu0).Seconds(), t.Load.Seconds(), t.Encode.Seconds(), t.Denoise.Seconds(),
		t.Denoise.Seconds()/float64(steps), t.Decode.Seconds(), float64(pipeline.PeakRSS())/(1<<30))
	return nil
}

// resetPeak resets the kernel's peak RSS counter (VmHWM) so the next phase
// is measured on its own; it does nothing where /proc does not allow it.
func resetPeak() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }
