package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/sdfleet/sdfleet/inference/backend"
	"github.com/sdfleet/sdfleet/inference/backend/cpu"
	"github.com/sdfleet/sdfleet/inference/tensor"
)

// shape is one M×N×K multiply: M activation rows, N outputs, K reduction.
type shape struct {
	M, N, K int
	Use     string
}

var sdShapes = []shape{
	{4096, 320, 2880, "3x3 conv 64x64x320"},
	{4096, 4096, 40, "attention scores 4096 tokens, width 40"},
	{1024, 640, 5760, "3x3 conv 32x32x640"},
	{64, 1280, 11520, "3x3 conv 8x8x1280"},
}

func (s shape) flops() float64 { return 2 * float64(s.M) * float64(s.N) * float64(s.K) }

// record is one output line; Kind says which fields are set.
type record struct {
	Kind string `json:"kind"`
	// cpu
	Flags      string `json:"flags,omitempty"`
	Model      string `json:"model,omitempty"`
	GOMAXPROCS int    `json:"gomaxprocs,omitempty"`
	Kernel     string `json:"kernel,omitempty"`
	// peak
	ISA            string  `json:"isa,omitempty"`
	PeakGFLOPS     float64 `json:"peak_gflops,omitempty"`
	PeakCoreGFLOPS float64 `json:"peak_one_core_gflops,omitempty"`
	// matmul
	M                   int     `json:"m,omitempty"`
	N                   int     `json:"n,omitempty"`
	K                   int     `json:"k,omitempty"`
	Use                 string  `json:"use,omitempty"`
	OursGFLOPS          float64 `json:"ours_gflops,omitempty"`
	OpenBLASEnvGFLOPS   float64 `json:"openblas_env_gflops,omitempty"`
	OpenBLASUnsetGFLOPS float64 `json:"openblas_unset_gflops,omitempty"`
	// OpenBLASGFLOPS has every environment measured, keyed "env", "unset"
	// and "coretype=NAME"; Best names the fastest.
	OpenBLASGFLOPS     map[string]float64 `json:"openblas_gflops,omitempty"`
	OpenBLASBest       string             `json:"openblas_best,omitempty"`
	OpenBLASBestGFLOPS float64            `json:"openblas_best_gflops,omitempty"`
	RatioToOpenBLAS    float64            `json:"ratio_to_openblas_best,omitempty"`
	FractionOfPeak     float64            `json:"fraction_of_peak,omitempty"`
	// openblas
	Env      string `json:"env,omitempty"`
	CoreType string `json:"openblas_coretype,omitempty"`
	CoreName string `json:"openblas_core,omitempty"`
	Config   string `json:"openblas_config,omitempty"`
	Library  string `json:"library,omitempty"`
	Error    string `json:"error,omitempty"`
	// conv / attention
	Milliseconds float64 `json:"ms,omitempty"`
	GFLOPS       float64 `json:"gflops,omitempty"`
	Detail       string  `json:"detail,omitempty"`
}

func main() {
	format := flag.String("format", "table", "output format: table or json (one object per line)")
	repeat := flag.Int("repeat", 5, "runs per figure; the best is reported")
	library := flag.String("openblas", "", "path of libopenblas.so.0 (default: Debian's libopenblas0-pthread)")
	kernel := flag.String("kernel", "", "force our micro-kernel: avx512, avx2 or purego")
	coretypes := flag.String("openblas-coretypes", "auto", "extra OPENBLAS_CORETYPE values to measure, comma separated; auto picks those this CPU supports, none skips them")
	child := flag.String("openblas-child", "", "internal: measure OpenBLAS only and print JSON lines labelled with this name")
	flag.Parse()
	if *format != "table" && *format != "json" {
		fmt.Fprintf(os.Stderr, "bench-cpu: --format %q: expected table or json\n", *format)
		os.Exit(2)
	}
	if *repeat < 1 {
		fmt.Fprintf(os.Stderr, "bench-cpu: --repeat %d: expected at least 1\n", *repeat)
		os.Exit(2)
	}
	if *child != "" {
		runOpenBLASChild(*child, *library, *repeat)
		return
	}
	if err := run(*format, *repeat, *library, *kernel, *coretypes); err != nil {
		fmt.Fprintln(os.Stderr, "bench-cpu:", err)
		os.Exit(1)
	}
}

func run(format string, repeat int, library, kernel, coretypes string) error {
	b, err := cpu.New(cpu.Options{Kernel: kernel})
	if err != nil {
		return err
	}
	defer b.Close()

	flags, model := cpuInfo()
	records := []record{{Kind: "cpu", Flags: flags, Model: model, GOMAXPROCS: runtime.GOMAXPROCS(0), Kernel: b.Name()}}

	// Other work on a shared machine only ever slows a run down, so every
	// figure is the best over rounds, and each round measures everything
	// (peak, ours, each OpenBLAS environment) so that a busy spell hurts
	// all of them rather than one.
	cases := make([]*matmulCase, len(sdShapes))
	for i, s := range sdShapes {
		if cases[i], err = newMatMulCase(b, s); err != nil {
			return err
		}
	}
	conv, err := newConvCase(b)
	if err != nil {
		return err
	}
	attn, err := newAttentionCase(b)
	if err != nil {
		return err
	}
	envs := openBLASEnvironments(coretypes)
	peak := record{Kind: "peak"}
	ours := make([]float64, len(sdShapes))
	oblas := openBLASResults{gflops: map[string]map[shape]float64{}}
	var convSeconds, attnSeconds float64
	for round := 0; round < repeat; round++ {
		p := measurePeak(3)
		peak.ISA = p.ISA
		peak.PeakGFLOPS = max(peak.PeakGFLOPS, p.PeakGFLOPS)
		peak.PeakCoreGFLOPS = max(peak.PeakCoreGFLOPS, p.PeakCoreGFLOPS)
		for i, c := range cases {
			// As many timed runs per round as all OpenBLAS children make
			// together: the best-of over more samples is luckier on a busy
			// machine, and OpenBLAS's column is the best of its children.
			seconds, err := best(2*len(envs), c.run)
			if err != nil {
				return err
			}
			ours[i] = max(ours[i], c.shape.flops()/seconds/1e9)
		}
		seconds, err := best(3, conv)
		if err != nil {
			return err
		}
		if round == 0 || seconds < convSeconds {
			convSeconds = seconds
		}
		if seconds, err = best(3, attn); err != nil {
			return err
		}
		if round == 0 || seconds < attnSeconds {
			attnSeconds = seconds
		}
		// OpenBLAS runs in children, so its threads are gone before ours
		// run again.
		r := openBLASRuns(library, 2, envs)
		if round == 0 {
			oblas.info = r.info
		}
		for label, bySize := range r.gflops {
			if oblas.gflops[label] == nil {
				oblas.gflops[label] = map[shape]float64{}
			}
			for s, g := range bySize {
				oblas.gflops[label][s] = max(oblas.gflops[label][s], g)
			}
		}
	}
	records = append(records, peak)
	records = append(records, oblas.info...)

	for i, s := range sdShapes {
		r := record{Kind: "matmul", M: s.M, N: s.N, K: s.K, Use: s.Use, OursGFLOPS: ours[i]}
		r.OpenBLASEnvGFLOPS = oblas.gflops["env"][s]
		r.OpenBLASUnsetGFLOPS = oblas.gflops["unset"][s]
		r.OpenBLASGFLOPS = map[string]float64{}
		for label, bySize := range oblas.gflops {
			if g := bySize[s]; g > 0 {
				r.OpenBLASGFLOPS[label] = g
				if g > r.OpenBLASBestGFLOPS {
					r.OpenBLASBestGFLOPS, r.OpenBLASBest = g, label
				}
			}
		}
		if r.OpenBLASBestGFLOPS > 0 {
			r.RatioToOpenBLAS = r.OursGFLOPS / r.OpenBLASBestGFLOPS
		}
		if peak.PeakGFLOPS > 0 {
			r.FractionOfPeak = r.OursGFLOPS / peak.PeakGFLOPS
		}
		records = append(records, r)
	}
	const convFlops = 2.0 * 64 * 64 * 320 * 320 * 9
	records = append(records, record{Kind: "conv3x3", Detail: "1x64x64x320 -> 320, stride 1, pad 1",
		Milliseconds: convSeconds * 1e3, GFLOPS: convFlops / convSeconds / 1e9})
	const attnFlops = 4.0 * 4096 * 4096 * 40 * 8
	records = append(records, record{Kind: "attention", Detail: "self, 4096 tokens x 8 heads x 40",
		Milliseconds: attnSeconds * 1e3, GFLOPS: attnFlops / attnSeconds / 1e9})

	if format == "json" {
		enc := json.NewEncoder(os.Stdout)
		for _, r := range records {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	}
	printTable(os.Stdout, records)
	return nil
}

// best runs fn repeat times and returns the shortest duration in seconds.
func best(repeat int, fn func() error) (float64, error) {
	fastest := 0.0
	for i := 0; i < repeat; i++ {
		start := time.Now()
		if err := fn(); err != nil {
			return 0, err
		}
		if s := time.Since(start).Seconds(); i == 0 || s < fastest {
			fastest = s
		}
	}
	return fastest, nil
}

func randomTensor(rng *rand.Rand, shape ...int) *tensor.Tensor {
	t := tensor.MustNew(shape...)
	for i := range t.Data {
		t.Data[i] = float32(rng.NormFloat64())
	}
	return t
}

// matmulCase is one of our multiplies, loaded and warmed up.
type matmulCase struct {
	shape shape
	run   func() error
}

func newMatMulCase(b *cpu.Backend, s shape) (*matmulCase, error) {
	rng := rand.New(rand.NewPCG(uint64(s.M), uint64(s.K)))
	w := randomTensor(rng, s.N, s.K)
	lin, err := b.LoadLinear(tensor.RawFromFloat32(w.Data, s.N, s.K), nil)
	if err != nil {
		return nil, err
	}
	x := randomTensor(rng, s.M, s.K)
	dst := tensor.MustNew(s.M, s.N)
	c := &matmulCase{shape: s, run: func() error { return b.MatMul(dst, x, lin, backend.Epilogue{}) }}
	return c, c.run()
}

// newConvCase prepares one 3×3 convolution at 64×64×320, SD 1.5's
// largest UNet resolution.
func newConvCase(b *cpu.Backend) (func() error, error) {
	const h, w, c = 64, 64, 320
	rng := rand.New(rand.NewPCG(5, 6))
	weight := randomTensor(rng, c, c, 3, 3)
	conv, err := b.LoadConv2D(tensor.RawFromFloat32(weight.Data, weight.Shape...), nil, 1)
	if err != nil {
		return nil, err
	}
	x := randomTensor(rng, 1, h, w, c)
	dst := tensor.MustNew(1, h, w, c)
	run := func() error { return b.Conv2D(dst, x, conv, backend.Epilogue{}) }
	return run, run()
}

// newAttentionCase prepares self-attention over 4096 tokens with 8 heads
// of width 40, the UNet's first transformer block.
func newAttentionCase(b *cpu.Backend) (func() error, error) {
	const tokens, heads, width = 4096, 8, 40
	rng := rand.New(rand.NewPCG(7, 8))
	q := randomTensor(rng, 1, tokens, heads*width)
	k := randomTensor(rng, 1, tokens, heads*width)
	v := randomTensor(rng, 1, tokens, heads*width)
	dst := tensor.MustNew(1, tokens, heads*width)
	run := func() error { return b.Attention(dst, q, k, v, backend.AttentionParams{Heads: heads}) }
	return run, run()
}

// measurePeak runs the FMA loop on one thread and then on GOMAXPROCS
// threads at once, each pinned to its OS thread.
func measurePeak(repeat int) record {
	loop, perIteration, isa := fmaLoop()
	r := record{Kind: "peak", ISA: isa}
	if loop == nil {
		return r
	}
	// Short runs, best of several: a long run on a shared machine measures
	// the other tenants as much as the FMA units.
	const iterations = 2_000_000
	measure := func(threads int) float64 {
		seconds, _ := best(4*repeat, func() error {
			var wg sync.WaitGroup
			for range threads {
				wg.Add(1)
				go func() {
					defer wg.Done()
					runtime.LockOSThread()
					defer runtime.UnlockOSThread()
					loop(iterations)
				}()
			}
			wg.Wait()
			return nil
		})
		return float64(threads) * iterations * perIteration / seconds / 1e9
	}
	loop(iterations / 10) // let the clock settle into the vector frequency
	r.PeakCoreGFLOPS = measure(1)
	r.PeakGFLOPS = measure(runtime.GOMAXPROCS(0))
	return r
}

// cpuInfo reads the first "flags" and "model name" lines of /proc/cpuinfo.
func cpuInfo() (flags, model string) {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown (" + err.Error() + ")", ""
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(key) {
		case "flags":
			if flags == "" {
				flags = strings.TrimSpace(value)
			}
		case "model name":
			if model == "" {
				model = strings.TrimSpace(value)
			}
		}
	}
	return flags, model
}

// openBLASResults gathers the child processes' figures by environment.
type openBLASResults struct {
	info   []record
	gflops map[string]map[shape]float64
}

// openBLASEnv is one environment OpenBLAS is measured in.
type openBLASEnv struct {
	label    string
	coretype string // "" keeps the environment's value, "-" removes it
}

// openBLASEnvironments lists the environment as configured, the
// environment with OPENBLAS_CORETYPE removed (OpenBLAS then detects the
// CPU itself, and falls back to an old generic kernel for CPUs newer than
// the library), and forced core types. Forcing is needed for a fair
// comparison wherever detection picks a slower kernel than the CPU runs.
func openBLASEnvironments(coretypes string) []openBLASEnv {
	envs := []openBLASEnv{{label: "env"}, {label: "unset", coretype: "-"}}
	var names []string
	switch coretypes {
	case "none", "":
	case "auto":
		names = autoCoretypes()
	default:
		names = strings.Split(coretypes, ",")
	}
	for _, n := range names {
		if n = strings.TrimSpace(n); n != "" {
			envs = append(envs, openBLASEnv{label: "coretype=" + n, coretype: n})
		}
	}
	return envs
}

func openBLASRuns(library string, repeat int, envs []openBLASEnv) openBLASResults {
	res := openBLASResults{gflops: map[string]map[shape]float64{}}
	self, err := os.Executable()
	if err != nil {
		res.info = append(res.info, record{Kind: "openblas", Error: "cannot re-execute: " + err.Error()})
		return res
	}
	for _, e := range envs {
		label := e.label
		env := os.Environ()
		if e.coretype != "" {
			env = env[:0:0]
			for _, kv := range os.Environ() {
				if !strings.HasPrefix(kv, "OPENBLAS_CORETYPE=") {
					env = append(env, kv)
				}
			}
			if e.coretype != "-" {
				env = append(env, "OPENBLAS_CORETYPE="+e.coretype)
			}
		}
		args := []string{"--openblas-child", label, "--repeat", fmt.Sprint(repeat)}
		if library != "" {
			args = append(args, "--openblas", library)
		}
		cmd := exec.Command(self, args...)
		cmd.Env = env
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			res.info = append(res.info, record{Kind: "openblas", Env: label, Error: err.Error()})
			continue
		}
		res.gflops[label] = map[shape]float64{}
		dec := json.NewDecoder(bytes.NewReader(out))
		for {
			var r record
			if err := dec.Decode(&r); err == io.EOF {
				break
			} else if err != nil {
				res.info = append(res.info, record{Kind: "openblas", Env: label, Error: "reading child output: " + err.Error()})
				break
			}
			switch r.Kind {
			case "openblas":
				res.info = append(res.info, r)
			case "openblas_matmul":
				for _, s := range sdShapes {
					if s.M == r.M && s.N == r.N && s.K == r.K {
						res.gflops[label][s] = r.GFLOPS
					}
				}
			}
		}
	}
	return res
}

// runOpenBLASChild measures OpenBLAS on every shape and prints JSON lines.
func runOpenBLASChild(label, library string, repeat int) {
	enc := json.NewEncoder(os.Stdout)
	info := record{Kind: "openblas", Env: label, CoreType: os.Getenv("OPENBLAS_CORETYPE")}
	if info.CoreType == "" {
		info.CoreType = "(unset)"
	}
	ob, path, err := loadOpenBLAS(library)
	if err != nil {
		info.Error = err.Error()
		_ = enc.Encode(info)
		return
	}
	info.Library, info.CoreName, info.Config = path, ob.corename(), ob.config()
	_ = enc.Encode(info)
	for _, s := range sdShapes {
		rng := rand.New(rand.NewPCG(uint64(s.M), uint64(s.K)))
		a := randomTensor(rng, s.M, s.K).Data
		bm := randomTensor(rng, s.K, s.N).Data
		c := make([]float32, s.M*s.N)
		ob.multiply(s.M, s.N, s.K, a, bm, c) // warm up: thread start, buffers
		seconds, _ := best(4*repeat, func() error { ob.multiply(s.M, s.N, s.K, a, bm, c); return nil })
		_ = enc.Encode(record{Kind: "openblas_matmul", Env: label, M: s.M, N: s.N, K: s.K, GFLOPS: s.flops() / seconds / 1e9})
	}
}

func printTable(w io.Writer, records []record) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, r := range records {
		switch r.Kind {
		case "cpu":
			fmt.Fprintf(w, "CPU: %s, GOMAXPROCS %d, our kernel %s\nflags: %s\n\n", r.Model, r.GOMAXPROCS, r.Kernel, r.Flags)
		case "peak":
			fmt.Fprintf(w, "measured FMA peak (%s): %.1f GFLOP/s on all threads, %.1f on one\n", r.ISA, r.PeakGFLOPS, r.PeakCoreGFLOPS)
		case "openblas":
			if r.Error != "" {
				fmt.Fprintf(w, "OpenBLAS (%s): unavailable: %s\n", r.Env, r.Error)
			} else {
				fmt.Fprintf(w, "OpenBLAS (%s): OPENBLAS_CORETYPE=%s core %s [%s]\n", r.Env, r.CoreType, r.CoreName, strings.TrimSpace(r.Config))
			}
		}
	}
	fmt.Fprintln(w)
	var labels []string
	for _, r := range records {
		if r.Kind == "openblas" && r.Error == "" {
			labels = append(labels, r.Env)
		}
	}
	header := "M×N×K\tours GFLOP/s"
	for _, l := range labels {
		header += "\tOpenBLAS " + l
	}
	fmt.Fprintln(tw, header+"\tours/best OpenBLAS\tof peak\tused for\t")
	for _, r := range records {
		if r.Kind != "matmul" {
			continue
		}
		line := fmt.Sprintf("%d×%d×%d\t%.1f", r.M, r.N, r.K, r.OursGFLOPS)
		for _, l := range labels {
			line += fmt.Sprintf("\t%.1f", r.OpenBLASGFLOPS[l])
		}
		fmt.Fprintf(tw, "%s\t%.2f\t%.0f%%\t%s\t\n", line, r.RatioToOpenBLAS, 100*r.FractionOfPeak, r.Use)
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
	for _, r := range records {
		switch r.Kind {
		case "conv3x3", "attention":
			fmt.Fprintf(w, "%-9s %-40s %8.1f ms  %6.1f GFLOP/s\n", r.Kind, r.Detail, r.Milliseconds, r.GFLOPS)
		}
	}
}
