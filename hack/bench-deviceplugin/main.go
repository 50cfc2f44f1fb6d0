// Command bench-deviceplugin prints the node agent's figures: with simulated GPUs sampled at a
// fixed interval, against the envtest API server, it measures
//   - the CPU the agent uses for sampling and publishing at steady state (this process's CPU
//     time, which also includes the figure's own watch client, so it is an upper bound),
//   - API writes per minute at steady state,
//   - the latency from a memory change in the simulator to the GPUNode update being visible
//     to a watching client (p50, p99, max).
//
// Run it from the repository root (it needs the control plane of `make control-plane`):
//
//	go run ./hack/bench-deviceplugin -gpus 8 -interval 1s -steady 60s -changes 40
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	"github.com/sdfleet/sdfleet/deviceplugin/agent"
	"github.com/sdfleet/sdfleet/deviceplugin/config"
	"github.com/sdfleet/sdfleet/deviceplugin/simulator"
	"github.com/sdfleet/sdfleet/test/envtest"
)

func main() {
	gpus := flag.Int("gpus", 8, "simulated GPUs")
	interval := flag.Duration("interval", time.Second, "agent sample interval")
	heartbeat := flag.Duration("heartbeat", 10*time.Second, "agent heartbeat interval")
	steady := flag.Duration("steady", 60*time.Second, "length of the steady-state measurement")
	changes := flag.Int("changes", 40, "memory changes to time")
	flag.Parse()
	if err := run(*gpus, *interval, *heartbeat, *steady, *changes); err != nil {
		fmt.Fprintln(os.Stderr, "bench-deviceplugin:", err)
		os.Exit(1)
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func run(gpus int, interval, heartbeat, steady time.Duration, changes int) error {
	ctrllog.SetLogger(logr.Discard())
	env, err := envtest.Start()
	if err != nil {
		return err
	}
	defer func() { _ = env.Stop() }()
	c, err := client.NewWithWatch(env.Config, client.Options{Scheme: envtest.Scheme()})
	if err != nil {
		return err
	}
	ctx := context.Background()
	const node = "bench-node"
	if err := c.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}}); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "bench-dp")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	scenario := filepath.Join(dir, "scenario.yaml")
	if err := os.WriteFile(scenario, []byte("gpus:"+strings.Repeat("\n- {memoryUsedPercent: 10}", gpus)+"\n"), 0o600); err != nil {
		return err
	}
	cfg, err := config.Load([]string{"--node-name=" + node, "--gpu-source=simulated", "--simulator-config=" + scenario,
		"--sample-interval=" + interval.String(), "--heartbeat-interval=" + heartbeat.String(),
		"--metrics-bind-address=0", "--health-probe-bind-address=0", "--simulator-control-bind-address=0", "--enable-kubelet-plugin=false"}, os.Getenv, os.Stderr)
	if err != nil {
		return err
	}
	src, sim, err := agent.OpenSource(cfg, logr.Discard())
	if err != nil {
		return err
	}
	a, err := agent.New(cfg, c, src, sim, "bench", logr.Discard())
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	defer func() { cancel(); <-done }()

	w, err := c.Watch(ctx, &sdfleetv1alpha1.GPUNodeList{}, client.MatchingFields{"metadata.name": node})
	if err != nil {
		return err
	}
	defer w.Stop()
	// Wait for the first status, then let the start-up writes settle for one heartbeat.
	if _, err := waitFor(w, 30*time.Second, func(gn *sdfleetv1alpha1.GPUNode) bool { return gn.Status.GPUCount == int32(gpus) }); err != nil {
		return err
	}
	drain(w, heartbeat)

	fmt.Printf("node agent figures: %d simulated GPUs, %s sampling, %s heartbeat, envtest API server\n", gpus, interval, heartbeat)
	cpu0, wall0, writes0 := cpuTime(), time.Now(), a.Publisher().Writes()
	watched := drain(w, steady)
	cpu, wall, writes := cpuTime()-cpu0, time.Since(wall0), a.Publisher().Writes()-writes0
	fmt.Printf("steady state over %s:\n", wall.Round(time.Second))
	fmt.Printf("  CPU (sampling + publishing, plus this figure's watch client): %.3f%% of one core (%s)\n",
		100*cpu.Seconds()/wall.Seconds(), cpu.Round(time.Millisecond))
	fmt.Printf("  API writes per minute: %.1f (agent count), %.1f (status updates seen by a watch)\n",
		float64(writes)/wall.Minutes(), float64(watched)/wall.Minutes())

	var latencies []time.Duration
	for i := range changes {
		// Land the change at a random point of the sampling period, as real load changes do.
		time.Sleep(time.Duration(rand.Int64N(int64(interval))))
		index := i % gpus
		percent := 40.0
		if (i/gpus)%2 == 1 {
			percent = 10
		}
		total := sim.State()[index].MemoryTotalBytes
		want := int64(float64(total) * percent / 100)
		start := time.Now()
		if err := sim.Inject([]simulator.Step{{GPU: &index, Load: simulator.Load{MemoryUsedPercent: &percent}}}); err != nil {
			return err
		}
		at, err := waitFor(w, 30*time.Second, func(gn *sdfleetv1alpha1.GPUNode) bool {
			return len(gn.Status.GPUs) > index && gn.Status.GPUs[index].MemoryUsedBytes == want
		})
		if err != nil {
			return fmt.Errorf("change %d: %w", i, err)
		}
		latencies = append(latencies, at.Sub(start))
	}
	slices.Sort(latencies)
	pct := func(p float64) time.Duration { return latencies[min(len(latencies)-1, int(p*float64(len(latencies))))] }
	fmt.Printf("memory change → GPUNode update visible to a watch, %d changes: p50 %s, p99 %s, max %s\n",
		len(latencies), pct(0.50).Round(time.Millisecond), pct(0.99).Round(time.Millisecond), latencies[len(latencies)-1].Round(time.Millisecond))
	return nil
}

// drain counts status updates on w for d.
func drain(w watch.Interface, d time.Duration) int {
	n := 0
	deadline := time.After(d)
	for {
		select {
		case ev := <-w.ResultChan():
			if ev.Type == watch.Modified {
				n++
			}
		case <-deadline:
			return n
		}
	}
}

// waitFor returns when a watched GPUNode satisfies ok.
func waitFor(w watch.Interface, timeout time.Duration, ok func(*sdfleetv1alpha1.GPUNode) bool) (time.Time, error) {
	deadline := time.After(timeout)
	for {
		select {
		case ev, open := <-w.ResultChan():
			if !open {
				return time.Time{}, fmt.Errorf("GPUNode watch closed")
			}
			if gn, isGN := ev.Object.(*sdfleetv1alpha1.GPUNode); isGN && ok(gn) {
				return time.Now(), nil
			}
		case <-deadline:
			return time.Time{}, fmt.Errorf("GPUNode did not reach the expected state within %s", timeout)
		}
	}
}
