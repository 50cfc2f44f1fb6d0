package controllers

import (
	"context"
	"fmt"
	"sync"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"

	sdtesting "github.com/sdfleet/sdfleet/controllers/testing"
)

// podCreateCounter wraps the controller's client and counts its pod creations per reconcile,
// in the order the reconciles made their first one. refuse, when set, is asked before each
// creation with its number (from 1) and may refuse it, as a quota would.
type podCreateCounter struct {
	client.Client
	refuse func(n int) bool

	mu      sync.Mutex
	total   int
	order   []types.UID
	byRecon map[types.UID]int
}

func (c *podCreateCounter) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	if _, ok := obj.(*corev1.Pod); ok {
		id := controller.ReconcileIDFromContext(ctx)
		c.mu.Lock()
		c.total++
		n := c.total
		if _, seen := c.byRecon[id]; !seen {
			c.order = append(c.order, id)
		}
		c.byRecon[id]++
		c.mu.Unlock()
		if c.refuse != nil && c.refuse(n) {
			return apierrors.NewForbidden(corev1.Resource("pods"), obj.GetName(), fmt.Errorf("exceeded quota: pods"))
		}
	}
	return c.Client.Create(ctx, obj, opts...)
}

// perReconcile is how many pods each reconcile tried to create, in order.
func (c *podCreateCounter) perReconcile() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]int, 0, len(c.order))
	for _, id := range c.order {
		out = append(out, c.byRecon[id])
	}
	return out
}

var _ = Describe("Pod creation per reconcile", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })
	AfterEach(func() { deleteJobs(ns) })

	It("creates at most 500 pods per reconcile, in slow-start batches that stop at the first refusal", func() {
		const images = 700
		counter := &podCreateCounter{byRecon: map[types.UID]int{}}
		// The 10th creation is refused once: slow start has sent batches of 1, 2 and 4, and
		// stops after the batch of 8 it was in.
		counter.refuse = func(n int) bool { return n == 10 }
		stopManager()
		startManagerWith(func(c client.Client) client.Client { counter.Client = c; return counter })
		DeferCleanup(func() {
			stopManager()
			startManager()
		})

		// Room for every image at once: 8 GPUs of 400 GiB without a slot limit, 1 GiB each.
		node := "roomy-" + ns
		gn := sdtesting.MakeGPUNode(node)
		for i := int32(0); i < 8; i++ {
			gn.GPU(i, 0, 400, 0)
		}
		createGPUNode(gn.Obj())
		Expect(k8s.Create(suiteCtx, sdtesting.MakeJob("big", ns).Images(images).GPUMemoryPerImage(1).Obj())).To(Succeed())

		Eventually(func() int { return len(jobPods(ns, "big")) }, "120s", "200ms").Should(Equal(images))
		// 15 tries, the 10th refused; then 500 per reconcile until every image has its pod,
		// the refused one included.
		Expect(counter.perReconcile()).To(Equal([]int{15, 500, images - 14 - 500}))
		want := make([]string, images)
		for i := range want {
			want[i] = fmt.Sprintf("big-%d", i)
		}
		Expect(podNames(jobPods(ns, "big"))).To(ConsistOf(want), "one pod per image, none created twice")
		// The pods go in one request, not one by one after the job, as the garbage collector
		// of a full cluster would take them.
		Expect(k8s.DeleteAllOf(suiteCtx, &corev1.Pod{}, client.InNamespace(ns))).To(Succeed())
	})
})
