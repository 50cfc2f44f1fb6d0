package kubectlplugin

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
)

type generateOptions struct {
	*Options
	gw             gatewayFlags
	images         int32
	size           string
	steps          int32
	sampler        string
	seed           int64
	negativePrompt string
	policy         string
	model          string
	wait           bool
	out            string
}

func newGenerateCommand(o *Options) *cobra.Command {
	g := &generateOptions{Options: o}
	cmd := &cobra.Command{
		Use:   "generate PROMPT",
		Short: "Submit a job through the gateway, follow it and download its images",
		Long: "Submits an ImageGenerationJob through the gateway, which takes the model and the output location\n" +
			"from its administrator's configuration. --wait follows the job (a progress bar on a terminal, one line\n" +
			"per change otherwise); --out then downloads the PNGs and prints where each image ran.\n" +
			"-n is the namespace, as in every kubectl command: the number of images is --images (-i).",
		Example: "  kubectl sdfleet generate \"a red fox\" -i 8 --size 512x512 --steps 20 --wait --out ./fox",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.run(cmd.Context(), cmd, args[0])
		},
	}
	f := cmd.Flags()
	f.Int32VarP(&g.images, "images", "i", 1, "Number of images.")
	f.StringVar(&g.size, "size", "512x512", "Image size as WIDTHxHEIGHT, multiples of 8.")
	f.Int32Var(&g.steps, "steps", 20, "Denoising steps.")
	f.StringVar(&g.sampler, "sampler", string(sdfleetv1alpha1.SamplerDDIM), "Sampler: ddim, euler-ancestral or dpmpp-2m-karras.")
	f.Int64Var(&g.seed, "seed", 0, "Seed of the first image; each next image uses the next seed. Unset picks one at random.")
	f.StringVar(&g.negativePrompt, "negative-prompt", "", "What the images should not show.")
	f.StringVar(&g.policy, "policy", string(sdfleetv1alpha1.PlacementLeastLoaded), "Placement policy: LeastLoaded, RoundRobin or Pack.")
	f.StringVar(&g.model, "model", "", "One of the gateway's model names; empty uses its default model.")
	f.BoolVar(&g.wait, "wait", false, "Follow the job until it finishes.")
	f.StringVar(&g.out, "out", "", "Download the PNGs into this folder once the job finishes (implies --wait).")
	g.gw.add(cmd)
	return cmd
}

// parseSize reads WIDTHxHEIGHT.
func parseSize(s string) (int32, int32, error) {
	w, h, ok := strings.Cut(s, "x")
	width, errW := strconv.ParseInt(w, 10, 32)
	height, errH := strconv.ParseInt(h, 10, 32)
	if !ok || errW != nil || errH != nil || width <= 0 || height <= 0 {
		return 0, 0, fmt.Errorf("--size %q: want WIDTHxHEIGHT, for example 512x512", s)
	}
	return int32(width), int32(height), nil
}

func (g *generateOptions) run(ctx context.Context, cmd *cobra.Command, prompt string) error {
	width, height, err := parseSize(g.size)
	if err != nil {
		return err
	}
	if g.images < 1 {
		return fmt.Errorf("--images %d: want at least 1", g.images)
	}
	gw, err := g.gateway(g.gw)
	if err != nil {
		return err
	}
	c, err := g.client()
	if err != nil {
		return err
	}
	body := map[string]any{
		"prompt": prompt, "images": g.images, "width": width, "height": height, "steps": g.steps,
		"sampler": g.sampler, "placement": map[string]any{"policy": g.policy},
	}
	if g.negativePrompt != "" {
		body["negativePrompt"] = g.negativePrompt
	}
	if cmd.Flags().Changed("seed") {
		body["seed"] = g.seed
	}
	if g.model != "" {
		body["model"] = g.model
	}
	ns, name, err := gw.createJob(ctx, body)
	if err != nil {
		return err
	}
	fmt.Fprintf(g.Out, "imagegenerationjob.sdfleet.io/%s created in namespace %s\n", name, ns)
	if !g.wait && g.out == "" {
		return nil
	}
	job, err := follow(ctx, c, types.NamespacedName{Namespace: ns, Name: name}, newProgress(g.Out, g.Terminal))
	if err != nil {
		return err
	}
	if g.out == "" {
		for _, img := range job.Status.Images {
			fmt.Fprintf(g.Out, "image %d\t%s\t%s\n", img.Index, img.Phase, where(img))
		}
	} else {
		downloads, err := gw.downloadImages(ctx, job, g.out)
		printDownloads(g.Out, downloads)
		if err != nil {
			return err
		}
	}
	if job.Status.Phase == sdfleetv1alpha1.JobPhaseFailed {
		return fmt.Errorf("job %s/%s failed: %d of %d images failed", ns, name, job.Status.Failed, job.Spec.Images)
	}
	return nil
}

// follow watches the job until it is Complete or Failed, reporting each change to p.
func follow(ctx context.Context, c client.WithWatch, key types.NamespacedName, p *progress) (*sdfleetv1alpha1.ImageGenerationJob, error) {
	for {
		job := &sdfleetv1alpha1.ImageGenerationJob{}
		if err := c.Get(ctx, key, job); err != nil {
			return nil, err
		}
		p.update(job)
		if finished(job) {
			p.done()
			return job, nil
		}
		w, err := c.Watch(ctx, &sdfleetv1alpha1.ImageGenerationJobList{}, client.InNamespace(key.Namespace),
			client.MatchingFieldsSelector{Selector: fields.OneTermEqualSelector("metadata.name", key.Name)})
		if err != nil {
			return nil, fmt.Errorf("watch imagegenerationjob %s: %w", key, err)
		}
		for ev := range w.ResultChan() {
			j, ok := ev.Object.(*sdfleetv1alpha1.ImageGenerationJob)
			if !ok || ev.Type == watch.Error {
				break
			}
			if ev.Type == watch.Deleted {
				w.Stop()
				return nil, fmt.Errorf("job %s was deleted", key)
			}
			p.update(j)
			if finished(j) {
				w.Stop()
				p.done()
				return j, nil
			}
		}
		w.Stop() // the watch ended (timeout or error): read the job again and watch anew
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
}

func finished(job *sdfleetv1alpha1.ImageGenerationJob) bool {
	return job.Status.Phase == sdfleetv1alpha1.JobPhaseComplete || job.Status.Phase == sdfleetv1alpha1.JobPhaseFailed
}

// progress shows a job's images done: a bar redrawn in place on a terminal, a line per
// change otherwise.
type progress struct {
	out      io.Writer
	terminal bool
	start    time.Time
	now      func() time.Time
	last     string
}

func newProgress(out io.Writer, terminal bool) *progress {
	return &progress{out: out, terminal: terminal, start: time.Now(), now: time.Now}
}

// eta extrapolates the time left from the rate of finished images so far.
func (p *progress) eta(done, total int32) string {
	if done == 0 || done >= total {
		return ""
	}
	elapsed := p.now().Sub(p.start)
	left := time.Duration(float64(elapsed) / float64(done) * float64(total-done)).Round(time.Second)
	return " ETA " + left.String()
}

func (p *progress) update(job *sdfleetv1alpha1.ImageGenerationJob) {
	total := max(job.Spec.Images, 1)
	done := job.Status.Succeeded
	counts := fmt.Sprintf("%d/%d images done, %d running, %d failed", done, job.Spec.Images, job.Status.Running, job.Status.Failed)
	line := fmt.Sprintf("%s: %s (%s)", job.Name, counts, phaseOf(job))
	if p.terminal {
		const width = 30
		filled := int(done) * width / int(total)
		bar := strings.Repeat("#", filled) + strings.Repeat(".", width-filled)
		fmt.Fprintf(p.out, "\r\x1b[2K%s [%s] %s%s", job.Name, bar, counts, p.eta(done, total))
		return
	}
	if line != p.last {
		fmt.Fprintln(p.out, line)
		p.last = line
	}
}

func (p *progress) done() {
	if p.terminal {
		fmt.Fprintln(p.out)
	}
}
