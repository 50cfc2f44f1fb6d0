package controllers

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	"github.com/sdfleet/sdfleet/controllers/jobpolicy"
	"github.com/sdfleet/sdfleet/controllers/placement"
	sdtesting "github.com/sdfleet/sdfleet/controllers/testing"
	"github.com/sdfleet/sdfleet/test/envtest"
)

// The suite shares one API server; each test works in its own namespace and on GPU nodes with
// their own names, and the manager runs for the whole suite (the restart test replaces it).
var (
	env       *envtest.Environment
	k8s       client.Client
	suiteCtx  context.Context
	stopSuite context.CancelFunc
	stopMgr   context.CancelFunc
	mgrDone   chan struct{}
	// mgrCache is the running manager's cache: tests wait for it to see their fixtures.
	mgrCache  cache.Cache
	nsCounter atomic.Int32
)

func TestControllers(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "ImageGenerationJob controller")
}

var _ = BeforeSuite(func() {
	ctrl.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	// The machine running the tests may be busy: give the controller time, never sleep.
	SetDefaultEventuallyTimeout(20 * time.Second)
	SetDefaultEventuallyPollingInterval(20 * time.Millisecond)
	suiteCtx, stopSuite = context.WithCancel(context.Background())
	var err error
	env, err = envtest.Start()
	Expect(err).NotTo(HaveOccurred())
	k8s, err = client.New(env.Config, client.Options{Scheme: envtest.Scheme()})
	Expect(err).NotTo(HaveOccurred())
	startManager()
})

var _ = AfterSuite(func() {
	stopManager()
	stopSuite()
	if env != nil {
		Expect(env.Stop()).To(Succeed())
	}
})

// startManager starts a manager running the controller, as cmd/manager does (without leader
// election and listeners).
func startManager() { startManagerWith(nil) }

// startManagerWith starts the manager with the controller's client wrapped by wrap (nil: as
// it is), so that a test can see or refuse the controller's requests.
func startManagerWith(wrap func(client.Client) client.Client) {
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:                 envtest.Scheme(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  cache.Options{ByObject: CacheByObject()},
	})
	Expect(err).NotTo(HaveOccurred())
	recorder := recordingRecorder{EventRecorder: mgr.GetEventRecorder("sdfleet-controller"), log: emitted}
	c := mgr.GetClient()
	if wrap != nil {
		c = wrap(c)
	}
	r := NewReconciler(c, recorder, Config{
		DefaultImage: "ghcr.io/sdfleet/sdgen:test",
		// The fixtures' host folders (sdtesting.MakeJob) and nothing else; policy_test.go
		// asks for others.
		Policy:              jobpolicy.Policy{HostPathPrefixes: []string{"/models", "/srv"}, ImagePrefixes: []string{"ghcr.io/sdfleet/sdgen"}},
		PodEventBatchPeriod: 20 * time.Millisecond,
		// The fixtures' heartbeats are written once; they must not go stale during a test.
		Placement:          placement.Config{SampleInterval: time.Hour},
		SkipNameValidation: true,
		// Learned speeds reach the GPUNodes quickly.
		SpeedPublishInterval: 50 * time.Millisecond,
	})
	Expect(r.SetupWithManager(mgr)).To(Succeed())
	ctx, cancel := context.WithCancel(suiteCtx)
	done := make(chan struct{})
	go func() {
		defer GinkgoRecover()
		defer close(done)
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
	stopMgr, mgrDone, mgrCache = cancel, done, mgr.GetCache()
}

// emitted holds every event the controller emits. The API folds events of one reason about
// one object into a series, so counting there cannot tell how many were sent.
var emitted = &eventLog{notes: map[types.NamespacedName]map[string][]string{}}

type eventLog struct {
	mu    sync.Mutex
	notes map[types.NamespacedName]map[string][]string
}

// recordingRecorder notes each event in its log, then records it.
type recordingRecorder struct {
	events.EventRecorder
	log *eventLog
}

func (r recordingRecorder) Eventf(regarding, related runtime.Object, eventType, reason, action, note string, args ...any) {
	if obj, ok := regarding.(client.Object); ok {
		r.log.mu.Lock()
		key := client.ObjectKeyFromObject(obj)
		if r.log.notes[key] == nil {
			r.log.notes[key] = map[string][]string{}
		}
		r.log.notes[key][reason] = append(r.log.notes[key][reason], fmt.Sprintf(note, args...))
		r.log.mu.Unlock()
	}
	r.EventRecorder.Eventf(regarding, related, eventType, reason, action, note, args...)
}

// emittedEvents returns the notes of the events the controller emitted about a job, by reason.
func emittedEvents(ns, job string) map[string][]string {
	emitted.mu.Lock()
	defer emitted.mu.Unlock()
	out := map[string][]string{}
	for reason, notes := range emitted.notes[types.NamespacedName{Namespace: ns, Name: job}] {
		out[reason] = append([]string(nil), notes...)
	}
	return out
}

func stopManager() {
	if stopMgr != nil {
		stopMgr()
		<-mgrDone
		stopMgr = nil
	}
}

// newNamespace creates a namespace for one test.
func newNamespace() string {
	name := fmt.Sprintf("t%d", nsCounter.Add(1))
	Expect(k8s.Create(suiteCtx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})).To(Succeed())
	return name
}

// deleteJobs deletes the jobs of a test and waits for their pods to go, so that they do not
// compete for the next test's GPUs.
func deleteJobs(ns string) {
	Expect(k8s.DeleteAllOf(suiteCtx, &sdfleetv1alpha1.ImageGenerationJob{}, client.InNamespace(ns))).To(Succeed())
	Eventually(func() int {
		var list corev1.PodList
		Expect(k8s.List(suiteCtx, &list, client.InNamespace(ns))).To(Succeed())
		return len(list.Items)
	}).Should(BeZero())
}

// createGPUNode creates a GPUNode with its status, and deletes it when the test ends.
func createGPUNode(gn *sdfleetv1alpha1.GPUNode) {
	status := gn.Status.DeepCopy()
	Expect(k8s.Create(suiteCtx, gn)).To(Succeed())
	gn.Status = *status
	Expect(k8s.Status().Update(suiteCtx, gn)).To(Succeed())
	// Jobs created next must see it: in a running cluster GPUNodes exist long before jobs.
	Eventually(func() int {
		var cached sdfleetv1alpha1.GPUNode
		if err := mgrCache.Get(suiteCtx, client.ObjectKeyFromObject(gn), &cached); err != nil {
			return -1
		}
		return len(cached.Status.GPUs)
	}).Should(Equal(len(status.GPUs)))
	DeferCleanup(func() {
		Expect(client.IgnoreNotFound(k8s.Delete(suiteCtx, gn))).To(Succeed())
	})
}

// updateGPUNode changes a GPUNode's status.
func updateGPUNode(name string, change func(*sdfleetv1alpha1.GPUNode)) {
	Eventually(func() error {
		var gn sdfleetv1alpha1.GPUNode
		if err := k8s.Get(suiteCtx, types.NamespacedName{Name: name}, &gn); err != nil {
			return err
		}
		change(&gn)
		now := metav1.NewTime(time.Now())
		gn.Status.LastHeartbeatTime = &now
		return k8s.Status().Update(suiteCtx, &gn)
	}).Should(Succeed())
}

// jobPods lists the pods of a job, sorted by name.
func jobPods(ns, job string) []corev1.Pod {
	var list corev1.PodList
	Expect(k8s.List(suiteCtx, &list, client.InNamespace(ns), client.MatchingLabels{LabelJob: job})).To(Succeed())
	sort.Slice(list.Items, func(a, b int) bool { return list.Items[a].Name < list.Items[b].Name })
	return list.Items
}

// activePods are the job's pods that neither finished nor are being deleted.
func activePods(ns, job string) []corev1.Pod {
	var out []corev1.Pod
	for _, p := range jobPods(ns, job) {
		if p.DeletionTimestamp == nil && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			out = append(out, p)
		}
	}
	return out
}

// eventuallyActivePods waits until the job has exactly n active pods and returns them.
func eventuallyActivePods(ns, job string, n int) []corev1.Pod {
	var pods []corev1.Pod
	Eventually(func() []corev1.Pod {
		pods = activePods(ns, job)
		return pods
	}).Should(HaveLen(n))
	return pods
}

// podsPerGPU counts pods by their GPU UUID annotation.
func podsPerGPU(pods []corev1.Pod) map[string]int {
	out := map[string]int{}
	for _, p := range pods {
		out[p.Annotations[AnnotationGPUUUID]]++
	}
	return out
}

// setPodStatus plays the kubelet for one pod.
func setPodStatus(ns, name string, change func(*corev1.Pod)) {
	Eventually(func() error {
		var pod corev1.Pod
		if err := k8s.Get(suiteCtx, types.NamespacedName{Namespace: ns, Name: name}, &pod); err != nil {
			return err
		}
		change(&pod)
		return k8s.Status().Update(suiteCtx, &pod)
	}).Should(Succeed())
}

func succeedPod(ns, name string) {
	setPodStatus(ns, name, func(p *corev1.Pod) {
		sdtesting.SetTerminated(p, 0, sdtesting.SuccessMessage(p, 1500, "cuda:0"), time.Now())
	})
}

func failPod(ns, name string, exitCode int32, message string) {
	setPodStatus(ns, name, func(p *corev1.Pod) { sdtesting.SetTerminated(p, exitCode, message, time.Now()) })
}

func runPod(ns, name string) {
	setPodStatus(ns, name, func(p *corev1.Pod) { sdtesting.SetRunning(p, time.Now()) })
}

// getJob reads a job.
func getJob(ns, name string) *sdfleetv1alpha1.ImageGenerationJob {
	var job sdfleetv1alpha1.ImageGenerationJob
	Expect(k8s.Get(suiteCtx, types.NamespacedName{Namespace: ns, Name: name}, &job)).To(Succeed())
	return &job
}

// jobStatus is a Gomega-friendly reader of a job's status.
func jobStatus(ns, name string) func() sdfleetv1alpha1.ImageGenerationJobStatus {
	return func() sdfleetv1alpha1.ImageGenerationJobStatus {
		var job sdfleetv1alpha1.ImageGenerationJob
		if err := k8s.Get(suiteCtx, types.NamespacedName{Namespace: ns, Name: name}, &job); err != nil {
			return sdfleetv1alpha1.ImageGenerationJobStatus{}
		}
		return job.Status
	}
}

// conditionReason returns the status and reason of a condition, "" when absent.
func conditionReason(status sdfleetv1alpha1.ImageGenerationJobStatus, condType string) string {
	for _, c := range status.Conditions {
		if c.Type == condType {
			return string(c.Status) + "/" + c.Reason
		}
	}
	return ""
}

// jobEvents returns the notes of the events about a job, by reason.
func jobEvents(ns, job string) map[string][]string {
	var list eventsv1.EventList
	Expect(k8s.List(suiteCtx, &list, client.InNamespace(ns))).To(Succeed())
	out := map[string][]string{}
	for _, e := range list.Items {
		if e.Regarding.Name == job {
			out[e.Reason] = append(out[e.Reason], e.Note)
		}
	}
	return out
}

func isNotFound(err error) bool { return apierrors.IsNotFound(err) }

func podNames(pods []corev1.Pod) []string {
	names := make([]string, 0, len(pods))
	for _, p := range pods {
		names = append(names, p.Name)
	}
	return names
}
