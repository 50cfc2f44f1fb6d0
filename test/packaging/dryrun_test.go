package packaging

import (
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// fieldOwner is the field manager of the dry-run applies, as Helm's would be.
const fieldOwner = client.FieldOwner("helm")

var _ = Describe("the rendered chart on the API server", Ordered, func() {
	BeforeAll(func() {
		// The release namespace enforces Pod Security "restricted", so the API server's own
		// admission judges the workloads' pods.
		Expect(k8s.Create(suiteCtx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
			Name:   releaseNamespace,
			Labels: map[string]string{"pod-security.kubernetes.io/enforce": "restricted"},
		}})).To(Succeed())
		// Only the Prometheus Operator installs this CRD; a permissive stand-in lets the
		// ServiceMonitors reach the API server.
		Expect(k8s.Create(suiteCtx, serviceMonitorCRD())).To(Succeed())
		Eventually(func() error {
			return k8s.List(suiteCtx, &unstructured.UnstructuredList{Object: map[string]any{
				"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitorList"}})
		}).Should(Succeed())
	})

	DescribeTable("accepts every object with server-side dry-run",
		func(values map[string]any, wantKinds []string) {
			objs := render(GinkgoT(), values).Objects
			kinds := map[string]bool{}
			for _, u := range objs {
				kinds[u.GetKind()] = true
				err := k8s.Apply(suiteCtx, client.ApplyConfigurationFromUnstructured(u), fieldOwner,
					client.ForceOwnership, client.DryRunAll)
				Expect(err).NotTo(HaveOccurred(), "server-side dry-run apply of %s", Key(u))
			}
			for _, k := range wantKinds {
				Expect(kinds).To(HaveKey(k))
			}
		},
		Entry("default values", nil, []string{"CustomResourceDefinition", "Deployment", "DaemonSet", "ClusterRole", "Service"}),
		Entry("every option on", merge(set("simulate.enabled", true), set("metrics.serviceMonitor.enabled", true),
			set("dashboard.enabled", true)), []string{"ServiceMonitor", "ConfigMap", "DaemonSet"}),
	)

	DescribeTable("accepts every object of the kustomize configuration with server-side dry-run",
		func(dir string) {
			objs, err := RenderKustomize(filepath.Join(repoRoot, "config", dir))
			Expect(err).NotTo(HaveOccurred())
			Expect(objs).NotTo(BeEmpty())
			for _, u := range objs {
				err := k8s.Apply(suiteCtx, client.ApplyConfigurationFromUnstructured(u), fieldOwner,
					client.ForceOwnership, client.DryRunAll)
				Expect(err).NotTo(HaveOccurred(), "server-side dry-run apply of %s from config/%s", Key(u), dir)
			}
		},
		Entry("config/default", "default"),
		Entry("config/simulate", "simulate"),
	)

	It("accepts the first job NOTES.txt tells the user to submit", func() {
		notes := render(GinkgoT(), nil).Notes
		_, rest, found := strings.Cut(notes, "<<'JOB' | kubectl apply -f -\n")
		Expect(found).To(BeTrue(), "NOTES.txt has no job to apply:\n%s", notes)
		manifest, _, found := strings.Cut(rest, "\n  JOB\n")
		Expect(found).To(BeTrue(), "NOTES.txt's job has no end marker")
		objs, err := DecodeObjects(strings.NewReader(dedent(manifest, "  ")))
		Expect(err).NotTo(HaveOccurred())
		Expect(objs).To(HaveLen(1))
		Expect(objs[0].GetKind()).To(Equal("ImageGenerationJob"))
		objs[0].SetNamespace(releaseNamespace)
		Expect(k8s.Create(suiteCtx, objs[0], client.DryRunAll)).To(Succeed())
	})

	It("runs every workload but the node agent under Pod Security \"restricted\"", func() {
		objs := render(GinkgoT(), set("simulate.enabled", true)).Objects
		// Pod admission needs the ServiceAccounts for real; everything else stays a dry-run.
		for _, sa := range OfKind(objs, "ServiceAccount") {
			Expect(k8s.Apply(suiteCtx, client.ApplyConfigurationFromUnstructured(sa), fieldOwner)).To(Succeed())
		}
		workloads := append(OfKind(objs, "Deployment"), OfKind(objs, "DaemonSet")...)
		Expect(workloads).To(HaveLen(2))
		for _, w := range workloads {
			pod := podFromTemplate(w)
			err := k8s.Create(suiteCtx, pod, client.DryRunAll)
			if w.GetKind() == "DaemonSet" {
				// The node agent needs its host path and root; the API server must say so,
				// which also proves the namespace enforces the level.
				Expect(apierrors.IsForbidden(err)).To(BeTrue(), "the device plugin pod was not refused: %v", err)
				Expect(err.Error()).To(And(ContainSubstring("violates PodSecurity \"restricted"), ContainSubstring("hostPath")))
				Expect(err.Error()).NotTo(ContainSubstring("privileged"), "the device plugin must not be privileged")
				continue
			}
			Expect(err).NotTo(HaveOccurred(), "%s must pass Pod Security restricted", Key(w))
		}
	})

	It("runs the node agent in a namespace that allows privileged pods", func() {
		ns := "sdfleet-privileged"
		Expect(k8s.Create(suiteCtx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns,
			Labels: map[string]string{"pod-security.kubernetes.io/enforce": "privileged"}}})).To(Succeed())
		r, err := RenderChart(chartDir, Release{Name: releaseName, Namespace: ns}, nil)
		Expect(err).NotTo(HaveOccurred())
		sa := Find(r.Objects, "ServiceAccount", "sdfleet-deviceplugin")
		Expect(sa).NotTo(BeNil())
		Expect(k8s.Apply(suiteCtx, client.ApplyConfigurationFromUnstructured(sa), fieldOwner)).To(Succeed())
		ds := Find(r.Objects, "DaemonSet", "sdfleet-deviceplugin")
		Expect(ds).NotTo(BeNil())
		Expect(k8s.Create(suiteCtx, podFromTemplate(ds), client.DryRunAll)).To(Succeed())
	})
})

// podFromTemplate is the pod a workload's controller would create.
func podFromTemplate(w *unstructured.Unstructured) *corev1.Pod {
	tmpl, found, err := unstructured.NestedMap(w.Object, "spec", "template")
	Expect(err).NotTo(HaveOccurred())
	Expect(found).To(BeTrue(), "%s has no pod template", Key(w))
	var t corev1.PodTemplateSpec
	Expect(runtime.DefaultUnstructuredConverter.FromUnstructured(tmpl, &t)).To(Succeed())
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: strings.ToLower(w.GetKind()) + "-" + w.GetName(), Namespace: w.GetNamespace(),
			Labels: t.Labels, Annotations: t.Annotations,
		},
		Spec: t.Spec,
	}
}

// serviceMonitorCRD is a schema-less ServiceMonitor CRD.
func serviceMonitorCRD() *apiextensionsv1.CustomResourceDefinition {
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "servicemonitors.monitoring.coreos.com"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "monitoring.coreos.com",
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "servicemonitors", Singular: "servicemonitor",
				Kind: "ServiceMonitor", ListKind: "ServiceMonitorList"},
			Scope: apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: "v1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object", XPreserveUnknownFields: ptr.To(true)}},
			}},
		},
	}
}

// dedent removes prefix from the start of every line.
func dedent(text, prefix string) string {
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimPrefix(l, prefix)
	}
	return strings.Join(lines, "\n")
}
