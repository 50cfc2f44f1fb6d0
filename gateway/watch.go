package gateway

import (
	"context"
	"fmt"
	"reflect"
	"sync"

	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	crcache "sigs.k8s.io/controller-runtime/pkg/cache"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	"github.com/sdfleet/sdfleet/controllers/reservations"
)

// watcher turns informer events into wake-ups for requests waiting on a job and into the
// events of the /v1/events streams. It also keeps sdfleet's reservations on each GPU, summed
// from every job's status (package reservations), so that a job's image starting or finishing
// sends the GPU's new share to the streams.
type watcher struct {
	mu      sync.Mutex
	waiters map[types.NamespacedName]map[chan struct{}]struct{}
	subs    map[*subscriber]struct{}
	// shares are each job's reservations by GPU UUID, totals their sum, gpus the last state
	// of each GPU the GPUNode events showed.
	shares map[types.NamespacedName]map[string]reservations.Share
	totals map[string]reservations.Share
	gpus   map[string]GPU
}

func newWatcher() *watcher {
	return &watcher{waiters: map[types.NamespacedName]map[chan struct{}]struct{}{}, subs: map[*subscriber]struct{}{},
		shares: map[types.NamespacedName]map[string]reservations.Share{}, totals: map[string]reservations.Share{}, gpus: map[string]GPU{}}
}

// addShares sets sdfleet's reservations on each of gpus.
func (w *watcher) addShares(gpus []GPU) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := range gpus {
		gpus[i] = gpus[i].withShare(w.totals[gpus[i].UUID])
	}
}

// setShares records key's reservations (nil once the job is gone) and returns the UUIDs of the
// GPUs whose total changed. Called with mu held.
func (w *watcher) setShares(key types.NamespacedName, now map[string]reservations.Share) []string {
	before := w.shares[key]
	var changed []string
	for uuid, s := range before {
		if now[uuid] != s {
			changed = append(changed, uuid)
		}
	}
	for uuid, s := range now {
		if _, ok := before[uuid]; !ok && s != (reservations.Share{}) {
			changed = append(changed, uuid)
		}
	}
	for _, uuid := range changed {
		t := w.totals[uuid]
		t.Bytes += now[uuid].Bytes - before[uuid].Bytes
		t.Images += now[uuid].Images - before[uuid].Images
		if t == (reservations.Share{}) {
			delete(w.totals, uuid)
		} else {
			w.totals[uuid] = t
		}
	}
	if now == nil {
		delete(w.shares, key)
	} else {
		w.shares[key] = now
	}
	return changed
}

// sendGPUs sends the current state of the GPUs uuids to the streams allowed to see GPUs.
// Called with mu held.
func (w *watcher) sendGPUs(uuids []string) {
	for _, uuid := range uuids {
		g, ok := w.gpus[uuid]
		if !ok {
			continue // not published (yet): its node's event will carry the share
		}
		g = g.withShare(w.totals[uuid])
		for s := range w.subs {
			if s.gpus {
				s.send(event{Type: "gpu", Data: g})
			}
		}
	}
}

// register hooks the watcher to the cache's ImageGenerationJob and GPUNode informers.
func (w *watcher) register(ctx context.Context, c crcache.Cache) error {
	jobs, err := c.GetInformer(ctx, &sdfleetv1alpha1.ImageGenerationJob{})
	if err != nil {
		return fmt.Errorf("informer of ImageGenerationJobs: %w", err)
	}
	if _, err := jobs.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { w.jobChanged(nil, asJob(obj)) },
		UpdateFunc: func(old, obj any) { w.jobChanged(asJob(old), asJob(obj)) },
		DeleteFunc: func(obj any) {
			if gone, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				obj = gone.Obj
			}
			w.jobDeleted(asJob(obj))
		},
	}); err != nil {
		return fmt.Errorf("watch ImageGenerationJobs: %w", err)
	}
	nodes, err := c.GetInformer(ctx, &sdfleetv1alpha1.GPUNode{})
	if err != nil {
		return fmt.Errorf("informer of GPUNodes: %w", err)
	}
	if _, err := nodes.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { w.gpuNodeChanged(nil, asGPUNode(obj)) },
		UpdateFunc: func(old, obj any) { w.gpuNodeChanged(asGPUNode(old), asGPUNode(obj)) },
	}); err != nil {
		return fmt.Errorf("watch GPUNodes: %w", err)
	}
	return nil
}

func asJob(obj any) *sdfleetv1alpha1.ImageGenerationJob {
	j, _ := obj.(*sdfleetv1alpha1.ImageGenerationJob)
	return j
}

func asGPUNode(obj any) *sdfleetv1alpha1.GPUNode {
	n, _ := obj.(*sdfleetv1alpha1.GPUNode)
	return n
}

// wait returns a channel that receives after the next change of the job; call cancel when
// done with it.
func (w *watcher) wait(key types.NamespacedName) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	w.mu.Lock()
	if w.waiters[key] == nil {
		w.waiters[key] = map[chan struct{}]struct{}{}
	}
	w.waiters[key][ch] = struct{}{}
	w.mu.Unlock()
	return ch, func() {
		w.mu.Lock()
		delete(w.waiters[key], ch)
		if len(w.waiters[key]) == 0 {
			delete(w.waiters, key)
		}
		w.mu.Unlock()
	}
}

func (w *watcher) jobChanged(old, job *sdfleetv1alpha1.ImageGenerationJob) {
	if job == nil {
		return
	}
	key := types.NamespacedName{Namespace: job.Namespace, Name: job.Name}
	ev := jobEventOf(job)
	changed := old == nil || !reflect.DeepEqual(jobEventOf(old), ev)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sendGPUs(w.setShares(key, reservations.OfJob(job)))
	for ch := range w.waiters[key] {
		select {
		case ch <- struct{}{}:
		default: // a wake-up is already pending
		}
	}
	if changed {
		for s := range w.subs {
			if s.namespace == job.Namespace {
				s.send(event{Type: "job", Data: ev})
			}
		}
	}
}

// jobDeleted releases the reservations of a deleted job.
func (w *watcher) jobDeleted(job *sdfleetv1alpha1.ImageGenerationJob) {
	if job == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sendGPUs(w.setShares(types.NamespacedName{Namespace: job.Namespace, Name: job.Name}, nil))
}

func (w *watcher) gpuNodeChanged(old, node *sdfleetv1alpha1.GPUNode) {
	if node == nil {
		return
	}
	before := map[int32]GPU{}
	if old != nil {
		for _, g := range gpusOf(old) {
			before[g.Index] = g
		}
	}
	var changed []GPU
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, g := range gpusOf(node) {
		w.gpus[g.UUID] = g
		if prev, ok := before[g.Index]; !ok || !prev.sameState(g) {
			changed = append(changed, g.withShare(w.totals[g.UUID]))
		}
	}
	if len(changed) == 0 {
		return
	}
	for s := range w.subs {
		if s.gpus {
			for _, g := range changed {
				s.send(event{Type: "gpu", Data: g})
			}
		}
	}
}

// subscribe adds an event stream; the returned function removes it.
func (w *watcher) subscribe(s *subscriber) func() {
	w.mu.Lock()
	w.subs[s] = struct{}{}
	w.mu.Unlock()
	return func() {
		w.mu.Lock()
		delete(w.subs, s)
		w.mu.Unlock()
	}
}

// event is one Server-Sent Event.
type event struct {
	Type string
	Data any
}

// subscriber is one /v1/events stream: job events of its namespace, GPU events if allowed.
type subscriber struct {
	namespace string
	gpus      bool
	events    chan event
	// overflow is closed when the client reads too slowly to keep up; the stream then ends
	// with an "overflow" event so that the client reconnects and starts from a snapshot.
	overflow     chan struct{}
	overflowOnce sync.Once
}

func newSubscriber(namespace string, gpus bool) *subscriber {
	return &subscriber{namespace: namespace, gpus: gpus, events: make(chan event, 256), overflow: make(chan struct{})}
}

func (s *subscriber) send(e event) {
	select {
	case s.events <- e:
	default:
		s.overflowOnce.Do(func() { close(s.overflow) })
	}
}
