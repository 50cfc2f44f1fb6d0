package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// runner runs `sdgen generate` as its own process, the way an image pod
// does, so that start-up, loading and the garbage collector's settings are
// those of production.
type runner struct {
	dir     string
	threads int
	device  string
}

// generation is one sdgen run's figures.
type generation struct {
	label string
	png   []byte
	// firstStep is the time from starting the process to the start of the
	// first denoising step (the first progress line's arrival less the
	// elapsed time it reports), total to its exit; step is the second
	// step's duration.
	firstStep, total, step time.Duration
	// cpu is the process's user and system time: on a shared machine it
	// says how much of total the process itself spent.
	cpu    time.Duration
	result struct {
		LoadMilliseconds    int64 `json:"loadMilliseconds"`
		EncodeMilliseconds  int64 `json:"encodeMilliseconds"`
		DenoiseMilliseconds int64 `json:"denoiseMilliseconds"`
		DecodeMilliseconds  int64 `json:"decodeMilliseconds"`
		PeakHostMemoryBytes int64 `json:"peakHostMemoryBytes"`
		// PeakMemoryBytes is what sdgen called the peak host memory
		// before it reported device memory too, for --before binaries.
		PeakMemoryBytes int64 `json:"peakMemoryBytes"`
	}
}

// generate runs bin on model and prints its figures. precision "" passes
// no --precision (an sdgen from before the flag).
func (r runner) generate(label, bin, precision, model string, size, steps int) (*generation, error) {
	slug := strings.ReplaceAll(label, " ", "-")
	out := filepath.Join(r.dir, slug+".png")
	resFile := filepath.Join(r.dir, slug+".json")
	args := []string{"generate", "--model", model, "--prompt", "a photo of a red cat in the forest", "--negative-prompt", "dark",
		"--width", fmt.Sprint(size), "--height", fmt.Sprint(size), "--steps", fmt.Sprint(steps), "--seed", "1",
		"--sampler", "dpmpp-2m-karras", "--device", r.device, "--output", out, "--result-file", resFile}
	if precision != "" {
		args = append(args, "--precision", precision)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), fmt.Sprintf("GOMAXPROCS=%d", r.threads))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	g := &generation{label: label}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	var arrivals []time.Duration
	var elapsed []int64
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		var p struct {
			Type                string `json:"type"`
			ElapsedMilliseconds int64  `json:"elapsedMilliseconds"`
		}
		if json.Unmarshal(sc.Bytes(), &p) == nil && p.Type == "progress" {
			arrivals = append(arrivals, time.Since(start))
			elapsed = append(elapsed, p.ElapsedMilliseconds)
		}
	}
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("%s: %s %s: %v\n%s", label, bin, strings.Join(args, " "), err, stderr.String())
	}
	g.total = time.Since(start)
	g.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	if len(arrivals) < 2 {
		return nil, fmt.Errorf("%s: %d progress lines, want at least 2", label, len(arrivals))
	}
	// A progress line's elapsed time counts from the start of the first
	// step (after the UNet is loaded).
	g.step = time.Duration(elapsed[1]-elapsed[0]) * time.Millisecond
	g.firstStep = arrivals[0] - time.Duration(elapsed[0])*time.Millisecond
	raw, err := os.ReadFile(resFile)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(raw, &g.result); err != nil {
		return nil, fmt.Errorf("%s: result %s: %w", label, raw, err)
	}
	if g.png, err = os.ReadFile(out); err != nil {
		return nil, err
	}
	res := g.result
	if res.PeakHostMemoryBytes == 0 {
		res.PeakHostMemoryBytes = res.PeakMemoryBytes
	}
	if res.PeakHostMemoryBytes == 0 {
		return nil, fmt.Errorf("%s: result %s reports no peak host memory", label, raw)
	}
	fmt.Printf("%-12s %dx%d, %d steps, GOMAXPROCS %d: load %.2fs, encode %.2fs, guided step %.2fs (mean %.2fs), decode %.2fs; start to first step %.2fs; total %.2fs wall, %.2fs cpu; peak RSS %.2f GiB\n",
		label, size, size, steps, r.threads, ms(res.LoadMilliseconds), ms(res.EncodeMilliseconds), g.step.Seconds(),
		ms(res.DenoiseMilliseconds)/float64(steps), ms(res.DecodeMilliseconds), g.firstStep.Seconds(), g.total.Seconds(), g.cpu.Seconds(),
		float64(res.PeakHostMemoryBytes)/(1<<30))
	return g, nil
}

func ms(v int64) float64 { return float64(v) / 1000 }

// comparePNGs prints the PSNR of every run's image against the first.
func comparePNGs(runs []*generation) {
	for _, g := range runs[min(1, len(runs)):] {
		p, err := psnr(runs[0].png, g.png)
		if err != nil {
			fmt.Printf("PSNR %s vs %s: %v\n", g.label, runs[0].label, err)
			continue
		}
		fmt.Printf("PSNR %s vs %s: %.1f dB\n", g.label, runs[0].label, p)
	}
}

// psnr compares two 8-bit PNGs of the same size over their RGB channels;
// identical images give +Inf.
func psnr(a, b []byte) (float64, error) {
	ia, err := png.Decode(bytes.NewReader(a))
	if err != nil {
		return 0, err
	}
	ib, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		return 0, err
	}
	if ia.Bounds() != ib.Bounds() {
		return 0, fmt.Errorf("sizes %v and %v differ", ia.Bounds(), ib.Bounds())
	}
	var sum float64
	var n int
	bd := ia.Bounds()
	for y := bd.Min.Y; y < bd.Max.Y; y++ {
		for x := bd.Min.X; x < bd.Max.X; x++ {
			r1, g1, b1, _ := ia.At(x, y).RGBA()
			r2, g2, b2, _ := ib.At(x, y).RGBA()
			for _, d := range []float64{float64(r1>>8) - float64(r2>>8), float64(g1>>8) - float64(g2>>8), float64(b1>>8) - float64(b2>>8)} {
				sum += d * d
				n++
			}
		}
	}
	if sum == 0 {
		return math.Inf(1), nil
	}
	return 10 * math.Log10(255*255/(sum/float64(n))), nil
}
