package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
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
	model := flag.String("model", "", "checkpoint to measure (default: generate the full random model of --family, single-file fp16, into a temporary folder)")
	familyName := flag.String("family", "sd1", "family of the generated models: sd1 (SD 1.5) or sdxl (SDXL base 1.0, about 6.9 GB in fp16)")
	size := flag.Int("size", 0, "image width and height in pixels (default 512, 1024 for sdxl)")
	steps := flag.Int("steps", 3, "steps of the whole-generation measurement (at least 2, to time one step)")
	skipTotal := flag.Bool("skip-total", false, "skip the whole generations with the full model")
	skipTiny := flag.Bool("skip-tiny", false, "skip the tiny model's whole generations")
	skipPhases := flag.Bool("skip-phases", false, "skip the per-network measurements")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the in-process phases to this file")
	gcPercent := flag.Int("gc-percent", sdgenGCPercent, "garbage collector target percentage, as sdgen sets it")
	device := flag.String("device", "cpu", "backend to measure: cpu or vulkan:N")
	precisions := flag.String("precisions", "fp32,bf16", "comma-separated CPU precisions to measure (fp32, bf16, auto)")
	threads := flag.Int("threads", 2, "GOMAXPROCS (and so CPU workers) of this process and of every sdgen it runs")
	sdgen := flag.String("sdgen", "", "sdgen binary for the whole generations (default: built from this tree)")
	before := flag.String("before", "", "sdgen binary of an earlier version, run the same way for the before figures (it is given no --precision)")
	flag.Parse()
	family, err := testmodel.ParseFamily(*familyName)
	if err != nil {
		return fmt.Errorf("--family: %w", err)
	}
	if *size == 0 {
		*size = pipeline.DefaultSide(family)
	}
	if *steps < 2 {
		return fmt.Errorf("--steps %d: want at least 2", *steps)
	}
	runtime.GOMAXPROCS(*threads)
	debug.SetGCPercent(*gcPercent)
	fmt.Printf("GOMAXPROCS %d, %d CPUs online, load average %s\n", runtime.GOMAXPROCS(0), runtime.NumCPU(), loadAverage())

	tmp, err := os.MkdirTemp("", "bench-sdgen")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if *model == "" {
		start := time.Now()
		*model, err = testmodel.Generate(filepath.Join(tmp, "full"), testmodel.Options{Family: family, Size: testmodel.Full, Layout: checkpoint.SingleFile, Seed: 1})
		if err != nil {
			return err
		}
		fmt.Printf("generated full test model in %.1fs\n", time.Since(start).Seconds())
	}
	precs := strings.Split(*precisions, ",")
	if !*skipPhases {
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
		for _, prec := range precs {
			if err := phasesOn(*device, prec, family, *model, *size); err != nil {
				return err
			}
			if *device != "cpu" {
				break
			}
		}
	}
	if *skipTotal && *skipTiny {
		return nil
	}
	if *sdgen == "" {
		*sdgen = filepath.Join(tmp, "sdgen")
		if out, err := exec.Command("go", "build", "-o", *sdgen, "./cmd/sdgen").CombinedOutput(); err != nil {
			return fmt.Errorf("building sdgen: %v: %s", err, out)
		}
	}
	r := runner{dir: tmp, threads: *threads, device: *device}
	if !*skipTotal {
		var runs []*generation
		if *before != "" {
			g, err := r.generate("before", *before, "", *model, *size, *steps)
			if err != nil {
				return err
			}
			runs = append(runs, g)
		}
		for _, prec := range precs {
			g, err := r.generate("after "+prec, *sdgen, prec, *model, *size, *steps)
			if err != nil {
				return err
			}
			runs = append(runs, g)
		}
		comparePNGs(runs)
	}
	if !*skipTiny {
		tiny, err := testmodel.Generate(filepath.Join(tmp, "tiny"), testmodel.Options{Family: family, Size: testmodel.Tiny, Layout: checkpoint.Diffusers, Seed: 1})
		if err != nil {
			return err
		}
		var runs []*generation
		for _, prec := range precs {
			g, err := r.generate("tiny "+prec, *sdgen, prec, tiny, 64, 20)
			if err != nil {
				return err
			}
			runs = append(runs, g)
		}
		comparePNGs(runs)
	}
	return nil
}

// phasesOn opens a backend for device in the given CPU precision and
// measures the phases on it.
func phasesOn(device, precision string, family checkpoint.Family, model string, size int) error {
	b, err := openBackend(device, precision)
	if err != nil {
		return err
	}
	defer b.Close()
	if c, ok := b.(*cpu.Backend); ok {
		fmt.Printf("== in-process phases: backend %s, precision %s, %d workers, %dx%d\n", b.Name(), c.Precision(), c.Workers(), size, size)
	} else {
		fmt.Printf("== in-process phases: backend %s, %dx%d\n", b.Name(), size, size)
	}
	debug.FreeOSMemory()
	if family == checkpoint.SDXL {
		return phasesXL(b, model, size)
	}
	return phases(b, model, size)
}

// openBackend opens the backend --device names.
func openBackend(device, precision string) (backend.Backend, error) {
	if device == "cpu" {
		return cpu.New(cpu.Options{Precision: precision})
	}
	n, err := strconv.Atoi(strings.TrimPrefix(device, "vulkan:"))
	if err != nil || !strings.HasPrefix(device, "vulkan:") {
		return nil, fmt.Errorf("--device %q: expected cpu or vulkan:N", device)
	}
	return vulkan.New(vulkan.Options{Select: vulkan.Selector{Index: n}})
}

func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(data))[:3], " ")
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
	fmt.Printf("%-34s %8.2f GiB\n", "loaded weights (text+unet+vae)", float64(te.PackedBytes()+un.PackedBytes()+dec.PackedBytes())/(1<<30))
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

// resetPeak resets the kernel's peak RSS counter (VmHWM) so the next phase
// is measured on its own; it does nothing where /proc does not allow it.
func resetPeak() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }
