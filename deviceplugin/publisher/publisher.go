package publisher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
)

// Node labels the agent sets.
const (
	LabelGPUPresent = "sdfleet.io/gpu.present"
	LabelGPUCount   = "sdfleet.io/gpu.count"
)

// DefaultFieldManager is the server-side apply field manager of the agent.
const DefaultFieldManager = "sdfleet-deviceplugin"

// Counter counts API writes; the metrics package implements it.
type Counter interface {
	APIWrite(object string)
	APIError()
}

type noCounter struct{}

func (noCounter) APIWrite(string) {}
func (noCounter) APIError()       {}

// Options configure a Publisher.
type Options struct {
	NodeName     string
	FieldManager string
	Rule         Rule
	Counter      Counter
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	Log logr.Logger
}

// Publisher writes one node's GPUNode status and Node labels. It is used from one goroutine.
type Publisher struct {
	client client.Client
	opts   Options

	objectReady bool
	labelled    bool
	labelCount  int32
	last        *sdfleetv1alpha1.GPUNodeStatus
	lastAt      time.Time

	mu          sync.Mutex
	writes      int64
	lastPublish time.Time
}

// New validates the options.
func New(c client.Client, opts Options) (*Publisher, error) {
	if opts.NodeName == "" {
		return nil, errors.New("node name is empty")
	}
	if err := opts.Rule.Validate(); err != nil {
		return nil, err
	}
	if opts.FieldManager == "" {
		opts.FieldManager = DefaultFieldManager
	}
	if opts.Counter == nil {
		opts.Counter = noCounter{}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Publisher{client: c, opts: opts}, nil
}

// Observe takes the newest status (without heartbeat time) and writes it if the rule says so.
// It returns whether it wrote. On error nothing is remembered, so the next call tries again.
func (p *Publisher) Observe(ctx context.Context, next sdfleetv1alpha1.GPUNodeStatus) (bool, error) {
	if !p.objectReady {
		if err := p.ensureObject(ctx); err != nil {
			return false, err
		}
		p.objectReady = true
	}
	// The labels are best effort: a failure to label the Node must not stop the load from
	// being published; it is retried next time.
	var labelErr error
	if !p.labelled || p.labelCount != next.GPUCount {
		if labelErr = p.labelNode(ctx, next.GPUCount); labelErr == nil {
			p.labelled, p.labelCount = true, next.GPUCount
		}
	}
	now := p.opts.Now()
	publish, why := p.opts.Rule.Decide(p.last, p.lastAt, &next, now)
	if !publish {
		return false, labelErr
	}
	next.LastHeartbeatTime = &metav1.Time{Time: now}
	err := p.applyStatus(ctx, &next)
	if apierrors.IsNotFound(err) {
		// Someone deleted the GPUNode; create it again and retry once.
		p.objectReady = false
		if err = p.ensureObject(ctx); err == nil {
			p.objectReady = true
			err = p.applyStatus(ctx, &next)
		}
	}
	if err != nil {
		return false, errors.Join(err, labelErr)
	}
	p.last, p.lastAt = &next, now
	p.mu.Lock()
	p.lastPublish = now
	p.mu.Unlock()
	p.opts.Log.V(1).Info("GPUNode status published", "reason", why, "gpus", next.GPUCount, "healthy", next.HealthyGPUs, "memoryUsedPercent", next.MemoryUsedPercent)
	return true, labelErr
}

// LastPublish is when the status was last written; zero before the first write.
func (p *Publisher) LastPublish() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastPublish
}

// Writes counts the API writes made so far.
func (p *Publisher) Writes() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.writes
}

func (p *Publisher) wrote(object string, err error) {
	if err != nil {
		p.opts.Counter.APIError()
		return
	}
	p.mu.Lock()
	p.writes++
	p.mu.Unlock()
	p.opts.Counter.APIWrite(object)
}

func (p *Publisher) gpuNode() *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion(sdfleetv1alpha1.GroupVersion.String())
	u.SetKind("GPUNode")
	u.SetName(p.opts.NodeName)
	return u
}

// ensureObject creates (or re-owns) the GPUNode with an owner reference to the Node.
func (p *Publisher) ensureObject(ctx context.Context) error {
	var node corev1.Node
	if err := p.client.Get(ctx, client.ObjectKey{Name: p.opts.NodeName}, &node); err != nil {
		return fmt.Errorf("get Node %s for the GPUNode's owner reference: %w", p.opts.NodeName, err)
	}
	u := p.gpuNode()
	u.SetOwnerReferences([]metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}})
	err := p.client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(p.opts.FieldManager), client.ForceOwnership)
	p.wrote("gpunode", err)
	if err != nil {
		return fmt.Errorf("apply GPUNode %s: %w", p.opts.NodeName, err)
	}
	return nil
}

func (p *Publisher) applyStatus(ctx context.Context, status *sdfleetv1alpha1.GPUNodeStatus) error {
	content, err := runtime.DefaultUnstructuredConverter.ToUnstructured(status)
	if err != nil {
		return fmt.Errorf("convert GPUNode status: %w", err)
	}
	u := p.gpuNode()
	u.Object["status"] = content
	err = p.client.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(p.opts.FieldManager), client.ForceOwnership)
	p.wrote("gpunode-status", err)
	if err != nil {
		return fmt.Errorf("apply status of GPUNode %s: %w", p.opts.NodeName, err)
	}
	return nil
}

// labelNode sets the GPU labels with a merge patch, which touches no other label.
func (p *Publisher) labelNode(ctx context.Context, count int32) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]string{
		LabelGPUPresent: strconv.FormatBool(count > 0),
		LabelGPUCount:   strconv.Itoa(int(count)),
	}}})
	if err != nil {
		return fmt.Errorf("encode Node label patch: %w", err)
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: p.opts.NodeName}}
	err = p.client.Patch(ctx, node, client.RawPatch(types.MergePatchType, patch))
	p.wrote("node-labels", err)
	if err != nil {
		return fmt.Errorf("label Node %s: %w", p.opts.NodeName, err)
	}
	return nil
}
