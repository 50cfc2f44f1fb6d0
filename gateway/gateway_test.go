package gateway_test

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	. "github.com/onsi/gomega/gstruct"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	"github.com/sdfleet/sdfleet/gateway"
)

var gpuUUIDs = []string{"GPU-a0", "GPU-a1", "GPU-a2", "GPU-a3"}

// openAIError is OpenAI's error body.
type openAIError struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

func decode[T any](r result) T {
	GinkgoHelper()
	var v T
	Expect(json.Unmarshal(r.Body, &v)).To(Succeed(), "body %s", r.Body)
	return v
}

func expectPNG(data []byte, w, h int) {
	GinkgoHelper()
	img, err := png.Decode(bytes.NewReader(data))
	Expect(err).NotTo(HaveOccurred())
	Expect(img.Bounds().Dx()).To(Equal(w))
	Expect(img.Bounds().Dy()).To(Equal(h))
}

func getJob(ns, name string) *sdfleetv1alpha1.ImageGenerationJob {
	GinkgoHelper()
	job := &sdfleetv1alpha1.ImageGenerationJob{}
	Expect(k8s.Get(suiteCtx, types.NamespacedName{Namespace: ns, Name: name}, job)).To(Succeed())
	return job
}

var _ = Describe("OpenAI Images API", func() {
	var url string
	var t tenant
	BeforeEach(func() {
		url = newGateway(config())
		t = newTenant()
	})

	It("generates n images as one job from the administrator's model and returns them as b64_json", func() {
		resp := callAsync("POST", url+"/v1/images/generations", t.writer,
			[]byte(`{"prompt":"a red fox","n":4,"size":"64x128","model":"tiny","user":"end-user-7"}`))
		job := unfinishedJob(t.ns)
		Expect(job.Spec.Images).To(BeEquivalentTo(4))
		Expect(job.Spec.Model.HostPath.Path).To(Equal("/var/lib/sdfleet/models/tiny"))
		Expect(job.Spec.Output.HostPath.Path).To(Equal(hostOutput))
		Expect(job.Spec.Image).To(BeEmpty())
		Expect(job.Annotations).To(HaveKeyWithValue(gateway.AnnotationRequestedBy, "system:serviceaccount:"+t.ns+":writer"))
		Expect(job.Annotations).To(HaveKeyWithValue(gateway.AnnotationEndUser, "end-user-7"))
		finishJob(job, gpuUUIDs)

		var r result
		Eventually(resp).Should(Receive(&r))
		Expect(r.Code).To(Equal(http.StatusOK), "%s", r.Body)
		body := decode[struct {
			Created int64 `json:"created"`
			Data    []struct {
				B64JSON string `json:"b64_json"`
			} `json:"data"`
		}](r)
		Expect(body.Created).To(Equal(job.CreationTimestamp.Unix()))
		Expect(body.Data).To(HaveLen(4))
		for _, d := range body.Data {
			data, err := base64.StdEncoding.DecodeString(d.B64JSON)
			Expect(err).NotTo(HaveOccurred())
			expectPNG(data, 64, 128)
		}
	})

	It("returns urls to the gateway's own image endpoint, readable with the caller's token", func() {
		resp := callAsync("POST", url+"/v1/images/generations", t.writer, []byte(`{"prompt":"a","n":2,"response_format":"url"}`))
		job := unfinishedJob(t.ns)
		finishJob(job, gpuUUIDs)
		var r result
		Eventually(resp).Should(Receive(&r))
		Expect(r.Code).To(Equal(http.StatusOK), "%s", r.Body)
		body := decode[struct {
			Data []struct {
				URL string `json:"url"`
			} `json:"data"`
		}](r)
		Expect(body.Data).To(HaveLen(2))
		Expect(body.Data[1].URL).To(Equal(url + "/v1/jobs/" + t.ns + "/" + job.Name + "/images/1.png"))
		img := call("GET", body.Data[1].URL, t.writer, nil)
		Expect(img.Code).To(Equal(http.StatusOK))
		Expect(img.Header.Get("Content-Type")).To(Equal("image/png"))
		want, err := os.ReadFile(filepath.Join(outputDir, t.ns, job.Name, "1.png"))
		Expect(err).NotTo(HaveOccurred())
		Expect(img.Body).To(Equal(want))
	})

	It("answers 401 without a valid token and 403 naming the verb and namespace without permission", func() {
		for _, token := range []string{"", "not-a-token"} {
			r := call("POST", url+"/v1/images/generations", token, []byte(`{"prompt":"a"}`))
			Expect(r.Code).To(Equal(http.StatusUnauthorized))
			Expect(decode[openAIError](r).Error.Type).To(Equal("authentication_error"))
		}
		r := call("POST", url+"/v1/images/generations", t.stranger, []byte(`{"prompt":"a"}`))
		Expect(r.Code).To(Equal(http.StatusForbidden))
		e := decode[openAIError](r)
		Expect(e.Error.Type).To(Equal("permission_error"))
		Expect(e.Error.Message).To(ContainSubstring("may not create imagegenerationjobs.sdfleet.io in namespace " + t.ns))
		// Another namespace by header: the writer has no rights there.
		other := newTenant()
		r = call("POST", url+"/v1/images/generations", t.writer, []byte(`{"prompt":"a"}`), gateway.NamespaceHeader, other.ns)
		Expect(r.Code).To(Equal(http.StatusForbidden))
		Expect(decode[openAIError](r).Error.Message).To(ContainSubstring("in namespace " + other.ns))
		var list sdfleetv1alpha1.ImageGenerationJobList
		Expect(k8s.List(suiteCtx, &list, client.InNamespace(other.ns))).To(Succeed())
		Expect(list.Items).To(BeEmpty())
	})

	DescribeTable("answers 400 naming the parameter",
		func(body, param string) {
			r := call("POST", url+"/v1/images/generations", t.writer, []byte(body))
			Expect(r.Code).To(Equal(http.StatusBadRequest), "%s", r.Body)
			e := decode[openAIError](r)
			Expect(e.Error.Type).To(Equal("invalid_request_error"))
			Expect(e.Error.Param).To(HaveValue(Equal(param)))
			Expect(e.Error.Message).To(HavePrefix(param + ": "))
		},
		Entry("a size the model cannot make", `{"prompt":"a","size":"1004x1000"}`, "size"),
		Entry("n above the gateway's bound", `{"prompt":"a","n":100}`, "n"),
		Entry("a model the administrator did not configure", `{"prompt":"a","model":"dall-e-3"}`, "model"),
		Entry("a wrong type", `{"prompt":"a","n":"four"}`, "n"),
		Entry("an unknown parameter", `{"prompt":"a","hostPath":"/etc"}`, "hostPath"),
	)

	It("refuses a body above the limit with 413 and bad JSON with 400", func() {
		r := call("POST", url+"/v1/images/generations", t.writer, []byte(`{"prompt":"`+strings.Repeat("a", 70<<10)+`"}`))
		Expect(r.Code).To(Equal(http.StatusRequestEntityTooLarge))
		Expect(decode[openAIError](r).Error.Message).To(ContainSubstring("65536 bytes"))
		r = call("POST", url+"/v1/images/generations", t.writer, []byte(`{"prompt":`))
		Expect(r.Code).To(Equal(http.StatusBadRequest))
		Expect(decode[openAIError](r).Error.Code).To(HaveValue(Equal("invalid_json")))
	})

	It("lists the administrator's models", func() {
		r := call("GET", url+"/v1/models", t.writer, nil)
		Expect(r.Code).To(Equal(http.StatusOK))
		body := decode[struct {
			Object string `json:"object"`
			Data   []struct {
				ID     string `json:"id"`
				Object string `json:"object"`
			} `json:"data"`
		}](r)
		Expect(body.Object).To(Equal("list"))
		Expect(body.Data).To(HaveLen(2))
		Expect(body.Data[0].ID).To(Equal("sd15"))
		Expect(body.Data[1].ID).To(Equal("tiny"))
	})

	It("answers 202 with the job's name when the images outlive the wait timeout", func() {
		cfg := config()
		cfg.WaitTimeout = 300 * time.Millisecond
		short := newGateway(cfg)
		r := call("POST", short+"/v1/images/generations", t.writer, []byte(`{"prompt":"a","n":2}`))
		Expect(r.Code).To(Equal(http.StatusAccepted), "%s", r.Body)
		body := decode[struct{ Namespace, Name, Status, URL string }](r)
		Expect(body.Namespace).To(Equal(t.ns))
		Expect(body.Status).To(Equal("in_progress"))
		Expect(r.Header.Get("Location")).To(Equal("/v1/jobs/" + t.ns + "/" + body.Name))
		Expect(getJob(t.ns, body.Name).Spec.Images).To(BeEquivalentTo(2))
		// The client polls the native endpoint.
		poll := call("GET", body.URL, t.writer, nil)
		Expect(poll.Code).To(Equal(http.StatusOK))
	})

	It("limits each caller with a token bucket: 429 with Retry-After", func() {
		cfg := config()
		cfg.RequestsPerSecond, cfg.Burst = 0.01, 2
		limited := newGateway(cfg)
		for range 2 {
			Expect(call("GET", limited+"/v1/models", t.writer, nil).Code).To(Equal(http.StatusOK))
		}
		r := call("GET", limited+"/v1/models", t.writer, nil)
		Expect(r.Code).To(Equal(http.StatusTooManyRequests))
		Expect(r.Header.Get("Retry-After")).To(Equal("100"))
		Expect(decode[openAIError](r).Error.Type).To(Equal("rate_limit_error"))
		// Another caller has its own bucket.
		Expect(call("GET", limited+"/v1/models", t.reader, nil).Code).To(Equal(http.StatusOK))
	})
})

var _ = Describe("AUTOMATIC1111 API", func() {
	var url string
	var t tenant
	BeforeEach(func() {
		url = newGateway(config())
		t = newTenant()
	})

	It("runs txt2img with batch_size 4 as one job and returns images, parameters and info", func() {
		resp := callAsync("POST", url+"/sdapi/v1/txt2img", t.writer, []byte(`{"prompt":"a castle","negative_prompt":"fog",
			"steps":3,"cfg_scale":6.5,"width":64,"height":64,"seed":42,"sampler_name":"DPM++ 2M Karras","batch_size":4,
			"restore_faces":false,"override_settings":{"sd_model_checkpoint":"sd15"}}`))
		job := unfinishedJob(t.ns)
		Expect(job.Spec.Images).To(BeEquivalentTo(4))
		Expect(job.Spec.Sampler).To(Equal(sdfleetv1alpha1.SamplerDPMPP2MKarras))
		Expect(job.Spec.GuidanceScale).To(Equal("6.5"))
		Expect(*job.Spec.Seed).To(BeEquivalentTo(42))
		Expect(job.Spec.NegativePrompt).To(Equal("fog"))
		Expect(job.Spec.Model.PersistentVolumeClaim.ClaimName).To(Equal("models"))

		// While it runs, progress reports the caller's latest job.
		prog := call("GET", url+"/sdapi/v1/progress", t.writer, nil)
		Expect(prog.Code).To(Equal(http.StatusOK))
		p := decode[struct {
			Progress float64 `json:"progress"`
			State    struct {
				Job      string `json:"job"`
				JobCount int    `json:"job_count"`
			} `json:"state"`
		}](prog)
		Expect(p.State.Job).To(Equal(t.ns + "/" + job.Name))
		Expect(p.State.JobCount).To(Equal(4))
		Expect(p.Progress).To(BeNumerically("<", 1))

		finishJob(job, gpuUUIDs)
		var r result
		Eventually(resp).Should(Receive(&r))
		Expect(r.Code).To(Equal(http.StatusOK), "%s", r.Body)
		body := decode[struct {
			Images     []string       `json:"images"`
			Parameters map[string]any `json:"parameters"`
			Info       string         `json:"info"`
		}](r)
		Expect(body.Images).To(HaveLen(4))
		for _, b64 := range body.Images {
			data, err := base64.StdEncoding.DecodeString(b64)
			Expect(err).NotTo(HaveOccurred())
			expectPNG(data, 64, 64)
		}
		Expect(body.Parameters).To(HaveKeyWithValue("sampler_name", "DPM++ 2M Karras"))
		var info struct {
			AllSeeds []int64  `json:"all_seeds"`
			GPUs     []string `json:"gpus"`
			Job      string   `json:"job"`
		}
		Expect(json.Unmarshal([]byte(body.Info), &info)).To(Succeed())
		Expect(info.AllSeeds).To(Equal([]int64{42, 43, 44, 45}))
		Expect(info.GPUs).To(ConsistOf(gpuUUIDs))
		Expect(info.Job).To(Equal(t.ns + "/" + job.Name))

		Eventually(func(g Gomega) {
			prog := call("GET", url+"/sdapi/v1/progress", t.writer, nil)
			g.Expect(prog.Body).To(ContainSubstring(`"progress":1`))
		}).Should(Succeed())
	})

	It("answers 400 in FastAPI's detail shape naming the field", func() {
		r := call("POST", url+"/sdapi/v1/txt2img", t.writer, []byte(`{"prompt":"a","sampler_name":"LMS"}`))
		Expect(r.Code).To(Equal(http.StatusBadRequest))
		body := decode[struct {
			Detail []struct {
				Loc []string `json:"loc"`
				Msg string   `json:"msg"`
			} `json:"detail"`
		}](r)
		Expect(body.Detail).To(HaveLen(1))
		Expect(body.Detail[0].Loc).To(Equal([]string{"body", "sampler_name"}))
		Expect(body.Detail[0].Msg).To(ContainSubstring(`"Euler a"`))
		r = call("POST", url+"/sdapi/v1/txt2img", t.stranger, []byte(`{"prompt":"a"}`))
		Expect(r.Code).To(Equal(http.StatusForbidden))
		Expect(decode[struct{ Detail string }](r).Detail).To(ContainSubstring("may not create imagegenerationjobs.sdfleet.io in namespace " + t.ns))
	})

	It("lists samplers and models under the web UI's names", func() {
		r := call("GET", url+"/sdapi/v1/samplers", t.writer, nil)
		Expect(r.Code).To(Equal(http.StatusOK))
		samplers := decode[[]struct{ Name string }](r)
		Expect(samplers).To(HaveLen(3))
		Expect([]string{samplers[0].Name, samplers[1].Name, samplers[2].Name}).To(Equal([]string{"DDIM", "Euler a", "DPM++ 2M Karras"}))
		r = call("GET", url+"/sdapi/v1/sd-models", t.writer, nil)
		models := decode[[]struct {
			Title     string `json:"title"`
			ModelName string `json:"model_name"`
		}](r)
		Expect(models).To(HaveLen(2))
		Expect(models[1].ModelName).To(Equal("tiny"))
	})

	It("reports no job as progress 0 for a caller without one", func() {
		r := call("GET", url+"/sdapi/v1/progress", t.writer, nil)
		Expect(r.Code).To(Equal(http.StatusOK))
		Expect(r.Body).To(ContainSubstring(`"progress":0`))
		Expect(call("GET", url+"/sdapi/v1/progress", t.stranger, nil).Code).To(Equal(http.StatusForbidden))
	})
})

var _ = Describe("Native API", func() {
	var url string
	var t tenant
	BeforeEach(func() {
		url = newGateway(config())
		t = newTenant()
	})

	createNative := func(body string) (result, string) {
		GinkgoHelper()
		r := call("POST", url+"/v1/jobs", t.writer, []byte(body))
		if r.Code != http.StatusCreated {
			return r, ""
		}
		return r, decode[struct{ Name string }](r).Name
	}

	It("creates a job at once, reports its status and streams its images", func() {
		r, name := createNative(`{"prompt":"a boat","images":3,"width":64,"height":64,"steps":2,"model":"tiny",
			"placement":{"policy":"RoundRobin"}}`)
		Expect(r.Code).To(Equal(http.StatusCreated), "%s", r.Body)
		job := getJob(t.ns, name)
		Expect(job.Spec.Placement.Policy).To(Equal(sdfleetv1alpha1.PlacementRoundRobin))
		Expect(job.Spec.Output.HostPath.Path).To(Equal(hostOutput))
		Expect(job.Annotations).To(HaveKeyWithValue(gateway.AnnotationAPI, "native"))

		img := call("GET", url+"/v1/jobs/"+t.ns+"/"+name+"/images/0.png", t.writer, nil)
		Expect(img.Code).To(Equal(http.StatusNotFound))
		finishJob(job, gpuUUIDs)
		Eventually(func(g Gomega) {
			st := call("GET", url+"/v1/jobs/"+t.ns+"/"+name, t.reader, nil)
			g.Expect(st.Code).To(Equal(http.StatusOK))
			got := decode[sdfleetv1alpha1.ImageGenerationJob](st)
			g.Expect(got.Kind).To(Equal("ImageGenerationJob"))
			g.Expect(got.Status.Succeeded).To(BeEquivalentTo(3))
		}).Should(Succeed())
		img = call("GET", url+"/v1/jobs/"+t.ns+"/"+name+"/images/2.png", t.reader, nil)
		Expect(img.Code).To(Equal(http.StatusOK))
		expectPNG(img.Body, 64, 64)

		Expect(call("GET", url+"/v1/jobs/"+t.ns+"/"+name+"/images/7.png", t.reader, nil).Code).To(Equal(http.StatusNotFound))
		bad := call("GET", url+"/v1/jobs/"+t.ns+"/"+name+"/images/../../etc.png", t.reader, nil)
		Expect(bad.Code).To(BeElementOf(http.StatusBadRequest, http.StatusNotFound, http.StatusMovedPermanently))
		bad = call("GET", url+"/v1/jobs/"+t.ns+"/"+name+"/images/01.png", t.reader, nil)
		Expect(bad.Code).To(Equal(http.StatusBadRequest))
		Expect(decode[metav1.Status](bad).Details.Causes[0].Field).To(Equal("index"))
		denied := call("GET", url+"/v1/jobs/"+t.ns+"/"+name+"/images/0.png", t.stranger, nil)
		Expect(denied.Code).To(Equal(http.StatusForbidden))
		Expect(decode[metav1.Status](denied).Message).To(ContainSubstring("may not get imagegenerationjobs.sdfleet.io in namespace " + t.ns))
	})

	It("serves only files inside the output volume, whatever the status says", func() {
		_, name := createNative(`{"prompt":"a","images":1,"width":64,"height":64}`)
		job := getJob(t.ns, name)
		finishJob(job, gpuUUIDs)
		// A symbolic link in the volume pointing outside it is refused.
		secret := filepath.Join(GinkgoT().TempDir(), "secret.png")
		Expect(os.WriteFile(secret, pngBytes(8, 8, 1), 0o644)).To(Succeed())
		file := filepath.Join(outputDir, t.ns, name, "0.png")
		Expect(os.Remove(file)).To(Succeed())
		Expect(os.Symlink(secret, file)).To(Succeed())
		Eventually(func(g Gomega) {
			r := call("GET", url+"/v1/jobs/"+t.ns+"/"+name+"/images/0.png", t.writer, nil)
			g.Expect(r.Code).To(Equal(http.StatusNotFound))
			g.Expect(decode[metav1.Status](r).Message).To(ContainSubstring("not readable on the output volume"))
		}).Should(Succeed())
	})

	DescribeTable("answers 400 in a Kubernetes Status naming the field",
		func(body, field string) {
			r, _ := createNative(body)
			Expect(r.Code).To(Equal(http.StatusBadRequest), "%s", r.Body)
			st := decode[metav1.Status](r)
			Expect(st.Kind).To(Equal("Status"))
			Expect(st.Code).To(BeEquivalentTo(400))
			Expect(st.Details).NotTo(BeNil())
			Expect(st.Details.Causes[0].Field).To(Equal(field))
		},
		Entry("an output location", `{"prompt":"a","output":{"hostPath":{"path":"/etc"}}}`, "output"),
		Entry("a container image", `{"prompt":"a","image":"evil:latest"}`, "image"),
		Entry("a model location instead of a name", `{"prompt":"a","model":{"hostPath":{"path":"/root"}}}`, "model"),
		Entry("a model that is not configured", `{"prompt":"a","model":"other"}`, "model"),
		Entry("a value the API server refuses", `{"prompt":"a","steps":500}`, "spec.steps"),
		Entry("an unknown field", `{"prompt":"a","hostNetwork":true}`, "hostNetwork"),
	)

	It("refuses a job read in a namespace the caller may not read", func() {
		other := newTenant()
		r := call("GET", url+"/v1/jobs/"+other.ns+"/anything", t.writer, nil)
		Expect(r.Code).To(Equal(http.StatusForbidden))
		Expect(decode[metav1.Status](r).Message).To(ContainSubstring("get imagegenerationjobs.sdfleet.io in namespace " + other.ns))
		r = call("GET", url+"/v1/jobs/"+t.ns+"/missing", t.writer, nil)
		Expect(r.Code).To(Equal(http.StatusNotFound))
		Expect(decode[metav1.Status](r).Reason).To(Equal(metav1.StatusReasonNotFound))
	})

	It("asks the API server again once an answer's cache time is over, so that revoked rights end", func() {
		cfg := config()
		cfg.AuthCacheTTL = 0
		live := newGateway(cfg)
		Expect(call("GET", live+"/v1/jobs/"+t.ns+"/missing", t.reader, nil).Code).To(Equal(http.StatusNotFound))
		Expect(k8s.Delete(suiteCtx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "reader", Namespace: t.ns}})).To(Succeed())
		Eventually(func() int {
			return call("GET", live+"/v1/jobs/"+t.ns+"/missing", t.reader, nil).Code
		}).Should(Equal(http.StatusForbidden))
	})

	It("lists every GPU with node, product, memory, utilisation, temperature and health", func() {
		node := publishGPUNode("gpus-" + t.ns)
		Eventually(func(g Gomega) {
			r := call("GET", url+"/v1/gpus", t.writer, nil)
			g.Expect(r.Code).To(Equal(http.StatusOK))
			body := decode[struct{ GPUs []gateway.GPU }](r)
			var mine []gateway.GPU
			for _, gpu := range body.GPUs {
				if gpu.Node == node {
					mine = append(mine, gpu)
				}
			}
			g.Expect(mine).To(HaveLen(2))
			g.Expect(mine[1]).To(MatchFields(IgnoreExtras, Fields{
				"Index": BeEquivalentTo(1), "UUID": Equal(node + "-1"), "Product": Equal("NVIDIA H100 80GB HBM3"),
				"MemoryTotalBytes": BeEquivalentTo(80 << 30), "MemoryUsedPercent": BeEquivalentTo(25),
				"UtilizationPercent": BeEquivalentTo(40), "TemperatureCelsius": BeEquivalentTo(61),
				"Health": Equal(sdfleetv1alpha1.GPUUnhealthy), "HealthReason": Equal("XID 79"),
			}))
		}).Should(Succeed())
		r := call("GET", url+"/v1/gpus", t.reader, nil)
		Expect(r.Code).To(Equal(http.StatusForbidden))
		Expect(decode[metav1.Status](r).Message).To(ContainSubstring("may not list gpunodes.sdfleet.io cluster-wide"))
	})

	It("streams GPU changes and job progress as Server-Sent Events, from informers", func() {
		node := publishGPUNode("events-" + t.ns)
		_, name := createNative(`{"prompt":"a","images":2,"width":64,"height":64}`)
		req, err := http.NewRequestWithContext(suiteCtx, "GET", url+"/v1/events", nil)
		Expect(err).NotTo(HaveOccurred())
		req.Header.Set("Authorization", "Bearer "+t.writer)
		resp, err := http.DefaultClient.Do(req)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(resp.Body.Close)
		Expect(resp.StatusCode).To(Equal(http.StatusOK))
		Expect(resp.Header.Get("Content-Type")).To(Equal("text/event-stream"))
		events := make(chan [2]string, 1024)
		go func() {
			defer GinkgoRecover()
			sc := bufio.NewScanner(resp.Body)
			var typ string
			for sc.Scan() {
				line := sc.Text()
				if v, ok := strings.CutPrefix(line, "event: "); ok {
					typ = v
				} else if v, ok := strings.CutPrefix(line, "data: "); ok {
					events <- [2]string{typ, v}
				}
			}
		}()
		// The snapshot has the job and the GPUs.
		Eventually(events).Should(Receive(And(HaveIndex(0, "job"), HaveIndexContaining(1, `"name":"`+name+`"`))))

		// A GPU recovers: one "gpu" event.
		gn := &sdfleetv1alpha1.GPUNode{}
		Expect(k8s.Get(suiteCtx, types.NamespacedName{Name: node}, gn)).To(Succeed())
		gn.Status.GPUs[1].Health, gn.Status.GPUs[1].HealthReason = sdfleetv1alpha1.GPUHealthy, ""
		Expect(k8s.Status().Update(suiteCtx, gn)).To(Succeed())
		Eventually(events).Should(Receive(And(HaveIndex(0, "gpu"), HaveIndexContaining(1, `"uuid":"`+node+`-1","product":"NVIDIA H100 80GB HBM3"`),
			HaveIndexContaining(1, `"health":"Healthy"`))))

		// Image 0 starts on GPU 0: a "gpu" event carries the memory sdfleet now reserves there,
		// 2 GiB and a 64x64 image's activations of 80 GiB.
		job := getJob(t.ns, name)
		job.Status.Images = []sdfleetv1alpha1.ImageStatus{{Index: 0, Phase: sdfleetv1alpha1.ImageRunning, Node: node,
			Device: "gpu", GPUUUID: node + "-0", GPUIndex: ptr.To[int32](0)}}
		job.Status.Running, job.Status.Pending, job.Status.Phase = 1, 1, sdfleetv1alpha1.JobPhaseRunning
		Expect(k8s.Status().Update(suiteCtx, job)).To(Succeed())
		Eventually(events).Should(Receive(And(HaveIndex(0, "gpu"), HaveIndexContaining(1, `"uuid":"`+node+`-0"`),
			HaveIndexContaining(1, `"reservedBytes":2164260864,"reservedImages":1,"reservedPercent":2`))))
		// GET /v1/gpus says the same.
		listed := decode[struct{ GPUs []gateway.GPU }](call("GET", url+"/v1/gpus", t.writer, nil))
		Expect(listed.GPUs).To(ContainElement(MatchFields(IgnoreExtras, Fields{"UUID": Equal(node + "-0"),
			"ReservedBytes": BeEquivalentTo(2164260864), "ReservedImages": Equal(1), "ReservedPercent": BeEquivalentTo(2)})))

		// The job finishes: the reservation ends, then a "job" event with its counts.
		job = getJob(t.ns, name)
		job.Status.Running, job.Status.Pending = 0, 0
		finishJob(job, gpuUUIDs)
		Eventually(events).Should(Receive(And(HaveIndex(0, "gpu"), HaveIndexContaining(1, `"uuid":"`+node+`-0"`),
			HaveIndexContaining(1, `"reservedBytes":0,"reservedImages":0`))))
		Eventually(events).Should(Receive(And(HaveIndex(0, "job"), HaveIndexContaining(1, `"name":"`+name+`","phase":"Complete","images":2,"pending":0,"running":0,"succeeded":2`))))

		Expect(call("GET", url+"/v1/events", t.stranger, nil).Code).To(Equal(http.StatusForbidden))
	})
})

// HaveIndexContaining matches element i of a [2]string containing s.
func HaveIndexContaining(i int, s string) OmegaMatcher {
	return WithTransform(func(e [2]string) string { return e[i] }, ContainSubstring(s))
}

// HaveIndex matches element i of a [2]string equal to s.
func HaveIndex(i int, s string) OmegaMatcher {
	return WithTransform(func(e [2]string) string { return e[i] }, Equal(s))
}

// publishGPUNode creates a GPUNode with two H100s, the second unhealthy, as a node agent would.
func publishGPUNode(name string) string {
	GinkgoHelper()
	gn := &sdfleetv1alpha1.GPUNode{ObjectMeta: metav1.ObjectMeta{Name: name}}
	Expect(k8s.Create(suiteCtx, gn)).To(Succeed())
	now := metav1.Now()
	gn.Status = sdfleetv1alpha1.GPUNodeStatus{GPUCount: 2, HealthyGPUs: 1, LastHeartbeatTime: &now, Simulated: true}
	for i := range int32(2) {
		g := sdfleetv1alpha1.GPUStatus{Index: i, UUID: name + "-" + string(rune('0'+i)), ProductName: "NVIDIA H100 80GB HBM3",
			MemoryTotalBytes: 80 << 30, MemoryUsedBytes: 20 << 30, UtilizationPercent: 40, TemperatureCelsius: 61,
			Health: sdfleetv1alpha1.GPUHealthy, ResourceName: sdfleetv1alpha1.ResourcePrefix + string(rune('0'+i)), Slots: 4}
		if i == 1 {
			g.Health, g.HealthReason = sdfleetv1alpha1.GPUUnhealthy, "XID 79"
		}
		gn.Status.GPUs = append(gn.Status.GPUs, g)
	}
	Expect(k8s.Status().Update(suiteCtx, gn)).To(Succeed())
	return name
}
