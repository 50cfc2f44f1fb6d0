//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	"github.com/sdfleet/sdfleet/controllers"
)

// previousChartVersion is the release the suite installs first and upgrades from: the last
// released chart, kept packaged in test/testdata/charts (the README's "Upgrades and releases"
// says how it moves on at each release).
const previousChartVersion = "0.1.0"

var (
	previousChartArchive = filepath.Join(root, "test", "testdata", "charts", "sdfleet-"+previousChartVersion+".tgz")
	currentChartDir      = filepath.Join(root, "charts", "sdfleet")
)

// loadChart loads a chart folder or packaged archive with Helm's own loader.
func loadChart(path string) *chart.Chart {
	GinkgoHelper()
	c, err := loader.Load(path)
	Expect(err).NotTo(HaveOccurred(), "load chart %s", path)
	return c
}

// upgradeRun is what happened when the suite upgraded its release from the previous chart to
// the current one while a job ran; the upgrade spec judges it.
type upgradeRun struct {
	job *sdfleetv1alpha1.ImageGenerationJob
	// done is the job once Complete.
	done *sdfleetv1alpha1.ImageGenerationJob
	// crdChartsBefore are the CRDs' helm.sh/chart labels under the previous release.
	crdChartsBefore map[string]string
	// completeAtUpgrade: the job had already completed when the upgrade was done.
	completeAtUpgrade bool
	// managerStarted is when the current release's operator started.
	managerStarted time.Time
}

// upgradeWithRunningJob starts a job on the previous release, upgrades the release to the
// current chart with the values it was installed with while the job runs, as an administrator
// does, and waits for the job to complete. It runs while the suite is set up, so that every
// spec runs on the current chart and no spec shares the GPUs with this job.
func upgradeWithRunningJob(values []string) *upgradeRun {
	GinkgoHelper()
	u := &upgradeRun{crdChartsBefore: crdCharts()}

	// One image at a time: the job lasts well beyond the upgrade (4 pods one after the other,
	// each some seconds, against the replacement of one operator pod and one node agent pod).
	u.job = MakeJob("upgrade", newNamespace()).Images(4).Parallelism(1).Obj()
	Expect(k8s.Create(ctx, u.job)).To(Succeed())
	waitForActivePods(u.job)
	before := map[types.UID]bool{}
	for _, p := range managerPods() {
		before[p.UID] = true
	}

	args := []string{"upgrade", "sdfleet", currentChartDir, "--namespace", releaseNamespace, "--wait", "--timeout", "3m"}
	for _, v := range values {
		args = append(args, "--values", v)
	}
	run(helm, args...)
	got := &sdfleetv1alpha1.ImageGenerationJob{}
	Expect(k8s.Get(ctx, client.ObjectKeyFromObject(u.job), got)).To(Succeed())
	u.completeAtUpgrade = meta.IsStatusConditionTrue(got.Status.Conditions, sdfleetv1alpha1.JobComplete)

	Eventually(func(g Gomega) {
		var started []time.Time
		for _, p := range managerPods() {
			g.Expect(before).NotTo(HaveKey(p.UID), "the previous release's operator %s still runs", p.Name)
			g.Expect(p.Status.ContainerStatuses).NotTo(BeEmpty())
			running := p.Status.ContainerStatuses[0].State.Running
			g.Expect(running).NotTo(BeNil(), "operator %s is not running", p.Name)
			started = append(started, running.StartedAt.Time)
		}
		g.Expect(started).NotTo(BeEmpty())
		u.managerStarted = started[0]
	}).WithTimeout(2 * time.Minute).WithPolling(500 * time.Millisecond).Should(Succeed())
	u.done = waitComplete(u.job)
	return u
}

// forgetLearnedSpeeds starts the operator afresh, as on a new cluster: the placement specs
// expect GPUs of unknown speed, and the upgrade's job taught it some. The operator is stopped,
// the speeds it published (which a restarted operator restores) are removed, and it is started
// again.
func forgetLearnedSpeeds() {
	GinkgoHelper()
	scaleManager(0)
	Eventually(func(g Gomega) {
		pods := &corev1.PodList{}
		g.Expect(k8s.List(ctx, pods, client.InNamespace(releaseNamespace),
			client.MatchingLabels{"app.kubernetes.io/component": "manager"})).To(Succeed())
		g.Expect(pods.Items).To(BeEmpty())
	}).WithTimeout(time.Minute).WithPolling(500 * time.Millisecond).Should(Succeed())
	// Applying no field as the operator's field manager removes the fields it owns.
	speeds := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": sdfleetv1alpha1.GroupVersion.String(), "kind": "GPUNode", "metadata": map[string]any{"name": node},
	}}
	Expect(k8s.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(speeds),
		client.FieldOwner(controllers.SpeedFieldManager), client.ForceOwnership)).To(Succeed())
	gn := &sdfleetv1alpha1.GPUNode{}
	Expect(k8s.Get(ctx, client.ObjectKey{Name: node}, gn)).To(Succeed())
	Expect(gn.Status.LearnedSpeeds).To(BeEmpty())
	Expect(gn.Status.GPUs).To(HaveLen(gpus), "the node agent's part of the status stays")
	scaleManager(1)
	Eventually(func(g Gomega) {
		pods := managerPods()
		g.Expect(pods).To(HaveLen(1))
		g.Expect(pods[0].Status.ContainerStatuses).NotTo(BeEmpty())
		g.Expect(pods[0].Status.ContainerStatuses[0].Ready).To(BeTrue())
	}).WithTimeout(2 * time.Minute).WithPolling(500 * time.Millisecond).Should(Succeed())
}

func scaleManager(replicas int32) {
	GinkgoHelper()
	Eventually(func() error {
		d := &appsv1.Deployment{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: releaseNamespace, Name: "sdfleet-manager"}, d); err != nil {
			return err
		}
		d.Spec.Replicas = &replicas
		return k8s.Update(ctx, d)
	}).Should(Succeed())
}

// managerPods are the operator's pods that are not being deleted.
func managerPods() []corev1.Pod {
	GinkgoHelper()
	pods := &corev1.PodList{}
	Expect(k8s.List(ctx, pods, client.InNamespace(releaseNamespace),
		client.MatchingLabels{"app.kubernetes.io/component": "manager"})).To(Succeed())
	var out []corev1.Pod
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out
}

// crdCharts are the helm.sh/chart labels of sdfleet's CRDs on the API server, by CRD name.
func crdCharts() map[string]string {
	GinkgoHelper()
	out := map[string]string{}
	for _, name := range []string{"imagegenerationjobs.sdfleet.io", "gpunodes.sdfleet.io"} {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		Expect(k8s.Get(ctx, client.ObjectKey{Name: name}, crd)).To(Succeed())
		out[name] = crd.Labels["helm.sh/chart"]
	}
	return out
}

// pngFiles are the names of the files in the job's output folder on the node.
func pngFiles(job *sdfleetv1alpha1.ImageGenerationJob) []string {
	GinkgoHelper()
	entries, err := os.ReadDir(filepath.Join(outDir, job.Namespace, job.Name))
	Expect(err).NotTo(HaveOccurred())
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

func upgradeFromPreviousChart() bool {
	return Describe("Upgrades", func() {
		It("upgrades from chart "+previousChartVersion+" with a job running: the job completes with every image once, the CRDs are the chart's", func() {
			u := upgraded
			Expect(u).NotTo(BeNil(), "the suite's set-up did not upgrade the release")
			current := loadChart(currentChartDir)
			Expect(current.Metadata.Version).NotTo(Equal(previousChartVersion), "bump charts/sdfleet/Chart.yaml's version above the previous release's")

			By("the job ran across the upgrade and the current release's operator finished it")
			Expect(u.completeAtUpgrade).To(BeFalse(), "the job completed before the upgrade did: the spec proves nothing, give the job more images")
			complete := meta.FindStatusCondition(u.done.Status.Conditions, sdfleetv1alpha1.JobComplete)
			Expect(complete).NotTo(BeNil())
			Expect(complete.LastTransitionTime.Time).To(BeTemporally(">=", u.managerStarted.Truncate(time.Second)),
				"the job completed before the current release's operator started")

			By("every image made once: one succeeded pod, one status entry and one PNG per index")
			images := int(u.job.Spec.Images)
			Expect(u.done.Status.Succeeded).To(Equal(int32(images)))
			pods := imagePods(u.done)
			Expect(pods).To(HaveLen(images))
			var want []string
			for i := 0; i < images; i++ {
				Expect(pods).To(HaveKey(i))
				want = append(want, fmt.Sprintf("%d.png", i))
			}
			sort.Strings(want)
			Expect(pngFiles(u.done)).To(Equal(want))
			Expect(u.done.Status.Images).To(HaveLen(images))
			seen := map[int32]bool{}
			for _, st := range u.done.Status.Images {
				Expect(seen).NotTo(HaveKey(st.Index), "image %d twice in the status", st.Index)
				seen[st.Index] = true
				Expect(st.Phase).To(Equal(sdfleetv1alpha1.ImageSucceeded), "image %d", st.Index)
				Expect(st.PodName).To(Equal(pods[int(st.Index)].Name), "image %d's pod", st.Index)
			}
			expectImages(u.done)
			expectGPUsMatch(pods)

			By("the image pods ran the inference image of the registry")
			for _, p := range pods {
				registry.expectFromRegistry(p, "sdgen")
			}

			By("the CRDs were upgraded with the release (crds.enabled)")
			previousLabel := "sdfleet-" + previousChartVersion
			currentLabel := "sdfleet-" + current.Metadata.Version
			for name, label := range u.crdChartsBefore {
				Expect(label).To(Equal(previousLabel), "CRD %s before the upgrade", name)
			}
			for name, label := range crdCharts() {
				Expect(label).To(Equal(currentLabel), "CRD %s after the upgrade", name)
			}
			for _, f := range current.Files {
				if filepath.Dir(f.Name) != "files/crds" {
					continue
				}
				want := &apiextensionsv1.CustomResourceDefinition{}
				Expect(yaml.Unmarshal(f.Data, want)).To(Succeed(), f.Name)
				got := &apiextensionsv1.CustomResourceDefinition{}
				Expect(k8s.Get(ctx, client.ObjectKey{Name: want.Name}, got)).To(Succeed())
				Expect(got.Spec.Versions).To(HaveLen(len(want.Spec.Versions)))
				for i := range want.Spec.Versions {
					Expect(jsonOf(got.Spec.Versions[i].Schema)).To(MatchJSON(jsonOf(want.Spec.Versions[i].Schema)), "CRD %s version %s", want.Name, want.Spec.Versions[i].Name)
				}
			}

			By("the release is the current chart")
			var releases []struct{ Chart string }
			Expect(json.Unmarshal([]byte(run(helm, "list", "--namespace", releaseNamespace, "--output", "json")), &releases)).To(Succeed())
			Expect(releases).To(ContainElement(HaveField("Chart", currentLabel)))
		})
	})
}

func jsonOf(v any) string {
	GinkgoHelper()
	data, err := json.Marshal(v)
	Expect(err).NotTo(HaveOccurred())
	return string(data)
}
