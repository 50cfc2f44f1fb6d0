package kubectlplugin

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	"github.com/sdfleet/sdfleet/internal/version"
)

// Options are what every command shares: kubectl's connection flags and the streams.
type Options struct {
	Config *genericclioptions.ConfigFlags
	genericiooptions.IOStreams
	// Terminal says whether Out is a terminal: progress bars and in-place redraws then,
	// plain lines otherwise. NewCommand sets it from Out.
	Terminal bool
}

// NewCommand is `kubectl sdfleet` with its subcommands.
func NewCommand(streams genericiooptions.IOStreams) *cobra.Command {
	o := &Options{Config: genericclioptions.NewConfigFlags(true), IOStreams: streams, Terminal: isTerminal(streams.Out)}
	root := &cobra.Command{
		Use:           "kubectl-sdfleet",
		Short:         "Look at sdfleet's GPUs and generate images from kubectl",
		SilenceUsage:  true,
		SilenceErrors: true,
		Annotations:   map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl sdfleet"},
		Version:       version.Version,
	}
	o.Config.AddFlags(root.PersistentFlags())
	root.AddCommand(newTopCommand(o), newGenerateCommand(o), newImagesCommand(o), newExplainCommand(o))
	return root
}

// Main runs the plugin with the process's arguments and streams and returns its exit code. An
// interrupt cancels the command's context, so that what it created (a reader pod) is deleted
// before it exits.
func Main() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd := NewCommand(genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr})
	if err := cmd.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		return 1
	}
	return 0
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}

// Scheme knows sdfleet's and Kubernetes' built-in kinds.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := sdfleetv1alpha1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

// client connects to the cluster kubectl's flags name.
func (o *Options) client() (client.WithWatch, error) {
	cfg, err := o.Config.ToRESTConfig()
	if err != nil {
		return nil, err
	}
	return client.NewWithWatch(cfg, client.Options{Scheme: Scheme()})
}

// namespace is -n, or the kubeconfig context's namespace.
func (o *Options) namespace() (string, error) {
	ns, _, err := o.Config.ToRawKubeConfigLoader().Namespace()
	return ns, err
}

// kube is a clientset of the cluster kubectl's flags name.
func (o *Options) kube() (kubernetes.Interface, error) {
	cfg, err := o.Config.ToRESTConfig()
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}
