package kubectlplugin_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gbytes"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	"github.com/sdfleet/sdfleet/controllers/placement"
	"github.com/sdfleet/sdfleet/controllers/placementrecord"
	sdtesting "github.com/sdfleet/sdfleet/controllers/testing"
)

// expectGolden compares out with testdata/name.golden; UPDATE_GOLDEN=1 rewrites the file.
func expectGolden(name, out string) {
	GinkgoHelper()
	path := filepath.Join("testdata", name+".golden")
	if os.Getenv("UPDATE_GOLDEN") == "1" {
		Expect(os.WriteFile(path, []byte(out), 0o644)).To(Succeed())
	}
	want, err := os.ReadFile(path)
	Expect(err).NotTo(HaveOccurred())
	Expect(out).To(Equal(string(want)), "output differs from %s", path)
}

// publish creates a GPUNode with its status, as its node agent does.
func publish(gn *sdfleetv1alpha1.GPUNode) {
	GinkgoHelper()
	status := gn.Status.DeepCopy()
	Expect(k8s.Create(suiteCtx, gn)).To(Succeed())
	gn.Status = *status
	Expect(k8s.Status().Update(suiteCtx, gn)).To(Succeed())
}

// node is a simulated node with two GPUs of 80 GiB, the second one at used2 GiB.
func node(name string, used2 int64) *sdtesting.GPUNodeWrapper {
	w := sdtesting.MakeGPUNode(name).GPU(0, 8, 80, 2).GPU(1, used2, 80, 2)
	for i := range w.Status.GPUs {
		w.Status.GPUs[i].ProductName = "NVIDIA H100 80GB HBM3"
		w.Status.GPUs[i].UtilizationPercent = int32(25 * (i + 1))
		w.Status.GPUs[i].TemperatureCelsius = int32(45 + i)
	}
	return w
}

// createJob creates a job and writes its status, with image i as images[i].
func createJob(job *sdfleetv1alpha1.ImageGenerationJob, images ...sdfleetv1alpha1.ImageStatus) *sdfleetv1alpha1.ImageGenerationJob {
	GinkgoHelper()
	Expect(k8s.Create(suiteCtx, job)).To(Succeed())
	job.Status.Images = images
	for _, img := range images {
		switch img.Phase {
		case sdfleetv1alpha1.ImageRunning:
			job.Status.Running++
		case sdfleetv1alpha1.ImagePending:
			job.Status.Pending++
		case sdfleetv1alpha1.ImageSucceeded:
			job.Status.Succeeded++
		}
	}
	job.Status.Phase = sdfleetv1alpha1.JobPhaseRunning
	Expect(k8s.Status().Update(suiteCtx, job)).To(Succeed())
	return job
}

func placed(index int32, phase sdfleetv1alpha1.ImagePhase, node string, gpu int32, load int32) sdfleetv1alpha1.ImageStatus {
	return sdfleetv1alpha1.ImageStatus{Index: index, Phase: phase, Seed: 42 + int64(index), Attempts: 1, Node: node, Device: "gpu",
		GPUUUID: sdtesting.GPUUUID(node, gpu), GPUIndex: ptr.To(gpu), GPUMemoryLoadPercent: ptr.To(load)}
}

// event records what the controller said about a job, seconds after a fixed start.
func event(job *sdfleetv1alpha1.ImageGenerationJob, seconds int, reason, message string) {
	GinkgoHelper()
	at := metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5+seconds, 0, time.UTC))
	Expect(k8s.Create(suiteCtx, &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s.%d", job.Name, seconds), Namespace: job.Namespace},
		InvolvedObject: corev1.ObjectReference{Kind: "ImageGenerationJob", APIVersion: sdfleetv1alpha1.GroupVersion.String(),
			Namespace: job.Namespace, Name: job.Name, UID: job.UID},
		Reason: reason, Message: message, Type: corev1.EventTypeNormal, Source: corev1.EventSource{Component: "sdfleet-manager"},
		FirstTimestamp: at, LastTimestamp: at, Count: 1,
	})).To(Succeed())
}

// writePNG writes a real PNG where the job's status says image index is, and returns its SHA-256.
func writePNG(job *sdfleetv1alpha1.ImageGenerationJob, index int32, size int) (outputPath, sum string) {
	GinkgoHelper()
	img := image.NewRGBA(image.Rect(0, 0, size, size))
	for y := range size {
		for x := range size {
			img.Set(x, y, color.RGBA{R: uint8(40 * index), G: uint8(x), B: uint8(y), A: 255})
		}
	}
	var b bytes.Buffer
	Expect(png.Encode(&b, img)).To(Succeed())
	rel := filepath.Join(job.Namespace, job.Name, fmt.Sprintf("%d.png", index))
	Expect(os.MkdirAll(filepath.Dir(filepath.Join(outputDir, rel)), 0o755)).To(Succeed())
	Expect(os.WriteFile(filepath.Join(outputDir, rel), b.Bytes(), 0o644)).To(Succeed())
	s := sha256.Sum256(b.Bytes())
	return hostOutput + "/" + rel, hex.EncodeToString(s[:])
}

// imagePod creates pod name of job, as its controller would, with annotations.
func imagePod(job *sdfleetv1alpha1.ImageGenerationJob, name string, annotations map[string]string) {
	GinkgoHelper()
	Expect(k8s.Create(suiteCtx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: job.Namespace, Annotations: annotations,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: sdfleetv1alpha1.GroupVersion.String(), Kind: "ImageGenerationJob",
				Name: job.Name, UID: job.UID, Controller: ptr.To(true)}}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "sdgen", Image: "ghcr.io/sdfleet/sdgen:test"}}},
	})).To(Succeed())
}

func fileSHA(path string) string {
	GinkgoHelper()
	data, err := os.ReadFile(path)
	Expect(err).NotTo(HaveOccurred())
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

var _ = Describe("kubectl sdfleet", Ordered, func() {
	var fox *sdfleetv1alpha1.ImageGenerationJob
	var token string

	BeforeAll(func() {
		for _, ns := range []string{"studio", "other"} {
			Expect(k8s.Create(suiteCtx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
		}
		publish(node("node-a", 20).Unhealthy(1, "XID 79").Obj())
		// The operator has learned node-b's speeds.
		nodeB := node("node-b", 60).Obj()
		nodeB.Status.LearnedSpeeds = []sdfleetv1alpha1.GPUSpeed{
			{UUID: "GPU-node-b-0", Index: 0, SecondsPerMegapixelStep: "0.42", Images: 12},
			{UUID: "GPU-node-b-1", Index: 1, SecondsPerMegapixelStep: "0.61", Images: 3},
		}
		publish(nodeB)
		fox = createJob(sdtesting.MakeJob("fox", "studio").Images(3).Prompt("a red fox").Obj(),
			placed(0, sdfleetv1alpha1.ImageRunning, "node-a", 0, 10),
			placed(1, sdfleetv1alpha1.ImagePending, "node-b", 0, 10),
			placed(2, sdfleetv1alpha1.ImageSucceeded, "node-b", 1, 75))
		createJob(sdtesting.MakeJob("owl", "other").Images(1).Obj(), placed(0, sdfleetv1alpha1.ImageRunning, "node-b", 1, 75))
		token = serviceAccountToken("studio", "artist", "create", "get", "list", "watch")
	})

	Describe("top", func() {
		It("lists the 4 GPUs with the images of the context's namespace", func() {
			out, err := kubectl("top")
			Expect(err).NotTo(HaveOccurred(), out)
			expectGolden("top", out)
			lines := strings.Split(strings.TrimSpace(out), "\n")
			Expect(lines).To(HaveLen(5))
			Expect(strings.Fields(lines[0])).To(Equal([]string{"NODE", "GPU", "PRODUCT", "MEMORY", "RESERVED", "UTIL", "TEMP", "HEALTH", "SEC/MP-STEP", "RUNNING", "WAITING"}))
			Expect(lines[2]).To(ContainSubstring("Unhealthy (XID 79)"))
			// The product is 4 words: the columns after it start at 6.
			Expect(strings.Fields(lines[3])[11]).To(Equal("0.42"), "node-b GPU 0's learned speed")
			// sdfleet reserves 3 GiB of 80 for each 512x512 image placed and not finished: node-a
			// GPU 0 runs one, node-b GPU 0 waits for one, and node-b GPU 1's image is done.
			reserved := []string{}
			for _, line := range lines[1:] {
				reserved = append(reserved, strings.Fields(line)[7])
			}
			Expect(reserved).To(Equal([]string{"3%", "0%", "3%", "0%"}))
		})

		It("counts every namespace with -A, and the other context's with --context", func() {
			out, err := kubectl("top", "-A")
			Expect(err).NotTo(HaveOccurred(), out)
			expectGolden("top-all", out)
			out, err = kubectl("top", "--context", "other")
			Expect(err).NotTo(HaveOccurred(), out)
			expectGolden("top-other", out)
			out, err = kubectl("top", "-n", "other")
			Expect(err).NotTo(HaveOccurred(), out)
			expectGolden("top-other", out)
		})

		It("redraws with --watch when a GPU changes", func() {
			out, errOut := gbytes.NewBuffer(), gbytes.NewBuffer()
			done := make(chan error, 1)
			go func() {
				defer GinkgoRecover()
				done <- run(out, errOut, "top", "--watch", "--request-timeout", "0")
			}()
			Eventually(out).Should(gbytes.Say(`node-b\s+1\s+NVIDIA H100 80GB HBM3\s+75%`))
			gn := &sdfleetv1alpha1.GPUNode{}
			Expect(k8s.Get(suiteCtx, client.ObjectKey{Name: "node-b"}, gn)).To(Succeed())
			gn.Status.GPUs[1].Health, gn.Status.GPUs[1].HealthReason = sdfleetv1alpha1.GPUUnhealthy, "XID 48"
			Expect(k8s.Status().Update(suiteCtx, gn)).To(Succeed())
			Eventually(out).Should(gbytes.Say(`node-b\s+1\s+NVIDIA H100 80GB HBM3\s+75%\s+0%\s+50%\s+46C\s+Unhealthy \(XID 48\)`))
			gn.Status.GPUs[1].Health, gn.Status.GPUs[1].HealthReason = sdfleetv1alpha1.GPUHealthy, ""
			Expect(k8s.Status().Update(suiteCtx, gn)).To(Succeed())
			Eventually(out).Should(gbytes.Say(`node-b\s+1\s+NVIDIA H100 80GB HBM3\s+75%\s+0%\s+50%\s+46C\s+Healthy`))
			Consistently(done, "100ms").ShouldNot(Receive())
		})
	})

	Describe("explain-placement", func() {
		It("shows each image's GPU, the controller's events and the candidates", func() {
			event(fox, 0, "Placed", "Placed image 0 on node-a GPU 0 (GPU-node-a-0) at 10% memory")
			event(fox, 1, "Placed", "Placed image 1 on node-b GPU 0 (GPU-node-b-0) at 10% memory")
			event(fox, 2, "Placed", "Placed image 2 on node-b GPU 1 (GPU-node-b-1) at 75% memory")
			event(fox, 3, "Created", "Created 3 image pods")
			// Image 0's pod carries the decision as the controller recorded it; image 2's pod
			// predates such records, and image 1's is not named.
			record := placementrecord.Encode(placementrecord.Of(placement.Decision{
				Policy: sdfleetv1alpha1.PlacementLeastLoaded, Load: 0.1, ExpectedFinish: 3 * time.Second,
				GPU: placement.GPU{Node: "node-a", Index: 0, UUID: "GPU-node-a-0"},
				Alternatives: []placement.Candidate{
					{UUID: "GPU-node-b-0", Load: 0.1, Fits: true, ExpectedFinish: 7 * time.Second},
					{UUID: "GPU-gone", Load: 0.4, Fits: true, ExpectedFinish: 3 * time.Second},
					{UUID: "GPU-node-a-1", Load: 1, Unusable: "unhealthy"},
				}}, 3<<30))
			imagePod(fox, "fox-0", map[string]string{placementrecord.Annotation: record})
			imagePod(fox, "fox-2", nil)
			fox.Status.Images[0].PodName, fox.Status.Images[2].PodName = "fox-0", "fox-2"
			Expect(k8s.Status().Update(suiteCtx, fox)).To(Succeed())

			out, err := kubectl("explain-placement", "fox")
			Expect(err).NotTo(HaveOccurred(), out)
			expectGolden("explain", out)
			Expect(strings.Count(out, "Candidates now:")).To(Equal(2), "the images without a record")
			Expect(strings.Count(out, "Compared at placement:")).To(Equal(1))
			Expect(out).To(ContainSubstring("  Chosen (LeastLoaded, by expected finish): the earliest expected finish (3.0s"))
			Expect(out).To(ContainSubstring("    node-b GPU 0 (GPU-node-b-0)\texpected to finish later (7.0s against 3.0s); load 10%, expected finish 7.0s\n"))
			Expect(out).To(ContainSubstring("    GPU-gone (no longer published)\texpected to finish as early (3.0s) but more loaded (40% against 10%)"))
			Expect(out).To(ContainSubstring("    node-a GPU 1 (GPU-node-a-1)\tnot usable: unhealthy; load 100%\n"))
			Expect(out).To(ContainSubstring("node-a GPU 1 (GPU-node-a-1)\tunhealthy (XID 79): never chosen"))
		})

		It("names the job and namespace it cannot find", func() {
			out, err := kubectl("explain-placement", "fox", "-n", "other")
			Expect(err).To(MatchError(ContainSubstring(`"fox" not found`)), out)
		})
	})

	Describe("images", func() {
		It("downloads a job's finished PNGs through the gateway and checks their SHA-256", func() {
			path, sum := writePNG(fox, 2, 32)
			fox.Status.Images[2].OutputPath, fox.Status.Images[2].SHA256 = path, sum
			Expect(k8s.Status().Update(suiteCtx, fox)).To(Succeed())
			dir := filepath.Join(GinkgoT().TempDir(), "fox")
			out, err := kubectl("images", "fox", "--out", dir, "--gateway", gatewayURL, "--token", token)
			Expect(err).NotTo(HaveOccurred(), out)
			file := filepath.Join(dir, "fox-2.png")
			Expect(out).To(Equal(file + "\tnode-b GPU 1 (GPU-node-b-1)\tseed 44\n" +
				"2 of 3 images of studio/fox are not finished (Running)\n"))
			Expect(fileSHA(file)).To(Equal(sum))
		})

		It("refuses a PNG whose SHA-256 is not the status's and leaves no file", func() {
			fox.Status.Images[2].SHA256 = strings.Repeat("0", 64)
			Expect(k8s.Status().Update(suiteCtx, fox)).To(Succeed())
			dir := GinkgoT().TempDir()
			out, err := kubectl("images", "fox", "--out", dir, "--gateway", gatewayURL, "--token", token)
			Expect(err).To(MatchError(ContainSubstring("image 2 of studio/fox: SHA-256")), out)
			Expect(os.ReadDir(dir)).To(BeEmpty())
		})

		It("without a gateway, gives up on a reader pod that does not start in time, and deletes it", func() {
			out, err := kubectl("images", "fox", "--out", GinkgoT().TempDir(), "--reader-timeout", "1s")
			Expect(err).To(MatchError(MatchRegexp(`the reader pod studio/sdfleet-reader-\w+ did not start within 1s \(Pending, not scheduled yet\)`)), out)
			Expect(readerPods("studio")).To(BeEmpty())
		})
	})

	Describe("generate", func() {
		It("submits through the gateway, prints progress lines, downloads the PNGs and where each ran", func() {
			dir := filepath.Join(GinkgoT().TempDir(), "out")
			out, errOut := gbytes.NewBuffer(), gbytes.NewBuffer()
			done := make(chan error, 1)
			go func() {
				defer GinkgoRecover()
				done <- run(out, errOut, "generate", "a snowy owl", "-i", "3", "--size", "64x64", "--steps", "4",
					"--sampler", "euler-ancestral", "--seed", "7", "--wait", "--out", dir, "--gateway", gatewayURL, "--token", token)
			}()
			Eventually(out).Should(gbytes.Say(`imagegenerationjob.sdfleet.io/(gw-\w+) created in namespace studio\n`))
			var job *sdfleetv1alpha1.ImageGenerationJob
			Eventually(func(g Gomega) {
				var list sdfleetv1alpha1.ImageGenerationJobList
				g.Expect(k8s.List(suiteCtx, &list, client.InNamespace("studio"))).To(Succeed())
				for i := range list.Items {
					if list.Items[i].Spec.Prompt == "a snowy owl" {
						job = &list.Items[i]
					}
				}
				g.Expect(job).NotTo(BeNil())
			}).Should(Succeed())
			Expect(job.Spec.Images).To(BeEquivalentTo(3))
			Expect(job.Spec.Width).To(BeEquivalentTo(64))
			Expect(job.Spec.Sampler).To(Equal(sdfleetv1alpha1.SamplerEulerAncestral))
			Expect(job.Spec.Seed).To(Equal(ptr.To[int64](7)))
			Expect(job.Spec.Model.HostPath.Path).To(Equal("/models/tiny"))

			// The controller runs image 0, then finishes every image.
			job.Status.Images = []sdfleetv1alpha1.ImageStatus{placed(0, sdfleetv1alpha1.ImageRunning, "node-a", 0, 10)}
			job.Status.Phase, job.Status.Running, job.Status.Pending = sdfleetv1alpha1.JobPhaseRunning, 1, 2
			Expect(k8s.Status().Update(suiteCtx, job)).To(Succeed())
			Eventually(out).Should(gbytes.Say(job.Name + `: 0/3 images done, 1 running, 0 failed \(Running\)\n`))
			sums := map[int32]string{}
			job.Status.Images = nil
			for i, gpu := range []struct {
				node  string
				index int32
			}{{"node-a", 0}, {"node-b", 0}, {"node-b", 1}} {
				img := placed(int32(i), sdfleetv1alpha1.ImageSucceeded, gpu.node, gpu.index, 10)
				img.OutputPath, img.SHA256 = writePNG(job, int32(i), 64)
				sums[int32(i)] = img.SHA256
				job.Status.Images = append(job.Status.Images, img)
			}
			job.Status.Phase, job.Status.Running, job.Status.Pending, job.Status.Succeeded = sdfleetv1alpha1.JobPhaseComplete, 0, 0, 3
			meta.SetStatusCondition(&job.Status.Conditions, metav1.Condition{Type: sdfleetv1alpha1.JobComplete,
				Status: metav1.ConditionTrue, Reason: "Completed", Message: "every image succeeded"})
			Expect(k8s.Status().Update(suiteCtx, job)).To(Succeed())
			Eventually(done).Should(Receive(BeNil()))
			Expect(string(out.Contents())).To(HaveSuffix(
				job.Name + ": 3/3 images done, 0 running, 0 failed (Complete)\n" +
					filepath.Join(dir, job.Name+"-0.png") + "\tnode-a GPU 0 (GPU-node-a-0)\tseed 42\n" +
					filepath.Join(dir, job.Name+"-1.png") + "\tnode-b GPU 0 (GPU-node-b-0)\tseed 43\n" +
					filepath.Join(dir, job.Name+"-2.png") + "\tnode-b GPU 1 (GPU-node-b-1)\tseed 44\n"))
			for i, sum := range sums {
				file := filepath.Join(dir, fmt.Sprintf("%s-%d.png", job.Name, i))
				Expect(fileSHA(file)).To(Equal(sum))
				data, err := os.ReadFile(file)
				Expect(err).NotTo(HaveOccurred())
				cfg, err := png.DecodeConfig(bytes.NewReader(data))
				Expect(err).NotTo(HaveOccurred())
				Expect(cfg.Width).To(Equal(64))
			}
			Expect(string(errOut.Contents())).To(BeEmpty())
		})

		It("names the flag of a bad size", func() {
			out, err := kubectl("generate", "x", "--size", "big", "--gateway", gatewayURL, "--token", token)
			Expect(err).To(MatchError(`--size "big": want WIDTHxHEIGHT, for example 512x512`), out)
		})
	})
})
