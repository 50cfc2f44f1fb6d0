package kubectlplugin

import (
	"bytes"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in            string
		width, height int32
		err           string
	}{
		{in: "512x768", width: 512, height: 768},
		{in: "64x64", width: 64, height: 64},
		{in: "512", err: `--size "512": want WIDTHxHEIGHT, for example 512x512`},
		{in: "0x512", err: `--size "0x512": want WIDTHxHEIGHT, for example 512x512`},
		{in: "axb", err: `--size "axb": want WIDTHxHEIGHT, for example 512x512`},
	} {
		w, h, err := parseSize(tc.in)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("parseSize(%q) error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || w != tc.width || h != tc.height {
			t.Errorf("parseSize(%q) = %d, %d, %v; want %d, %d", tc.in, w, h, err, tc.width, tc.height)
		}
	}
}

func progressJob(succeeded, running int32, phase sdfleetv1alpha1.JobPhase) *sdfleetv1alpha1.ImageGenerationJob {
	return &sdfleetv1alpha1.ImageGenerationJob{
		ObjectMeta: metav1.ObjectMeta{Name: "fox"},
		Spec:       sdfleetv1alpha1.ImageGenerationJobSpec{Images: 8},
		Status:     sdfleetv1alpha1.ImageGenerationJobStatus{Succeeded: succeeded, Running: running, Phase: phase},
	}
}

func TestProgress(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name     string
		terminal bool
		updates  []*sdfleetv1alpha1.ImageGenerationJob
		elapsed  time.Duration
		want     string
	}{{
		name:     "a terminal gets a bar redrawn in place with the time left at the rate so far",
		terminal: true,
		updates:  []*sdfleetv1alpha1.ImageGenerationJob{progressJob(2, 4, sdfleetv1alpha1.JobPhaseRunning)},
		elapsed:  10 * time.Second,
		want:     "\r\x1b[2Kfox [#######.......................] 2/8 images done, 4 running, 0 failed ETA 30s",
	}, {
		name:     "a finished job has no ETA and ends the line",
		terminal: true,
		updates:  []*sdfleetv1alpha1.ImageGenerationJob{progressJob(8, 0, sdfleetv1alpha1.JobPhaseComplete)},
		elapsed:  10 * time.Second,
		want:     "\r\x1b[2Kfox [##############################] 8/8 images done, 0 running, 0 failed\n",
	}, {
		name: "a pipe gets one line per change and none for a repeat",
		updates: []*sdfleetv1alpha1.ImageGenerationJob{progressJob(0, 0, ""), progressJob(0, 0, ""),
			progressJob(3, 5, sdfleetv1alpha1.JobPhaseRunning), progressJob(8, 0, sdfleetv1alpha1.JobPhaseComplete)},
		want: "fox: 0/8 images done, 0 running, 0 failed (Pending)\n" +
			"fox: 3/8 images done, 5 running, 0 failed (Running)\n" +
			"fox: 8/8 images done, 0 running, 0 failed (Complete)\n",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			p := newProgress(&out, tc.terminal)
			p.start, p.now = start, func() time.Time { return start.Add(tc.elapsed) }
			for _, j := range tc.updates {
				p.update(j)
			}
			if finished(tc.updates[len(tc.updates)-1]) {
				p.done()
			}
			if out.String() != tc.want {
				t.Errorf("output\n%q\nwant\n%q", out.String(), tc.want)
			}
		})
	}
}
