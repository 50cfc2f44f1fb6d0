package packaging

import (
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gexec"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	"github.com/sdfleet/sdfleet/controllers"
	"github.com/sdfleet/sdfleet/controllers/podcontract"
	sdtesting "github.com/sdfleet/sdfleet/controllers/testing"
)

// The dashboard's variables as Grafana would fill them with "All" selected; the ranges cover
// the whole test.
var dashboardVariables = strings.NewReplacer(
	"$node", ".*", "$gpu", ".*", "$__rate_interval", "1m", "$__range", "5m", "$__interval", "1s",
)

// The simulated node and its GPUs.
const (
	simNode    = "gpu-node-a"
	simulation = `gpus:
- {product: NVIDIA H100 80GB HBM3, memoryMiB: 81920, uuid: GPU-11111111-0000-4000-8000-000000000000, memoryUsedPercent: 10, utilizationPercent: 20}
- {product: NVIDIA L40S, memoryMiB: 46068, uuid: GPU-22222222-0000-4000-8000-000000000000, memoryUsedPercent: 30, utilizationPercent: 50}
timeline:
- {at: 1s, gpu: 1, xid: 13}
`
	jobImages = 6
)

var _ = Describe("the Grafana dashboard", Ordered, func() {
	var (
		prom                  promClient
		devicePlugin, manager string
	)

	BeforeAll(func() {
		prometheus := prometheusBinary()
		dir := GinkgoT().TempDir()

		By("building the node agent and the operator as `make build` does")
		devicePlugin = binary("SDFLEET_DEVICEPLUGIN_BINARY", "github.com/sdfleet/sdfleet/cmd/deviceplugin",
			[]string{"CGO_ENABLED=1"}, "-ldflags=-extldflags=-Wl,-z,lazy")
		manager = binary("SDFLEET_MANAGER_BINARY", "github.com/sdfleet/sdfleet/cmd/manager", []string{"CGO_ENABLED=0"})

		kubeconfig := writeKubeconfig(dir)
		Expect(k8s.Create(suiteCtx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: simNode}})).To(Succeed())
		scenario := filepath.Join(dir, "gpus.yaml")
		Expect(os.WriteFile(scenario, []byte(simulation), 0o600)).To(Succeed())
		agentAddr, managerAddr, promAddr := freeAddress(), freeAddress(), freeAddress()

		By("starting the node agent with simulated GPUs and the operator against the API server")
		// No kubelet runs here: the agent only publishes load and metrics.
		startProcess(devicePlugin, "--node-name="+simNode, "--kubeconfig="+kubeconfig, "--gpu-source=simulated",
			"--simulator-config="+scenario, "--enable-kubelet-plugin=false", "--sample-interval=200ms",
			"--heartbeat-interval=1s", "--metrics-bind-address="+agentAddr, "--health-probe-bind-address=127.0.0.1:0",
			"--simulator-control-bind-address=0")
		// The job's host folders (sdtesting.MakeJob) are the only ones allowed.
		startProcess(manager, "--kubeconfig="+kubeconfig, "--leader-elect=false", "--metrics-bind-address="+managerAddr,
			"--health-probe-bind-address=0", "--pod-event-batch-period=0", "--gpu-sample-interval=1s",
			"--allowed-host-path-prefixes=/models,/srv")

		By("starting Prometheus on a loopback port, scraping both every second")
		config := filepath.Join(dir, "prometheus.yml")
		Expect(os.WriteFile(config, []byte(fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
- job_name: sdfleet-deviceplugin
  static_configs: [{targets: [%q]}]
- job_name: sdfleet-manager
  static_configs: [{targets: [%q]}]
`, agentAddr, managerAddr)), 0o600)).To(Succeed())
		startProcess(prometheus, "--config.file="+config, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
			"--web.listen-address="+promAddr, "--log.level=warn")
		prom = promClient{base: "http://" + promAddr}
		Eventually(func(g Gomega) {
			up := prom.query(g, "up == 1")
			g.Expect(up.Data.Result).To(HaveLen(2), "both targets up")
		}).Should(Succeed())
	})

	It("runs binaries that accept every flag the chart and config/ give them", func() {
		chart := render(GinkgoT(), set("simulate.enabled", true)).Objects
		kust, err := RenderKustomize(filepath.Join(repoRoot, "config", "default"))
		Expect(err).NotTo(HaveOccurred())
		for _, w := range []struct {
			objs       []*unstructured.Unstructured
			kind, name string
			binary     string
		}{
			{chart, "Deployment", "sdfleet-manager", manager},
			{chart, "DaemonSet", "sdfleet-deviceplugin", devicePlugin},
			{kust, "Deployment", "sdfleet-manager", manager},
			{kust, "DaemonSet", "sdfleet-deviceplugin", devicePlugin},
		} {
			obj := Find(w.objs, w.kind, w.name)
			Expect(obj).NotTo(BeNil())
			flags := args(container(GinkgoT(), podSpec(GinkgoT(), obj)))
			Expect(flags).NotTo(BeEmpty())
			// Both programs parse every flag before --help and exit 0 only if all are known
			// and well-formed.
			cmd := exec.Command(w.binary, append(flags, "--help")...)
			cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
			out, err := cmd.CombinedOutput()
			Expect(err).NotTo(HaveOccurred(), "%s %s: %s refuses %v:\n%s", w.kind, w.name, filepath.Base(w.binary), flags, out)
		}
	})

	It("evaluates every PromQL expression of the dashboard with data while a job runs", func() {
		ns := "dashboard"
		Expect(k8s.Create(suiteCtx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
		Eventually(func(g Gomega) {
			var gn sdfleetv1alpha1.GPUNode
			g.Expect(k8s.Get(suiteCtx, client.ObjectKey{Name: simNode}, &gn)).To(Succeed())
			g.Expect(gn.Status.GPUs).To(HaveLen(2))
		}).Should(Succeed())
		job := sdtesting.MakeJob("dashboard", ns).Images(jobImages).Parallelism(2).Obj()
		Expect(k8s.Create(suiteCtx, job)).To(Succeed())

		By("playing the kubelet: one out-of-memory failure, then every image succeeds")
		retried := false
		for succeeded := 0; succeeded < jobImages; {
			pod := nextActivePod(ns, job.Name)
			if !retried {
				failPod(pod, podcontract.ExitOutOfMemory, "CUDA out of memory")
				retried = true
				Eventually(func(g Gomega) float64 { return prom.scalar(g, "sum(sdfleet_image_retries_total)") }).Should(BeNumerically(">=", 1))
				continue
			}
			// Durations spread over several histogram buckets, for the percentiles.
			succeedPod(pod, int64(700*(succeeded+1)))
			succeeded++
			// Prometheus must see each step, so that the counters' rates have increases.
			Eventually(func(g Gomega) float64 {
				return prom.scalar(g, `sum(sdfleet_job_images{phase="Succeeded"})`)
			}).Should(BeNumerically("==", succeeded))
		}

		By("evaluating the dashboard's variables and panels through Prometheus' HTTP API")
		dash := loadDashboard()
		for _, v := range dash.variables() {
			values := prom.labelValues(v.label, v.match)
			Expect(values).NotTo(BeEmpty(), "variable %s (%s) has no values", v.name, v.query)
			if v.label == "node" {
				Expect(values).To(ContainElement(simNode))
			}
		}
		var evaluated, withData, dcgm int
		for _, t := range dash.targets() {
			expr := dashboardVariables.Replace(t.expr)
			Expect(expr).NotTo(ContainSubstring("$"), "panel %q: unknown variable in %s", t.panel, t.expr)
			res := prom.queryOK(expr)
			evaluated++
			if t.dcgm {
				// No dcgm-exporter here: the expression must parse, data is not expected.
				dcgm++
				continue
			}
			fmt.Fprintf(GinkgoWriter, "panel %q: %d series, first %v\n", t.panel, len(res.Data.Result), firstValue(res))
			Expect(res.Data.Result).NotTo(BeEmpty(), "panel %q returned no data for %s", t.panel, expr)
			Expect(res.hasNumber()).To(BeTrue(), "panel %q returned only NaN for %s: %v", t.panel, expr, res.Data.Result)
			withData++
		}
		Expect(withData).To(BeNumerically(">", 0))
		AddReportEntry("dashboard check", fmt.Sprintf("%d expressions evaluated: %d returned data, %d DCGM expressions parsed (no dcgm-exporter)",
			evaluated, withData, dcgm))
		fmt.Fprintf(GinkgoWriter, "dashboard check: %d expressions evaluated, %d returned data, %d DCGM parsed without data\n", evaluated, withData, dcgm)
	})
})

// binary returns the program named by the environment variable env (for example what `make
// build` wrote), else builds pkg with the given environment and flags.
func binary(env, pkg string, buildEnv []string, flags ...string) string {
	if path := os.Getenv(env); path != "" {
		return path
	}
	path, err := gexec.BuildWithEnvironment(pkg, buildEnv, flags...)
	Expect(err).NotTo(HaveOccurred(), "build %s", pkg)
	DeferCleanup(gexec.CleanupBuildArtifacts)
	return path
}

// prometheusBinary finds Prometheus: $PROMETHEUS, else prometheus on PATH (Debian's package).
func prometheusBinary() string {
	if p := os.Getenv("PROMETHEUS"); p != "" {
		return p
	}
	p, err := exec.LookPath("prometheus")
	Expect(err).NotTo(HaveOccurred(), "prometheus not found: install it with `apt-get install prometheus` "+
		"(hack/install-prerequisites.sh) or set $PROMETHEUS")
	return p
}

// startProcess runs a command for the rest of the spec and stops it afterwards.
func startProcess(path string, args ...string) {
	cmd := exec.Command(path, args...)
	// The test's own SDFLEET_* variables must not reach the binaries.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	s, err := gexec.Start(cmd, GinkgoWriter, GinkgoWriter)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() { s.Terminate().Wait(20 * time.Second) })
}

// freeAddress returns a loopback address with a port nothing listens on now.
func freeAddress() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	defer l.Close()
	return l.Addr().String()
}

// writeKubeconfig writes envtest's admin credentials for the binaries' --kubeconfig.
func writeKubeconfig(dir string) string {
	cfg := testEnv.Config
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}
	kc.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "admin"}
	kc.CurrentContext = "envtest"
	path := filepath.Join(dir, "kubeconfig")
	Expect(clientcmd.WriteToFile(*kc, path)).To(Succeed())
	return path
}

// nextActivePod waits for a pod of the job that has not finished and returns the first by name.
func nextActivePod(ns, job string) *corev1.Pod {
	var next *corev1.Pod
	Eventually(func(g Gomega) {
		var list corev1.PodList
		g.Expect(k8s.List(suiteCtx, &list, client.InNamespace(ns), client.MatchingLabels{controllers.LabelJob: job})).To(Succeed())
		sort.Slice(list.Items, func(a, b int) bool { return list.Items[a].Name < list.Items[b].Name })
		next = nil
		for i := range list.Items {
			p := &list.Items[i]
			if p.DeletionTimestamp == nil && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
				next = p
				break
			}
		}
		g.Expect(next).NotTo(BeNil(), "an active pod of job %s", job)
	}).Should(Succeed())
	return next
}

func succeedPod(pod *corev1.Pod, durationMillis int64) {
	sdtesting.SetTerminated(pod, 0, sdtesting.SuccessMessage(pod, durationMillis, "cuda:0"), time.Now())
	Expect(k8s.Status().Update(suiteCtx, pod)).To(Succeed())
}

func failPod(pod *corev1.Pod, exitCode int32, message string) {
	sdtesting.SetTerminated(pod, exitCode, message, time.Now())
	Expect(k8s.Status().Update(suiteCtx, pod)).To(Succeed())
}

// promClient talks to Prometheus' HTTP API.
type promClient struct{ base string }

// promResult is the answer of /api/v1/query.
type promResult struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
	Data      struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Value  []any             `json:"value"`
		} `json:"result"`
	} `json:"data"`
}

// hasNumber says whether a sample of the result is a number (not NaN).
func (r promResult) hasNumber() bool {
	for _, s := range r.Data.Result {
		if len(s.Value) == 2 {
			if v, err := strconv.ParseFloat(fmt.Sprint(s.Value[1]), 64); err == nil && !math.IsNaN(v) {
				return true
			}
		}
	}
	return false
}

// firstValue is the value of the first sample, for the log.
func firstValue(r promResult) any {
	if len(r.Data.Result) == 0 || len(r.Data.Result[0].Value) != 2 {
		return nil
	}
	return r.Data.Result[0].Value[1]
}

func (p promClient) get(g Gomega, path string, params url.Values, into any) {
	resp, err := http.Get(p.base + path + "?" + params.Encode())
	g.Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	g.Expect(json.NewDecoder(resp.Body).Decode(into)).To(Succeed(), "JSON from %s", path)
}

// query evaluates an instant query now; an invalid expression fails g.
func (p promClient) query(g Gomega, expr string) promResult {
	var r promResult
	p.get(g, "/api/v1/query", url.Values{"query": {expr}}, &r)
	g.Expect(r.Status).To(Equal("success"), "query %s: %s: %s", expr, r.ErrorType, r.Error)
	return r
}

// queryOK evaluates an expression that must parse and run.
func (p promClient) queryOK(expr string) promResult { return p.query(Default, expr) }

// scalar evaluates an expression with one sample and returns its value.
func (p promClient) scalar(g Gomega, expr string) float64 {
	r := p.query(g, expr)
	g.Expect(r.Data.Result).To(HaveLen(1), "one sample from %s", expr)
	v, err := strconv.ParseFloat(fmt.Sprint(r.Data.Result[0].Value[1]), 64)
	g.Expect(err).NotTo(HaveOccurred())
	return v
}

// labelValues is what Grafana's label_values(match, label) asks Prometheus.
func (p promClient) labelValues(label, match string) []string {
	var r struct {
		Status string   `json:"status"`
		Data   []string `json:"data"`
	}
	p.get(Default, "/api/v1/label/"+url.PathEscape(label)+"/values", url.Values{"match[]": {match}}, &r)
	Expect(r.Status).To(Equal("success"))
	return r.Data
}

// dashboard is the part of the Grafana dashboard JSON the check reads.
type dashboard struct {
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
	Panels []dashboardPanel `json:"panels"`
}

type dashboardPanel struct {
	Type        string `json:"type"`
	Title       string `json:"title"`
	Description string `json:"description"`
	Datasource  struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []dashboardPanel `json:"panels"`
}

// dashboardTarget is one PromQL expression of a panel.
type dashboardTarget struct {
	panel, expr string
	dcgm        bool
}

// dashboardVariable is a label_values(match, label) query variable.
type dashboardVariable struct {
	name, query, match, label string
}

var labelValuesRE = regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`)

func loadDashboard() *dashboard {
	data, err := os.ReadFile(filepath.Join(chartDir, "dashboards", "sdfleet.json"))
	Expect(err).NotTo(HaveOccurred())
	var d dashboard
	Expect(json.Unmarshal(data, &d)).To(Succeed(), "dashboards/sdfleet.json")
	return &d
}

func (d *dashboard) panels() []dashboardPanel {
	var out []dashboardPanel
	for _, p := range d.Panels {
		out = append(out, p)
		out = append(out, p.Panels...) // panels inside collapsed rows
	}
	return out
}

func (d *dashboard) targets() []dashboardTarget {
	var out []dashboardTarget
	for _, p := range d.panels() {
		for _, t := range p.Targets {
			out = append(out, dashboardTarget{panel: p.Title, expr: t.Expr, dcgm: strings.Contains(t.Expr, "DCGM_")})
		}
	}
	return out
}

// variables returns the query variables; a variable Prometheus cannot answer fails the spec.
func (d *dashboard) variables() []dashboardVariable {
	var out []dashboardVariable
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := labelValuesRE.FindStringSubmatch(v.Definition)
		Expect(m).NotTo(BeNil(), "variable %s: expected label_values(metric, label), got %q", v.Name, v.Definition)
		out = append(out, dashboardVariable{name: v.Name, query: v.Definition, match: dashboardVariables.Replace(m[1]), label: m[2]})
	}
	return out
}
