//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// sdfleetImages are the images `make push` pushes.
var sdfleetImages = []string{"manager", "deviceplugin", "sdgen", "gateway"}

// localRegistry is a CNCF Distribution registry (bin/registry, hack/registry) on loopback that
// the suite pushes sdfleet's images to with `make push` and the cluster's containerd pulls
// them from, as a real cluster pulls from its registry.
type localRegistry struct {
	// host is host:port, the registry's name in image references and in containerd's hosts.toml.
	host string
	// digests are the manifest digests `make push` reported, by image name.
	digests map[string]string
}

// repository is the reference of one of sdfleet's images in the registry, without a tag.
func (r *localRegistry) repository(image string) string { return r.host + "/sdfleet/" + image }

// startRegistry builds bin/registry and runs it on a free loopback port until the suite ends.
func startRegistry() *localRegistry {
	GinkgoHelper()
	run("hack/build-registry.sh")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	host := l.Addr().String()
	Expect(l.Close()).To(Succeed())

	storage := filepath.Join(os.TempDir(), "sdfleet-e2e-registry")
	Expect(os.RemoveAll(storage)).To(Succeed())
	logFile, err := os.Create(storage + ".log")
	Expect(err).NotTo(HaveOccurred())
	cmd := exec.Command(filepath.Join(root, "bin", "registry"), "-addr", host, "-root", storage)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	Expect(cmd.Start()).To(Succeed())
	DeferCleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		_ = logFile.Close()
		Expect(os.RemoveAll(storage)).To(Succeed())
	})
	Eventually(func() (int, error) {
		resp, err := http.Get("http://" + host + "/v2/")
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		return resp.StatusCode, nil
	}).WithTimeout(30*time.Second).WithPolling(100*time.Millisecond).Should(Equal(http.StatusOK), "the registry did not answer: see %s.log", storage)
	return &localRegistry{host: host, digests: map[string]string{}}
}

// pushed is a line mkimage prints for each image it pushes: its reference by digest.
var pushed = regexp.MustCompile(`^(\S+)/sdfleet/([a-z]+)@(sha256:[0-9a-f]{64})$`)

// push pushes sdfleet's images with `make push`, as an administrator does, tagged with the
// current chart's appVersion, and tags the same manifests with the previous chart's appVersion:
// the previous release the upgrade spec starts from runs the images by its own tag.
func (r *localRegistry) push(tag, previousTag string) {
	GinkgoHelper()
	cmd := exec.Command("make", "--no-print-directory", "push", "REGISTRY="+r.host+"/sdfleet", "INSECURE=1", "TAG="+tag)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stdout = GinkgoWriter
	cmd.Stderr = io.MultiWriter(&stderr, GinkgoWriter)
	fmt.Fprintf(GinkgoWriter, "$ %s\n", strings.Join(cmd.Args, " "))
	Expect(cmd.Run()).To(Succeed(), "make push")
	sc := bufio.NewScanner(&stderr)
	for sc.Scan() {
		if m := pushed.FindStringSubmatch(strings.TrimSpace(sc.Text())); m != nil && m[1] == r.host {
			r.digests[m[2]] = m[3]
		}
	}
	for _, image := range sdfleetImages {
		Expect(r.digests).To(HaveKey(image), "make push reported no digest for %s", image)
		ref, err := name.ParseReference(r.repository(image)+":"+tag, name.Insecure)
		Expect(err).NotTo(HaveOccurred())
		desc, err := remote.Get(ref)
		Expect(err).NotTo(HaveOccurred(), "the registry does not have %s", ref)
		Expect(desc.Digest.String()).To(Equal(r.digests[image]), "the registry's %s is not what make push pushed", ref)
		Expect(remote.Tag(ref.Context().Tag(previousTag), desc)).To(Succeed())
	}
}

// values are the chart values that make the cluster run sdfleet's images from the registry:
// the chart's own tags (its appVersion), pulled when the node does not have them.
func (r *localRegistry) values(inferenceTag string) string {
	image := func(name string) map[string]any {
		return map[string]any{"repository": r.repository(name), "tag": "", "pullPolicy": "IfNotPresent"}
	}
	data, err := yaml.Marshal(map[string]any{
		"manager": map[string]any{
			"image":                 image("manager"),
			"defaultInferenceImage": r.repository("sdgen") + ":" + inferenceTag,
		},
		"devicePlugin": map[string]any{"image": image("deviceplugin")},
		"gateway":      map[string]any{"image": image("gateway")},
	})
	Expect(err).NotTo(HaveOccurred())
	return string(data)
}

// nodeImage is an image in the node's containerd, as `ctr images ls` shows it.
type nodeImage struct {
	ref, digest string
	// pulled: the kubelet pulled it through containerd's CRI, which labels what it pulls.
	pulled bool
}

// nodeImages lists the images in the cluster's containerd (hack/cluster/ctr.sh images ls).
func nodeImages() map[string]nodeImage {
	GinkgoHelper()
	out := run("hack/cluster/ctr.sh", "images", "ls")
	images := map[string]nodeImage{}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	Expect(lines).NotTo(BeEmpty())
	// REF TYPE DIGEST SIZE PLATFORMS LABELS; SIZE is two words ("12.3 MiB").
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		Expect(len(f)).To(BeNumerically(">=", 3), "ctr images ls line %q", line)
		images[f[0]] = nodeImage{ref: f[0], digest: f[2], pulled: strings.Contains(line, "io.cri-containerd.image=managed")}
	}
	return images
}

// expectFromRegistry checks that the pod's first container runs the image of the registry by
// the digest `make push` pushed, as the kubelet reports it.
func (r *localRegistry) expectFromRegistry(p corev1.Pod, image string) {
	GinkgoHelper()
	Expect(p.Status.ContainerStatuses).NotTo(BeEmpty(), "pod %s has no container status", p.Name)
	st := p.Status.ContainerStatuses[0]
	Expect(st.Image).To(HavePrefix(r.repository(image)+":"), "pod %s", p.Name)
	Expect(st.ImageID).To(Equal(r.repository(image)+"@"+r.digests[image]), "pod %s runs another %s than the one pushed", p.Name, image)
}

func imagesFromRegistry() bool {
	return Describe("Images from a registry", func() {
		It("runs sdfleet from the images make push pushed, pulled by the node's containerd, none imported", func() {
			By("the operator and the node agent run the pushed images by their digest")
			for component, image := range map[string]string{"manager": "manager", "deviceplugin": "deviceplugin"} {
				pods := &corev1.PodList{}
				Expect(k8s.List(ctx, pods, client.InNamespace(releaseNamespace),
					client.MatchingLabels{"app.kubernetes.io/component": component})).To(Succeed())
				Expect(pods.Items).NotTo(BeEmpty(), "no %s pod", component)
				for _, p := range pods.Items {
					if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning {
						registry.expectFromRegistry(p, image)
					}
				}
			}

			By("containerd pulled them from the registry and has no archive of them")
			// The current release runs every image by the chart's appVersion.
			tag := loadChart(currentChartDir).Metadata.AppVersion
			images := nodeImages()
			for _, image := range []string{"manager", "deviceplugin", "sdgen"} {
				tagged, ok := images[registry.repository(image)+":"+tag]
				Expect(ok).To(BeTrue(), "containerd has no %s from the registry: %v", image, images)
				Expect(tagged.digest).To(Equal(registry.digests[image]))
				Expect(tagged.pulled).To(BeTrue(), "%s is in containerd without the CRI's pull label", tagged.ref)
			}
			for ref := range images {
				Expect(ref).NotTo(HavePrefix("ghcr.io/sdfleet/"), "an archive of sdfleet's images was imported")
			}
		})
	})
}
