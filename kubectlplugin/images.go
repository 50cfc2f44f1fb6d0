package kubectlplugin

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/types"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
)

type imagesOptions struct {
	*Options
	gw  gatewayFlags
	out string
}

func newImagesCommand(o *Options) *cobra.Command {
	i := &imagesOptions{Options: o}
	cmd := &cobra.Command{
		Use:   "images JOB --out DIR",
		Short: "Download the PNGs of a job, through the gateway or a short-lived pod",
		Long: "Writes each finished image of JOB as DIR/JOB-INDEX.png, checked against the SHA-256 in the job's status.\n" +
			"With --gateway (or $" + GatewayEnv + ") the PNGs come from the gateway, which checks your token. Without one they are\n" +
			"read through a short-lived pod in the job's namespace that mounts its output volume read-only, runs the\n" +
			"job's image and is deleted afterwards: you need to create, watch, exec into and delete pods there.",
		Example: "  kubectl sdfleet images fox-x7k2p --out ./fox -n studio\n" +
			"  kubectl sdfleet images fox-x7k2p --out ./fox -n studio --gateway http://127.0.0.1:8080",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return i.run(cmd.Context(), args[0])
		},
	}
	cmd.Flags().StringVar(&i.out, "out", "", "Folder the PNGs are written to (created when missing).")
	_ = cmd.MarkFlagRequired("out")
	i.gw.add(cmd)
	return cmd
}

func (i *imagesOptions) run(ctx context.Context, name string) error {
	c, err := i.client()
	if err != nil {
		return err
	}
	ns, err := i.namespace()
	if err != nil {
		return err
	}
	src, err := i.imageSource(i.gw)
	if err != nil {
		return err
	}
	job := &sdfleetv1alpha1.ImageGenerationJob{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, job); err != nil {
		return err
	}
	if job.Status.Succeeded == 0 {
		return fmt.Errorf("job %s/%s has no finished image yet (%s)", ns, name, phaseOf(job))
	}
	downloads, err := downloadImages(ctx, src, job, i.out)
	printDownloads(i.Out, downloads)
	if err != nil {
		return err
	}
	if missing := job.Spec.Images - int32(len(downloads)); missing > 0 {
		fmt.Fprintf(i.ErrOut, "%d of %d images of %s/%s are not finished (%s)\n", missing, job.Spec.Images, ns, name, phaseOf(job))
	}
	return nil
}

func phaseOf(job *sdfleetv1alpha1.ImageGenerationJob) string {
	if job.Status.Phase == "" {
		return string(sdfleetv1alpha1.JobPhasePending)
	}
	return string(job.Status.Phase)
}
