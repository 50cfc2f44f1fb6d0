package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	crlog "sigs.k8s.io/controller-runtime/pkg/log"
)

// testWriter sends a run's progress to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// The scale run in small: 10 KWOK nodes x 8 GPUs, 500 images in 4 jobs over 2 namespaces,
// with the real scheduler binding every pod. The scheduler must never bind a pod elsewhere
// than the controller placed it, and every image must succeed exactly once.
func TestSmallFleetWithTheRealScheduler(t *testing.T) {
	crlog.SetLogger(logr.Discard())
	o := options{nodes: 10, gpusPerNode: 8, slots: 3, gpuMemoryMiB: 24576, images: 500, jobs: 4, namespaces: 2,
		run: 500 * time.Millisecond, runJitter: 500 * time.Millisecond, timeout: 5 * time.Minute}
	res, err := run(context.Background(), o, testWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	var report strings.Builder
	res.print(&report)
	t.Log("\n" + report.String())
	if res.Disagreements != 0 {
		t.Errorf("the scheduler bound %d pods to another node than the controller chose, want 0", res.Disagreements)
	}
	if res.SucceededTwice != 0 || res.NotSucceeded != 0 {
		t.Errorf("%d images succeeded more than once and %d did not succeed; want every image to succeed exactly once",
			res.SucceededTwice, res.NotSucceeded)
	}
	if res.PodsCreated != o.images {
		t.Errorf("%d image pods created for %d images, want one each", res.PodsCreated, o.images)
	}
	if res.Writes <= 0 {
		t.Errorf("the manager's API writes read %d from its metrics, want a positive count", res.Writes)
	}
}
