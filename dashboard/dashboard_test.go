package dashboard_test

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/chromedp/chromedp"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	sdtesting "github.com/sdfleet/sdfleet/controllers/testing"
	"github.com/sdfleet/sdfleet/inference/pipeline"
)

// js evaluates expression in the page.
func js[T any](expression string) T {
	GinkgoHelper()
	v, err := chromedp.Run(browser, chromedp.Evaluate[T](expression))
	Expect(err).NotTo(HaveOccurred(), "evaluate %s", expression)
	return v
}

// jsOf is js for Eventually.
func jsOf[T any](expression string) func() (T, error) {
	return func() (T, error) { return chromedp.Run(browser, chromedp.Evaluate[T](expression)) }
}

// screenshot saves the whole page as name.png and checks that it is not blank: many
// colours, and a good share of pixels that differ from the background.
func screenshot(name string) {
	GinkgoHelper()
	data, err := chromedp.Run(browser, chromedp.FullScreenshot(100))
	Expect(err).NotTo(HaveOccurred())
	path := filepath.Join(artifactsDir, name+".png")
	Expect(os.WriteFile(path, data, 0o644)).To(Succeed())
	GinkgoWriter.Printf("screenshot %s\n", path)
	img, err := png.Decode(bytes.NewReader(data))
	Expect(err).NotTo(HaveOccurred())
	b := img.Bounds()
	background := img.At(b.Max.X-1, b.Max.Y-1)
	colours := map[color.Color]struct{}{}
	differ := 0
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			c := img.At(x, y)
			colours[c] = struct{}{}
			if c != background {
				differ++
			}
		}
	}
	samples := (b.Dx() / 2) * (b.Dy() / 2)
	Expect(len(colours)).To(BeNumerically(">", 50), "%s: too few colours for a drawn page", path)
	Expect(float64(differ)/float64(samples)).To(BeNumerically(">", 0.05), "%s: almost all background", path)
}

// publish writes a GPUNode's status as its node agent does.
func publish(gn *sdfleetv1alpha1.GPUNode) {
	GinkgoHelper()
	current := &sdfleetv1alpha1.GPUNode{}
	if err := k8s.Get(suiteCtx, client.ObjectKeyFromObject(gn), current); err != nil {
		status := gn.Status.DeepCopy()
		Expect(k8s.Create(suiteCtx, gn)).To(Succeed())
		gn.Status = *status
		Expect(k8s.Status().Update(suiteCtx, gn)).To(Succeed())
		return
	}
	current.Status = gn.Status
	Expect(k8s.Status().Update(suiteCtx, current)).To(Succeed())
}

// fourGPUs is the simulated node of the tests, memory use differing per GPU.
func fourGPUs() *sdtesting.GPUNodeWrapper {
	w := sdtesting.MakeGPUNode("sim-node")
	for i := range int32(4) {
		w.GPU(i, int64(4+6*i), 80, 2)
		w.Status.GPUs[i].ProductName = "NVIDIA H100 80GB HBM3"
		w.Status.GPUs[i].UtilizationPercent = 10 * (i + 1)
		w.Status.GPUs[i].TemperatureCelsius = 40 + i
	}
	// The operator has learned GPU 0's speed.
	w.Status.LearnedSpeeds = []sdfleetv1alpha1.GPUSpeed{{UUID: "GPU-sim-node-0", Index: 0, SecondsPerMegapixelStep: "0.42", Images: 12}}
	return w
}

// imagePNG is a real PNG with a "parameters" chunk, as sdgen writes it.
func imagePNG(w, h int, shade uint8, parameters string) []byte {
	GinkgoHelper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{R: shade, G: uint8(x * 255 / w), B: uint8(y * 255 / h), A: 255})
		}
	}
	data, err := pipeline.EncodePNG(img, []pipeline.TextChunk{{Keyword: "parameters", Text: parameters}})
	Expect(err).NotTo(HaveOccurred())
	return data
}

var _ = Describe("The dashboard", Ordered, func() {
	const ns = "studio"
	var token string

	BeforeAll(func() {
		token = newViewer(ns)
		publish(fourGPUs().Obj())
	})

	It("asks for a token once, then lists every GPU of the cluster", func() {
		_, err := chromedp.Run(browser, chromedp.Navigate(gatewayURL+"/"))
		Expect(err).NotTo(HaveOccurred())
		Expect(js[bool](`document.getElementById("board-section").hidden`)).To(BeTrue(), "the board shows before sign-in")
		// A token the API server does not accept is refused, and the page asks again.
		Expect(chromedp.Do(browser,
			chromedp.WaitVisible(chromedp.CSS("#token")),
			chromedp.SetValue(chromedp.CSS("#token"), "not-a-token"),
			chromedp.Click(chromedp.CSS("#token-form button")),
		)).To(Succeed())
		Eventually(jsOf[string](`document.getElementById("login-error").textContent`)).Should(HavePrefix("the API server did not accept the bearer token"))
		Expect(js[bool](`document.getElementById("login").hidden`)).To(BeFalse())
		Expect(js[bool](`document.getElementById("board-section").hidden`)).To(BeTrue())
		Expect(chromedp.Do(browser,
			chromedp.SetValue(chromedp.CSS("#token"), token),
			// From the keyboard: Enter in the field submits it.
			chromedp.Focus(chromedp.CSS("#token")),
			chromedp.KeyEvent("\r"),
		)).To(Succeed())
		Eventually(jsOf[int](`document.querySelectorAll("#board .gpu").length`)).Should(Equal(4))
		Eventually(jsOf[string](`document.getElementById("connection").textContent`)).Should(Equal("Live"))
		names := js[[]string](`Array.from(document.querySelectorAll("#board .gpu-name")).map(e => e.textContent)`)
		Expect(names).To(Equal([]string{"sim-node · GPU 0", "sim-node · GPU 1", "sim-node · GPU 2", "sim-node · GPU 3"}))
		card := js[string](`document.querySelector('.gpu[data-uuid="GPU-sim-node-3"]').innerText`)
		Expect(card).To(ContainSubstring("NVIDIA H100 80GB HBM3 (simulated)"))
		Expect(card).To(ContainSubstring("22.0 / 80.0 GiB (27%)"))
		Expect(card).To(ContainSubstring("none reserved by sdfleet"))
		Expect(card).To(ContainSubstring("40%"))
		Expect(card).To(ContainSubstring("43 °C"))
		Expect(card).To(ContainSubstring("Healthy"))
		Expect(card).To(ContainSubstring("not learned yet"))
		Expect(js[string](`document.querySelector('.gpu[data-uuid="GPU-sim-node-0"] .speed').textContent`)).
			To(Equal("0.42 s per megapixel-step (12 images)"))
		// The token is in no storage, cookie or URL, and not left in the form.
		Expect(js[string](`document.cookie + JSON.stringify(localStorage) + JSON.stringify(sessionStorage) + location.href + document.getElementById("token").value`)).
			NotTo(ContainSubstring(token[:40]))
		screenshot("board")
	})

	It("turns a GPU's card unhealthy within 3 s of the agent's report, without a reload", func() {
		js[bool](`window.sdfleetLoadedOnce = true`)
		publish(fourGPUs().Unhealthy(2, "XID 79: GPU has fallen off the bus").Obj())
		Eventually(jsOf[string](`document.querySelector('.gpu[data-uuid="GPU-sim-node-2"]').dataset.health`)).
			WithTimeout(3 * time.Second).Should(Equal("Unhealthy"))
		Expect(js[string](`document.querySelector('.gpu[data-uuid="GPU-sim-node-2"] .health').innerText`)).
			To(ContainSubstring("XID 79: GPU has fallen off the bus"))
		Expect(js[bool](`window.sdfleetLoadedOnce === true`)).To(BeTrue(), "the page was reloaded")
		Expect(js[[]string](`Array.from(document.querySelectorAll("#board .gpu")).map(e => e.dataset.health)`)).
			To(Equal([]string{"Healthy", "Healthy", "Unhealthy", "Healthy"}))
		screenshot("fault")
	})

	It("labels every control and keeps text at WCAG AA contrast", func() {
		unlabelled := js[[]string](`Array.from(document.querySelectorAll("input, select, textarea"))
			.filter(e => e.labels.length === 0 || e.labels[0].textContent.trim() === "").map(e => e.id)`)
		Expect(unlabelled).To(BeEmpty())
		Expect(js[int](`document.querySelectorAll("#board .gpu meter[aria-label]").length`)).To(Equal(8), "memory used and reserved, on 4 GPUs")
		// The contrast ratio of each kind of text against the background it is drawn on.
		ratios := js[map[string]float64](contrastScript)
		Expect(ratios).To(HaveLen(9))
		for selector, ratio := range ratios {
			Expect(ratio).To(BeNumerically(">=", 4.5), "contrast of %s", selector)
		}
	})

	It("submits the form as a job, shows where its images run and their thumbnails with parameters", func() {
		Expect(chromedp.Do(browser,
			chromedp.SetValue(chromedp.CSS("#prompt"), "a red fox in the snow"),
			chromedp.SetValue(chromedp.CSS("#negativePrompt"), "blurry"),
			chromedp.SetValue(chromedp.CSS("#images"), "3"),
			chromedp.SetValue(chromedp.CSS("#size"), "64x64"),
			chromedp.SetValue(chromedp.CSS("#steps"), "8"),
			chromedp.SetValue(chromedp.CSS("#sampler"), "euler-ancestral"),
			chromedp.SetValue(chromedp.CSS("#seed"), "1234"),
			chromedp.SetValue(chromedp.CSS("#policy"), "RoundRobin"),
			chromedp.Click(chromedp.CSS("#job-form button[type=submit]")),
		)).To(Succeed())

		var job sdfleetv1alpha1.ImageGenerationJob
		Eventually(func(g Gomega) {
			var list sdfleetv1alpha1.ImageGenerationJobList
			g.Expect(k8s.List(suiteCtx, &list, client.InNamespace(ns))).To(Succeed())
			g.Expect(list.Items).To(HaveLen(1))
			job = list.Items[0]
		}).Should(Succeed())
		Expect(job.Spec.Prompt).To(Equal("a red fox in the snow"))
		Expect(job.Spec.NegativePrompt).To(Equal("blurry"))
		Expect(job.Spec.Images).To(BeEquivalentTo(3))
		Expect(job.Spec.Width).To(BeEquivalentTo(64))
		Expect(job.Spec.Steps).To(BeEquivalentTo(8))
		Expect(job.Spec.Sampler).To(Equal(sdfleetv1alpha1.SamplerEulerAncestral))
		Expect(job.Spec.Seed).To(Equal(ptr.To[int64](1234)))
		Expect(job.Spec.Placement.Policy).To(Equal(sdfleetv1alpha1.PlacementRoundRobin))
		card := `document.querySelector('.job[data-key="` + ns + `/` + job.Name + `"]')`
		Eventually(jsOf[string](card + `?.querySelector(".counts").textContent ?? ""`)).Should(ContainSubstring("of 3"))

		// The controller starts image 0 on GPU 1: the board shows it running there.
		now := metav1.Now()
		job.Status.Images = []sdfleetv1alpha1.ImageStatus{{Index: 0, Phase: sdfleetv1alpha1.ImageRunning, Seed: 1234,
			Attempts: 1, Node: "sim-node", Device: "gpu", GPUUUID: "GPU-sim-node-1", GPUIndex: ptr.To[int32](1), StartTime: &now}}
		job.Status.Phase, job.Status.Running, job.Status.Pending = sdfleetv1alpha1.JobPhaseRunning, 1, 2
		Expect(k8s.Status().Update(suiteCtx, &job)).To(Succeed())
		Eventually(jsOf[string](`document.querySelector('.gpu[data-uuid="GPU-sim-node-1"] .running').textContent`)).
			Should(Equal(job.Name + " #0"))
		// Its memory is reserved there: 2 GiB and a 64x64 image's activations, of 80 GiB.
		reserved := `document.querySelector('.gpu[data-uuid="GPU-sim-node-1"] .reserved')`
		Eventually(jsOf[string](reserved + `.nextElementSibling.textContent`)).
			Should(Equal("2.0 GiB reserved by sdfleet for 1 image (2%)"))
		Expect(js[float64](reserved + `.value`)).To(BeEquivalentTo(2))
		Expect(js[string](`document.querySelector('.gpu[data-uuid="GPU-sim-node-0"] .reserved-text').textContent`)).
			To(Equal("none reserved by sdfleet"))
		Eventually(jsOf[string](card + `.querySelector(".counts").textContent`)).
			Should(Equal("0 succeeded · 1 running · 2 waiting · 0 failed (of 3)"))

		// Then every image finishes, image i on GPU i (0, 1, 3: GPU 2 is unhealthy).
		gpuOf := []int32{0, 1, 3}
		job.Status.Images = nil
		for i := range int32(3) {
			rel := filepath.Join(ns, job.Name, fmt.Sprintf("%d.png", i))
			params := fmt.Sprintf("a red fox in the snow\nNegative prompt: blurry\nSteps: 8, Sampler: Euler a, Seed: %d, Size: 64x64", 1234+i)
			Expect(os.MkdirAll(filepath.Dir(filepath.Join(outputDir, rel)), 0o755)).To(Succeed())
			Expect(os.WriteFile(filepath.Join(outputDir, rel), imagePNG(64, 64, uint8(80*i), params), 0o644)).To(Succeed())
			job.Status.Images = append(job.Status.Images, sdfleetv1alpha1.ImageStatus{
				Index: i, Phase: sdfleetv1alpha1.ImageSucceeded, Seed: 1234 + int64(i), Attempts: 1, Node: "sim-node", Device: "gpu",
				GPUUUID: sdtesting.GPUUUID("sim-node", gpuOf[i]), GPUIndex: ptr.To(gpuOf[i]),
				OutputPath: hostOutput + "/" + rel, DurationMilliseconds: ptr.To[int64](900), StartTime: &now, FinishTime: &now,
			})
		}
		job.Status.Phase, job.Status.Running, job.Status.Pending, job.Status.Succeeded = sdfleetv1alpha1.JobPhaseComplete, 0, 0, 3
		job.Status.CompletedIndexes = "0-2"
		meta.SetStatusCondition(&job.Status.Conditions, metav1.Condition{Type: sdfleetv1alpha1.JobComplete,
			Status: metav1.ConditionTrue, Reason: "Completed", Message: "every image succeeded"})
		Expect(k8s.Status().Update(suiteCtx, &job)).To(Succeed())

		Eventually(jsOf[int](card + `.querySelectorAll(".gallery img").length`)).Should(Equal(3))
		Eventually(jsOf[[]int](`Array.from(` + card + `.querySelectorAll(".gallery img")).map(i => i.naturalWidth)`)).
			Should(Equal([]int{64, 64, 64}))
		Expect(js[string](card + `.querySelector(".counts").textContent`)).To(Equal("3 succeeded · 0 running · 0 waiting · 0 failed (of 3)"))
		where := js[[]string](`Array.from(` + card + `.querySelectorAll(".where li")).map(e => e.textContent)`)
		Expect(where).To(Equal([]string{
			"Image 0: Succeeded on sim-node GPU 0 (GPU-sim-node-0)",
			"Image 1: Succeeded on sim-node GPU 1 (GPU-sim-node-1)",
			"Image 2: Succeeded on sim-node GPU 3 (GPU-sim-node-3)",
		}))
		Eventually(jsOf[string](`document.querySelector('.gpu[data-uuid="GPU-sim-node-1"] .running').textContent`)).Should(Equal("none"))
		Eventually(jsOf[string](reserved+`.nextElementSibling.textContent`)).Should(Equal("none reserved by sdfleet"),
			"a finished image holds no reservation")
		Expect(chromedp.Do(browser, chromedp.Click(chromedp.CSS(`[data-key="`+ns+`/`+job.Name+`"] details summary`)))).To(Succeed())
		screenshot("jobs")

		// A thumbnail opens the full PNG with its parameters, by keyboard as by mouse.
		Expect(chromedp.Do(browser, chromedp.Focus(chromedp.CSS(`[data-key="`+ns+`/`+job.Name+`"] .gallery li:nth-child(3) button`)))).To(Succeed())
		Expect(chromedp.Do(browser, chromedp.KeyEvent("\r"))).To(Succeed())
		Eventually(jsOf[bool](`document.getElementById("viewer").open`)).Should(BeTrue())
		Expect(js[string](`document.getElementById("viewer-parameters").textContent`)).
			To(Equal("a red fox in the snow\nNegative prompt: blurry\nSteps: 8, Sampler: Euler a, Seed: 1236, Size: 64x64"))
		Expect(js[string](`document.getElementById("viewer-title").textContent`)).To(ContainSubstring("image 2 on sim-node GPU 3"))
		Eventually(jsOf[int](`document.getElementById("viewer-image").naturalWidth`)).Should(Equal(64))
		screenshot("image")
		Expect(strings.Contains(js[string](`document.activeElement.id`), "viewer-close")).To(BeTrue())
	})
})

// contrastScript returns, for one element of each kind of text, its WCAG contrast ratio with
// the first opaque background behind it.
const contrastScript = `(() => {
  const rgb = (c) => c.match(/[\d.]+/g).map(Number);
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (e) => {
    for (; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length < 4 || c[3] > 0) return c;
    }
    return [255, 255, 255];
  };
  const out = {};
  for (const sel of ["header h1", "#connection", ".help", ".product", '.gpu[data-health="Healthy"] .badge',
                     '.gpu[data-health="Unhealthy"] .badge', "dt", "label", "button"]) {
    const e = document.querySelector(sel);
    if (!e) continue;
    const a = lum(rgb(getComputedStyle(e).color)), b = lum(background(e));
    out[sel] = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  }
  return out;
})()`
