package kubectlplugin

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/cli-runtime/pkg/printers"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	"github.com/sdfleet/sdfleet/controllers/reservations"
)

type topOptions struct {
	*Options
	allNamespaces bool
	watch         bool
}

func newTopCommand(o *Options) *cobra.Command {
	t := &topOptions{Options: o}
	cmd := &cobra.Command{
		Use:   "top",
		Short: "Every GPU of the cluster: load, health, learned speed, images running and waiting",
		Long: "Lists every GPU the node agents publish. RUNNING and WAITING count the images of the jobs in the\n" +
			"namespace (all namespaces with -A) whose pod runs on the GPU, or is placed on it and not running yet;\n" +
			"RESERVED is the share of the GPU's memory sdfleet reserves for those images (the job's memory per\n" +
			"image each), next to MEMORY, the share in use as the node agent measures it.",
		Example: "  kubectl sdfleet top -A\n  kubectl sdfleet top --watch",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return t.run(cmd.Context())
		},
	}
	cmd.Flags().BoolVarP(&t.allNamespaces, "all-namespaces", "A", false, "Count the images of jobs in every namespace.")
	cmd.Flags().BoolVarP(&t.watch, "watch", "w", false, "Redraw the table on every change of a GPU or a job.")
	return cmd
}

// GPURow is one line of `top`.
type GPURow struct {
	Node      string
	Index     int32
	UUID      string
	Product   string
	MemoryPct int32
	// ReservedPct is the share of the GPU's memory sdfleet reserves for the images counted in
	// Running and Waiting; ReservedBytes the bytes.
	ReservedPct   int32
	ReservedBytes int64
	UtilPct       int32
	Temperature   int32
	Health        sdfleetv1alpha1.GPUHealth
	Reason        string
	Speed         string
	Running       int
	Waiting       int
}

// GPURows joins the GPUs of nodes with the images of jobs, in node and index order.
func GPURows(nodes []sdfleetv1alpha1.GPUNode, jobs []sdfleetv1alpha1.ImageGenerationJob) []GPURow {
	running, waiting := map[string]int{}, map[string]int{}
	for i := range jobs {
		for _, img := range jobs[i].Status.Images {
			switch {
			case img.GPUUUID == "":
			case img.Phase == sdfleetv1alpha1.ImageRunning:
				running[img.GPUUUID]++
			case img.Phase == sdfleetv1alpha1.ImagePending:
				waiting[img.GPUUUID]++
			}
		}
	}
	shares := reservations.ByGPU(jobs)
	var rows []GPURow
	for i := range nodes {
		n := &nodes[i]
		for _, g := range n.Status.GPUs {
			var pct int32
			if g.MemoryTotalBytes > 0 {
				pct = int32(g.MemoryUsedBytes * 100 / g.MemoryTotalBytes)
			}
			rows = append(rows, GPURow{
				Node: n.Name, Index: g.Index, UUID: g.UUID, Product: g.ProductName, MemoryPct: pct,
				ReservedPct: reservations.Percent(shares[g.UUID].Bytes, g.MemoryTotalBytes), ReservedBytes: shares[g.UUID].Bytes,
				UtilPct: g.UtilizationPercent, Temperature: g.TemperatureCelsius, Health: g.Health, Reason: g.HealthReason,
				Speed: learnedSpeed(n, g.UUID), Running: running[g.UUID], Waiting: waiting[g.UUID],
			})
		}
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].Node != rows[j].Node {
			return rows[i].Node < rows[j].Node
		}
		return rows[i].Index < rows[j].Index
	})
	return rows
}

// learnedSpeed is the operator's learned speed of a GPU in seconds per megapixel-step, "-"
// before it has learned one.
func learnedSpeed(n *sdfleetv1alpha1.GPUNode, uuid string) string {
	for _, sp := range n.Status.LearnedSpeeds {
		if sp.UUID == uuid && sp.SecondsPerMegapixelStep != "" {
			return sp.SecondsPerMegapixelStep
		}
	}
	return "-"
}

// PrintGPUTable writes rows as kubectl-style columns.
func PrintGPUTable(out io.Writer, rows []GPURow) error {
	w := printers.GetNewTabWriter(out)
	fmt.Fprintln(w, "NODE\tGPU\tPRODUCT\tMEMORY\tRESERVED\tUTIL\tTEMP\tHEALTH\tSEC/MP-STEP\tRUNNING\tWAITING")
	for _, r := range rows {
		health := string(r.Health)
		if r.Reason != "" && r.Health != sdfleetv1alpha1.GPUHealthy {
			health += " (" + r.Reason + ")"
		}
		product := r.Product
		if product == "" {
			product = "-"
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%d%%\t%d%%\t%d%%\t%s\t%s\t%s\t%d\t%d\n", r.Node, r.Index, product, r.MemoryPct, r.ReservedPct, r.UtilPct,
			strconv.Itoa(int(r.Temperature))+"C", health, r.Speed, r.Running, r.Waiting)
	}
	if len(rows) == 0 {
		fmt.Fprintln(w, "No GPU has been published: is the sdfleet node agent running?")
	}
	return w.Flush()
}

func (t *topOptions) run(ctx context.Context) error {
	c, err := t.client()
	if err != nil {
		return err
	}
	var jobOpts []client.ListOption
	if !t.allNamespaces {
		ns, err := t.namespace()
		if err != nil {
			return err
		}
		jobOpts = append(jobOpts, client.InNamespace(ns))
	}
	if !t.watch {
		return t.draw(ctx, c, jobOpts)
	}
	// Watch both kinds and redraw after each change; the watches start before the first
	// draw so that nothing between the two is missed.
	nodes, err := c.Watch(ctx, &sdfleetv1alpha1.GPUNodeList{})
	if err != nil {
		return fmt.Errorf("watch gpunodes: %w", err)
	}
	defer nodes.Stop()
	jobs, err := c.Watch(ctx, &sdfleetv1alpha1.ImageGenerationJobList{}, jobOpts...)
	if err != nil {
		return fmt.Errorf("watch imagegenerationjobs: %w", err)
	}
	defer jobs.Stop()
	for {
		if err := t.draw(ctx, c, jobOpts); err != nil {
			return err
		}
		var ev watch.Event
		var ok bool
		select {
		case <-ctx.Done():
			return nil
		case ev, ok = <-nodes.ResultChan():
		case ev, ok = <-jobs.ResultChan():
		}
		if !ok || ev.Type == watch.Error {
			return fmt.Errorf("the watch ended; run the command again")
		}
	}
}

func (t *topOptions) draw(ctx context.Context, c client.Client, jobOpts []client.ListOption) error {
	var nodes sdfleetv1alpha1.GPUNodeList
	if err := c.List(ctx, &nodes); err != nil {
		return fmt.Errorf("list gpunodes: %w", err)
	}
	var jobs sdfleetv1alpha1.ImageGenerationJobList
	if err := c.List(ctx, &jobs, jobOpts...); err != nil {
		return fmt.Errorf("list imagegenerationjobs: %w", err)
	}
	if t.watch && t.Terminal {
		fmt.Fprint(t.Out, "\x1b[H\x1b[2J") // redraw in place: cursor home, clear screen
	} else if t.watch {
		defer fmt.Fprintln(t.Out)
	}
	return PrintGPUTable(t.Out, GPURows(nodes.Items, jobs.Items))
}
