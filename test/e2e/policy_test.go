//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	"github.com/sdfleet/sdfleet/test/envtest"
)

// canI runs `kubectl auth can-i verb resource -n ns --as user` and reports its answer.
func canI(user, verb, resource, ns string) bool {
	GinkgoHelper()
	args := []string{"auth", "can-i", verb, resource, "--as", user}
	if ns != "" {
		args = append(args, "-n", ns)
	}
	cmd := exec.Command(kubectl, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	out, err := cmd.CombinedOutput()
	fmt.Fprintf(GinkgoWriter, "$ kubectl %v\n%s", args, out)
	return err == nil
}

func jobPolicy() bool {
	return Describe("The job policy and the users' roles", func() {
		It("refuses a host path outside the suite's folder at admission, naming the field", func() {
			ns := newNamespace()
			manifest := filepath.Join(work, "hostile.yaml")
			Expect(os.WriteFile(manifest, []byte(fmt.Sprintf(`apiVersion: sdfleet.io/v1alpha1
kind: ImageGenerationJob
metadata: {name: hostile, namespace: %s}
spec:
  prompt: a fox
  model: {hostPath: {path: %s}}
  output: {hostPath: {path: /etc}}
`, ns, modelDir)), 0o644)).To(Succeed())
			cmd := exec.Command(kubectl, "apply", "--dry-run=server", "-f", manifest)
			cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
			out, err := cmd.CombinedOutput()
			Expect(err).To(HaveOccurred(), "kubectl accepted output /etc: %s", out)
			Expect(string(out)).To(And(ContainSubstring("spec.output.hostPath.path"), ContainSubstring("/tmp/sdfleet-e2e")))
		})

		It("gives a namespace user with the built-in edit role jobs to write and GPUNodes to read, not to write", func() {
			ns := newNamespace()
			user := "alice@example.com"
			Expect(k8s.Create(ctx, &rbacv1.RoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: "alice-edit", Namespace: ns},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "edit"},
				Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
			})).To(Succeed())
			// The cluster's controller manager aggregates sdfleet-edit and sdfleet-view into edit.
			Eventually(func() bool { return canI(user, "create", "imagegenerationjobs.sdfleet.io", ns) }).Should(BeTrue())
			Expect(canI(user, "delete", "imagegenerationjobs.sdfleet.io", ns)).To(BeTrue())
			Expect(canI(user, "list", "gpunodes.sdfleet.io", "")).To(BeTrue())
			Expect(canI(user, "create", "gpunodes.sdfleet.io", "")).To(BeFalse())
			Expect(canI(user, "patch", "gpunodes.sdfleet.io", "")).To(BeFalse())
			Expect(canI(user, "create", "imagegenerationjobs.sdfleet.io", "default")).To(BeFalse())

			cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
			Expect(err).NotTo(HaveOccurred())
			cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
			alice, err := client.New(cfg, client.Options{Scheme: envtest.Scheme()})
			Expect(err).NotTo(HaveOccurred())
			var nodes sdfleetv1alpha1.GPUNodeList
			Expect(alice.List(ctx, &nodes)).To(Succeed())
			Expect(nodes.Items).NotTo(BeEmpty())
			Expect(alice.Create(ctx, MakeJob("by-alice", ns).Images(1).Obj(), client.DryRunAll)).To(Succeed())
			hostile := MakeJob("by-alice", ns).Images(1).Obj()
			hostile.Spec.Image = "docker.io/library/busybox:1.36"
			Expect(alice.Create(ctx, hostile)).To(MatchError(ContainSubstring("spec.image")))
		})
	})
}
