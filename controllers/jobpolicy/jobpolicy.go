package jobpolicy

import (
	"fmt"
	"path"
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	"github.com/sdfleet/sdfleet/controllers/podcontract"
)

// Policy is what jobs may ask for. The zero Policy allows no host path and only the default
// image.
type Policy struct {
	// HostPathPrefixes are the host folders image pods may mount, clean absolute paths.
	HostPathPrefixes []string
	// ImagePrefixes are the image repositories (or prefixes ending in "/") spec.image may name.
	ImagePrefixes []string
}

// New checks the administrator's lists and returns the policy. An empty imagePrefixes allows
// only the repository of defaultImage.
func New(hostPathPrefixes, imagePrefixes []string, defaultImage string) (Policy, error) {
	p := Policy{}
	for _, prefix := range hostPathPrefixes {
		if !strings.HasPrefix(prefix, "/") || path.Clean(prefix) != prefix {
			return Policy{}, fmt.Errorf("allowed host path prefix %q: expected a clean absolute path such as /var/lib/sdfleet", prefix)
		}
		p.HostPathPrefixes = append(p.HostPathPrefixes, prefix)
	}
	for _, prefix := range imagePrefixes {
		if prefix == "" || strings.ContainsAny(prefix, " ,\t\n") {
			return Policy{}, fmt.Errorf("allowed image prefix %q: expected an image repository such as ghcr.io/sdfleet/sdgen, "+
				"or a registry path ending in /", prefix)
		}
		p.ImagePrefixes = append(p.ImagePrefixes, prefix)
	}
	if len(p.ImagePrefixes) == 0 && defaultImage != "" {
		p.ImagePrefixes = []string{Repository(defaultImage)}
	}
	return p, nil
}

// tagOrDigest is the tag or digest at the end of an image reference. A tag holds no '/' and no
// ':', which tells it from a registry's port.
var tagOrDigest = regexp.MustCompile(`(@[a-z0-9]+:[a-fA-F0-9]+|:[^/:@]+)$`)

// Repository is an image reference without its tag or digest.
func Repository(image string) string {
	return tagOrDigest.ReplaceAllString(image, "")
}

// HostPathAllowed reports whether the host folder dir (cleaned first) is in an allowed folder.
func (p Policy) HostPathAllowed(dir string) bool {
	dir = "/" + podcontract.CleanRelative(dir)
	for _, prefix := range p.HostPathPrefixes {
		if prefix == "/" || dir == prefix || strings.HasPrefix(dir, prefix+"/") {
			return true
		}
	}
	return false
}

// ImageAllowed reports whether image matches an allowed image prefix.
func (p Policy) ImageAllowed(image string) bool {
	for _, prefix := range p.ImagePrefixes {
		if image == prefix ||
			(strings.HasSuffix(prefix, "/") && strings.HasPrefix(image, prefix)) ||
			strings.HasPrefix(image, prefix+":") || strings.HasPrefix(image, prefix+"@") {
			return true
		}
	}
	return false
}

// Check returns the fields of spec that the policy refuses, each naming the field, the value
// and what is allowed; nil when the job may run.
func (p Policy) Check(spec *sdfleetv1alpha1.ImageGenerationJobSpec) field.ErrorList {
	var errs field.ErrorList
	specPath := field.NewPath("spec")
	if hp := spec.Model.HostPath; hp != nil {
		dir, _ := podcontract.HostModelMount(hp.Path)
		if !p.HostPathAllowed(dir) {
			errs = append(errs, field.Forbidden(specPath.Child("model", "hostPath", "path"),
				fmt.Sprintf("%q: image pods would mount the host folder %s, %s", hp.Path, dir, p.allowedHostPaths())))
		}
	}
	if hp := spec.Output.HostPath; hp != nil {
		if !p.HostPathAllowed(hp.Path) {
			errs = append(errs, field.Forbidden(specPath.Child("output", "hostPath", "path"),
				fmt.Sprintf("%q: %s", hp.Path, p.allowedHostPaths())))
		}
	}
	if spec.Image != "" && !p.ImageAllowed(spec.Image) {
		errs = append(errs, field.Forbidden(specPath.Child("image"),
			fmt.Sprintf("%q is not an allowed image; allowed image prefixes: %s (or leave spec.image unset for the default image)",
				spec.Image, strings.Join(p.ImagePrefixes, ", "))))
	}
	return errs
}

// allowedHostPaths says what the administrator allows.
func (p Policy) allowedHostPaths() string {
	if len(p.HostPathPrefixes) == 0 {
		return "and hostPath is disabled on this cluster (use persistentVolumeClaim)"
	}
	return "which is not under an allowed host path prefix: " + strings.Join(p.HostPathPrefixes, ", ")
}
