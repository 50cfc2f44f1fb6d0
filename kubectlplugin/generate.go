package kubectlplugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	modelLocation  string
	outputLocation string
	wait           bool
	out            string
}

func newGenerateCommand(o *Options) *cobra.Command {
	g := &generateOptions{Options: o}
	cmd := &cobra.Command{
		Use:   "generate PROMPT",
		Short: "Submit a job, follow it and download its images",
		Long: "Submits an ImageGenerationJob. With --gateway (or $" + GatewayEnv + ") it goes through the gateway, which takes\n" +
			"the model and the output location from its administrator's configuration (--model names one of its\n" +
			"models). Without a gateway the job is created with your own credentials, and --model-location and\n" +
			"--output-location say where the weights are and where the PNGs go.\n" +
			"--wait follows the job (a progress bar on a terminal, one line per change otherwise); --out then\n" +
			"downloads the PNGs (through the gateway, or a short-lived pod on the output volume without one) and\n" +
			"prints where each image ran.\n" +
			"-n is the namespace, as in every kubectl command: the number of images is --images (-i).",
		Example: "  kubectl sdfleet generate \"a red fox\" -i 8 --size 512x512 --steps 20 --wait --out ./fox --gateway http://localhost:8080\n" +
			"  kubectl sdfleet generate \"a red fox\" -i 8 --model-location pvc:models/sd15 --output-location pvc:images --wait --out ./fox",
		Args: cobra.ExactArgs(1),
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
	f.StringVar(&g.model, "model", "", "With a gateway: one of its model names; empty uses its default model.")
	f.StringVar(&g.modelLocation, "model-location", "",
		"Without a gateway: where the model is, pvc:CLAIM[/PATH] (a claim of the namespace) or host:/PATH (a folder on the nodes, if the cluster allows it).")
	f.StringVar(&g.outputLocation, "output-location", "",
		"Without a gateway: where the PNGs are written, pvc:CLAIM[/PATH] or host:/PATH.")
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
	c, err := g.client()
	if err != nil {
		return err
	}
	var seed *int64
	if cmd.Flags().Changed("seed") {
		seed = &g.seed
	}
	spec := sdfleetv1alpha1.ImageGenerationJobSpec{
		Prompt: prompt, NegativePrompt: g.negativePrompt, Images: g.images, Width: width, Height: height,
		Steps: g.steps, Sampler: sdfleetv1alpha1.Sampler(g.sampler), Seed: seed,
		Placement: sdfleetv1alpha1.PlacementSpec{Policy: sdfleetv1alpha1.PlacementPolicy(g.policy)},
	}
	var src imageSource
	if g.out != "" {
		if src, err = g.imageSource(g.gw); err != nil {
			return err
		}
	}
	var ns, name string
	if g.gw.named() {
		ns, name, err = g.createThroughGateway(ctx, spec)
	} else {
		ns, name, err = g.createDirectly(ctx, c, spec, src)
	}
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
		downloads, err := downloadImages(ctx, src, job, g.out)
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

// createThroughGateway submits spec through the gateway's POST /v1/jobs; the gateway fills in
// the model's location and the output from its administrator's configuration.
func (g *generateOptions) createThroughGateway(ctx context.Context, spec sdfleetv1alpha1.ImageGenerationJobSpec) (string, string, error) {
	switch {
	case g.modelLocation != "":
		return "", "", errors.New("--model-location: the gateway takes the model's location from its configuration; name one of its models with --model")
	case g.outputLocation != "":
		return "", "", errors.New("--output-location: the gateway writes the images where its configuration says; leave the flag out")
	}
	gw, err := g.gateway(g.gw)
	if err != nil {
		return "", "", err
	}
	body := map[string]any{
		"prompt": spec.Prompt, "images": spec.Images, "width": spec.Width, "height": spec.Height, "steps": spec.Steps,
		"sampler": spec.Sampler, "placement": map[string]any{"policy": spec.Placement.Policy},
	}
	if spec.NegativePrompt != "" {
		body["negativePrompt"] = spec.NegativePrompt
	}
	if spec.Seed != nil {
		body["seed"] = *spec.Seed
	}
	if g.model != "" {
		body["model"] = g.model
	}
	return gw.createJob(ctx, body)
}

// createDirectly creates the job with the caller's own credentials, so that RBAC and the
// cluster's job policy decide as for kubectl create. When the images are to be read through
// reader pods (src), the access that needs is checked first: a job whose images could not be
// downloaded is not created.
func (g *generateOptions) createDirectly(ctx context.Context, c client.Client, spec sdfleetv1alpha1.ImageGenerationJobSpec,
	src imageSource) (string, string, error) {
	if g.model != "" {
		return "", "", fmt.Errorf("--model %q names one of a gateway's models: give the gateway with --gateway (or $%s), "+
			"or the model's location with --model-location", g.model, GatewayEnv)
	}
	if g.modelLocation == "" || g.outputLocation == "" {
		return "", "", fmt.Errorf("without a gateway, --model-location and --output-location say where the model is and where the "+
			"images go (pvc:CLAIM[/PATH] or host:/PATH); or submit through the gateway with --gateway (or $%s), for example "+
			"kubectl -n sdfleet-system port-forward svc/sdfleet-gateway 8080:80 and --gateway http://localhost:8080", GatewayEnv)
	}
	var err error
	if spec.Model, err = parseLocation("--model-location", g.modelLocation); err != nil {
		return "", "", err
	}
	if spec.Output, err = parseLocation("--output-location", g.outputLocation); err != nil {
		return "", "", err
	}
	ns, err := g.namespace()
	if err != nil {
		return "", "", err
	}
	if pods, ok := src.(podSource); ok {
		if err := pods.copier.CheckAccess(ctx, ns); err != nil {
			return "", "", err
		}
	}
	job := &sdfleetv1alpha1.ImageGenerationJob{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "gen-", Namespace: ns},
		Spec:       spec,
	}
	if err := c.Create(ctx, job); err != nil {
		return "", "", fmt.Errorf("create the job in namespace %s: %w", ns, err)
	}
	return job.Namespace, job.Name, nil
}

// parseLocation reads pvc:CLAIM[/PATH] or host:/PATH; the API server checks the rest (a
// clean path, a valid claim name) and names the field.
func parseLocation(flag, value string) (sdfleetv1alpha1.StorageLocation, error) {
	kind, rest, _ := strings.Cut(value, ":")
	switch {
	case kind == "pvc" && rest != "":
		claim, path, _ := strings.Cut(rest, "/")
		if claim != "" {
			return sdfleetv1alpha1.StorageLocation{PersistentVolumeClaim: &sdfleetv1alpha1.PVCLocation{ClaimName: claim, Path: path}}, nil
		}
	case kind == "host" && strings.HasPrefix(rest, "/"):
		return sdfleetv1alpha1.StorageLocation{HostPath: &sdfleetv1alpha1.HostPathLocation{Path: rest}}, nil
	}
	return sdfleetv1alpha1.StorageLocation{}, fmt.Errorf("%s %q: want pvc:CLAIM[/PATH] (a claim of the namespace and a path inside it) "+
		"or host:/PATH (an absolute folder on the nodes)", flag, value)
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
