package readerpod

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/streaming/pkg/httpstream"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	"github.com/sdfleet/sdfleet/controllers/podcontract"
	"github.com/sdfleet/sdfleet/internal/imagestream"
)

// Copier copies images out of output volumes through reader pods.
type Copier struct {
	Kube   kubernetes.Interface
	Config *rest.Config
	// StartTimeout is how long a reader pod may take to run (scheduling, pulling the image).
	StartTimeout time.Duration
	// Log receives a line per reader pod started and deleted; nil discards them.
	Log io.Writer
}

// Access is one permission a copy needs.
type Access struct {
	Verb, Resource, Subresource string
}

func (a Access) String() string {
	if a.Subresource != "" {
		return a.Verb + " " + a.Resource + "/" + a.Subresource
	}
	return a.Verb + " " + a.Resource
}

// Needed are the permissions a copy needs in the job's namespace: create the reader, watch it
// start, exec the export in it (over WebSockets the API server checks get, over SPDY create),
// delete it.
var Needed = []Access{
	{Verb: "create", Resource: "pods"},
	{Verb: "get", Resource: "pods"},
	{Verb: "watch", Resource: "pods"},
	{Verb: "create", Resource: "pods", Subresource: "exec"},
	{Verb: "get", Resource: "pods", Subresource: "exec"},
	{Verb: "delete", Resource: "pods"},
}

// CheckAccess asks the API server whether the caller has every permission of Needed in
// namespace, and names the ones missing.
func (c *Copier) CheckAccess(ctx context.Context, namespace string) error {
	var missing []string
	for _, a := range Needed {
		review, err := c.Kube.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
			Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: namespace, Verb: a.Verb, Resource: a.Resource, Subresource: a.Subresource,
			}},
		}, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("check whether you may %s in namespace %s: %w", a, namespace, err)
		}
		if !review.Status.Allowed {
			missing = append(missing, a.String())
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("without a gateway the images are read through a short-lived pod in namespace %s, "+
			"and you may not %s there: ask for that access, or read the images through the gateway with --gateway",
			namespace, strings.Join(missing, ", "))
	}
	return nil
}

// Image is the container image a reader of job runs: the image its image pods ran, which the
// job policy allowed, else spec.image.
func (c *Copier) Image(ctx context.Context, job *sdfleetv1alpha1.ImageGenerationJob) (string, error) {
	for _, img := range job.Status.Images {
		if img.PodName == "" {
			continue
		}
		pod, err := c.Kube.CoreV1().Pods(job.Namespace).Get(ctx, img.PodName, metav1.GetOptions{})
		if err != nil {
			continue // deleted or not readable: try the next image's pod
		}
		if owner := metav1.GetControllerOf(pod); owner == nil || owner.UID != job.UID {
			continue // a pod of that name the job does not control says nothing of its image
		}
		for _, ctr := range pod.Spec.Containers {
			if ctr.Name == podcontract.ContainerName && ctr.Image != "" {
				return ctr.Image, nil
			}
		}
	}
	if job.Spec.Image != "" {
		return job.Spec.Image, nil
	}
	return "", fmt.Errorf("job %s/%s: cannot tell which image its pods ran (none of them is left and spec.image is unset), "+
		"so no reader pod can be started; read the images through the gateway with --gateway", job.Namespace, job.Name)
}

// Copy reads the PNGs of images (each of job, succeeded) and calls each with the image and
// its contents, which must be read before each returns. It checks access, then starts one
// reader pod per node for a host folder (one in all for a claim), and deletes every reader
// before it returns, whatever happened.
func (c *Copier) Copy(ctx context.Context, job *sdfleetv1alpha1.ImageGenerationJob, images []sdfleetv1alpha1.ImageStatus,
	each func(img sdfleetv1alpha1.ImageStatus, contents io.Reader) error) error {
	if len(images) == 0 {
		return nil
	}
	if err := c.CheckAccess(ctx, job.Namespace); err != nil {
		return err
	}
	image, err := c.Image(ctx, job)
	if err != nil {
		return err
	}
	groups := map[string][]sdfleetv1alpha1.ImageStatus{}
	for _, img := range images {
		node := ""
		if job.Spec.Output.HostPath != nil {
			if img.Node == "" {
				return fmt.Errorf("image %d of %s/%s: its status names no node, and its host folder exists on one node only", img.Index, job.Namespace, job.Name)
			}
			node = img.Node
		}
		groups[node] = append(groups[node], img)
	}
	nodes := make([]string, 0, len(groups))
	for n := range groups {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	for _, node := range nodes {
		if err := c.copyFrom(ctx, job, image, node, groups[node], each); err != nil {
			return err
		}
	}
	return nil
}

func (c *Copier) logf(format string, args ...any) {
	if c.Log != nil {
		fmt.Fprintf(c.Log, format+"\n", args...)
	}
}

// copyFrom runs one reader pod and copies the images through it.
func (c *Copier) copyFrom(ctx context.Context, job *sdfleetv1alpha1.ImageGenerationJob, image, node string,
	images []sdfleetv1alpha1.ImageStatus, each func(sdfleetv1alpha1.ImageStatus, io.Reader) error) (err error) {
	pods := c.Kube.CoreV1().Pods(job.Namespace)
	pod, err := pods.Create(ctx, Pod(job, image, node), metav1.CreateOptions{})
	if err != nil {
		if apierrors.IsForbidden(err) {
			return fmt.Errorf("create the reader pod in namespace %s: %w (Pod Security or an admission policy of the "+
				"namespace refused it; read the images through the gateway with --gateway)", job.Namespace, err)
		}
		return fmt.Errorf("create the reader pod in namespace %s: %w", job.Namespace, err)
	}
	c.logf("reading %d images of %s/%s through pod %s%s", len(images), job.Namespace, job.Name, pod.Name, onNode(node))
	defer func() {
		// Deleted even when ctx was cancelled by an interrupt: a fresh, bounded context.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		derr := pods.Delete(dctx, pod.Name, metav1.DeleteOptions{})
		switch {
		case derr == nil || apierrors.IsNotFound(derr):
			c.logf("deleted pod %s", pod.Name)
		default:
			err = errors.Join(err, fmt.Errorf("delete the reader pod %s/%s: %w (it stops by itself within %v)",
				job.Namespace, pod.Name, derr, Lifetime))
		}
	}()
	if err := c.waitRunning(ctx, pod); err != nil {
		return err
	}
	byFile := make(map[string]sdfleetv1alpha1.ImageStatus, len(images))
	files := make([]string, 0, len(images))
	for _, img := range images {
		f := FileOf(job, img.Index)
		byFile[f] = img
		files = append(files, f)
	}
	for start := 0; start < len(files); start += imagestream.MaxFilesPerExport {
		chunk := files[start:min(start+imagestream.MaxFilesPerExport, len(files))]
		if err := c.export(ctx, pod, chunk, func(name string, r io.Reader) error {
			img, ok := byFile[name]
			if !ok {
				return fmt.Errorf("the reader pod sent %s, which was not asked for", name)
			}
			delete(byFile, name)
			return each(img, r)
		}); err != nil {
			return err
		}
	}
	for name, img := range byFile {
		return fmt.Errorf("image %d of %s/%s: the reader pod did not send %s", img.Index, job.Namespace, job.Name, name)
	}
	return nil
}

func onNode(node string) string {
	if node == "" {
		return ""
	}
	return " on node " + node
}

// waitRunning watches pod until its container runs, failing early on what will not get
// better (an image that cannot be pulled, a pod that ended) and after StartTimeout.
func (c *Copier) waitRunning(ctx context.Context, pod *corev1.Pod) error {
	timeout := c.StartTimeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	pods := c.Kube.CoreV1().Pods(pod.Namespace)
	last := pod
	for {
		w, err := pods.Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", pod.Name).String(),
			ResourceVersion: last.ResourceVersion})
		if err != nil {
			return c.notStarted(ctx, last, err)
		}
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			last = p
			if done, err := started(p); done {
				w.Stop()
				return err
			}
		}
		w.Stop()
		if ctx.Err() != nil {
			return c.notStarted(ctx, last, ctx.Err())
		}
		// The watch ended early (a timeout of the server's): read the pod and watch again.
		if p, err := pods.Get(ctx, pod.Name, metav1.GetOptions{}); err == nil {
			last = p
			if done, err := started(p); done {
				return err
			}
		}
	}
}

// started says whether p's container runs (done, nil), can no longer run (done, error), or
// may still start (not done).
func started(p *corev1.Pod) (bool, error) {
	switch p.Status.Phase {
	case corev1.PodRunning:
		return true, nil
	case corev1.PodSucceeded, corev1.PodFailed:
		return true, fmt.Errorf("the reader pod %s/%s ended before it could be read (%s): %s", p.Namespace, p.Name, p.Status.Phase, p.Status.Message)
	}
	for _, cs := range p.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil {
			switch w.Reason {
			case "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError", "CreateContainerError":
				return true, fmt.Errorf("the reader pod %s/%s cannot start: %s: %s", p.Namespace, p.Name, w.Reason, w.Message)
			}
		}
	}
	return false, nil
}

// notStarted explains why a reader pod did not start in time.
func (c *Copier) notStarted(ctx context.Context, p *corev1.Pod, cause error) error {
	why := string(p.Status.Phase)
	if why == "" {
		why = string(corev1.PodPending)
	}
	if p.Spec.NodeName == "" {
		why += ", not scheduled yet"
	}
	for _, cond := range p.Status.Conditions {
		if cond.Type == corev1.PodScheduled && cond.Status == corev1.ConditionFalse && cond.Message != "" {
			why += ": " + cond.Reason + ": " + cond.Message
		}
	}
	if errors.Is(cause, context.DeadlineExceeded) && ctx.Err() != nil {
		return fmt.Errorf("the reader pod %s/%s did not start within %v (%s)", p.Namespace, p.Name, c.StartTimeout, why)
	}
	return fmt.Errorf("wait for the reader pod %s/%s to start (%s): %w", p.Namespace, p.Name, why, cause)
}

// export execs the export of files in pod and hands each file of its stream to each.
func (c *Copier) export(ctx context.Context, pod *corev1.Pod, files []string, each func(string, io.Reader) error) error {
	req := c.Kube.CoreV1().RESTClient().Post().Resource("pods").Namespace(pod.Namespace).Name(pod.Name).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: ContainerName, Command: exportCommand(files), Stdout: true, Stderr: true},
			scheme.ParameterCodec)
	exec, err := newExecutor(c.Config, req.URL())
	if err != nil {
		return fmt.Errorf("exec in the reader pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	stdout, writer := io.Pipe()
	var stderr bytes.Buffer
	streamed := make(chan error, 1)
	go func() {
		err := exec.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: writer, Stderr: &limited{b: &stderr, n: 8 << 10}})
		_ = writer.CloseWithError(err)
		streamed <- err
	}()
	// An error of each (a checksum that differs, a full disk) is the one to report; a broken
	// stream is explained by the exec's own error and what export said on standard error.
	var handlerErr error
	readErr := imagestream.Read(stdout, func(name string, r io.Reader) error {
		handlerErr = each(name, r)
		return handlerErr
	})
	// Unblock the stream if reading stopped early, then wait for it.
	_ = stdout.CloseWithError(errors.New("the reader stopped reading"))
	execErr := <-streamed
	switch {
	case handlerErr != nil:
		return handlerErr
	case execErr != nil:
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return fmt.Errorf("read the images out of pod %s/%s: %s (%w)", pod.Namespace, pod.Name, msg, execErr)
		}
		return fmt.Errorf("read the images out of pod %s/%s: %w", pod.Namespace, pod.Name, execErr)
	}
	return readErr
}

// newExecutor streams over WebSockets, falling back to SPDY for API servers without them, as
// kubectl exec does.
func newExecutor(cfg *rest.Config, u *url.URL) (remotecommand.Executor, error) {
	ws, err := remotecommand.NewWebSocketExecutor(cfg, "GET", u.String())
	if err != nil {
		return nil, err
	}
	spdy, err := remotecommand.NewSPDYExecutor(cfg, "POST", u)
	if err != nil {
		return nil, err
	}
	return remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
}

// limited keeps the first n bytes written to it and drops the rest.
type limited struct {
	b *bytes.Buffer
	n int
}

func (l *limited) Write(p []byte) (int, error) {
	if room := l.n - l.b.Len(); room > 0 {
		l.b.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}
