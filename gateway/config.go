package gateway

import (
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	"github.com/sdfleet/sdfleet/controllers/podcontract"
)

// NamespaceHeader names the namespace a request acts in when the caller's token is not a
// service account's, or when it should act elsewhere. The caller must be allowed there.
const NamespaceHeader = "X-Sdfleet-Namespace"

// Models is the administrator's configuration file (--config): the models callers may name
// and where every job's images go.
type Models struct {
	// Models maps the name a caller uses (OpenAI's model, AUTOMATIC1111's sd_model_checkpoint)
	// to where the weights are.
	Models map[string]sdfleetv1alpha1.StorageLocation `json:"models"`
	// DefaultModel is used when a request names none. It must be a key of Models.
	DefaultModel string `json:"defaultModel"`
	// Output is spec.output of every job the gateway creates. The gateway mounts the same
	// volume read-only at --output-dir to serve the images.
	Output sdfleetv1alpha1.StorageLocation `json:"output"`
}

// LoadModels reads and checks the configuration file.
func LoadModels(file string) (Models, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return Models{}, fmt.Errorf("read the gateway configuration: %w", err)
	}
	var m Models
	if err := yaml.UnmarshalStrict(data, &m); err != nil {
		return Models{}, fmt.Errorf("%s: %w", file, err)
	}
	if err := m.Validate(); err != nil {
		return Models{}, fmt.Errorf("%s: %w", file, err)
	}
	return m, nil
}

// Validate checks what the API server would refuse later, naming the key.
func (m Models) Validate() error {
	if len(m.Models) == 0 {
		return errors.New("models: want at least one model, as name: {hostPath: {path: ...}} or {persistentVolumeClaim: {claimName: ..., path: ...}}")
	}
	for _, name := range m.Names() {
		if strings.TrimSpace(name) == "" || len(name) > 253 {
			return fmt.Errorf("models: model name %q: want 1 to 253 characters", name)
		}
		if err := validateLocation(m.Models[name]); err != nil {
			return fmt.Errorf("models.%s: %w", name, err)
		}
	}
	if m.DefaultModel == "" {
		return errors.New("defaultModel: want the name of one of the models")
	}
	if _, ok := m.Models[m.DefaultModel]; !ok {
		return fmt.Errorf("defaultModel %q: not one of the models (%s)", m.DefaultModel, strings.Join(m.Names(), ", "))
	}
	if err := validateLocation(m.Output); err != nil {
		return fmt.Errorf("output: %w", err)
	}
	return nil
}

// Names are the model names, sorted.
func (m Models) Names() []string {
	names := make([]string, 0, len(m.Models))
	for n := range m.Models {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func validateLocation(loc sdfleetv1alpha1.StorageLocation) error {
	switch {
	case (loc.HostPath == nil) == (loc.PersistentVolumeClaim == nil):
		return errors.New("want exactly one of hostPath or persistentVolumeClaim")
	case loc.HostPath != nil:
		p := loc.HostPath.Path
		if !strings.HasPrefix(p, "/") || hasDotDot(p) {
			return fmt.Errorf("hostPath.path %q: want an absolute path without '..'", p)
		}
	default:
		pvc := loc.PersistentVolumeClaim
		if pvc.ClaimName == "" {
			return errors.New("persistentVolumeClaim.claimName: want the claim's name")
		}
		if strings.HasPrefix(pvc.Path, "/") || hasDotDot(pvc.Path) {
			return fmt.Errorf("persistentVolumeClaim.path %q: want a relative path without '..'", pvc.Path)
		}
	}
	return nil
}

func hasDotDot(p string) bool { return slices.Contains(strings.Split(p, "/"), "..") }

// Config is everything the gateway is told by its administrator.
type Config struct {
	Models
	// OutputDir is where the output volume is mounted (read-only) in the gateway.
	OutputDir string
	// WaitTimeout is how long an OpenAI or AUTOMATIC1111 request waits for its images before
	// the gateway answers 202 with the job's name.
	WaitTimeout time.Duration
	// MaxBodyBytes bounds every request body.
	MaxBodyBytes int64
	// MaxImagesPerRequest bounds n (OpenAI) and batch_size x n_iter (AUTOMATIC1111).
	MaxImagesPerRequest int
	// RequestsPerSecond and Burst are each caller's token bucket.
	RequestsPerSecond float64
	Burst             int
	// AuthCacheTTL is how long a TokenReview or SubjectAccessReview answer is reused.
	AuthCacheTTL time.Duration
	// PublicURL is the gateway's address as clients reach it, for OpenAI "url" responses;
	// empty uses the request's Host.
	PublicURL string
}

// Validate checks the numbers, naming the flag each comes from.
func (c Config) Validate() error {
	switch {
	case c.OutputDir == "" || !path.IsAbs(c.OutputDir):
		return fmt.Errorf("--output-dir %q: want the absolute path the output volume is mounted at", c.OutputDir)
	case c.WaitTimeout <= 0:
		return fmt.Errorf("--wait-timeout %v: want a positive duration", c.WaitTimeout)
	case c.MaxBodyBytes < 1024:
		return fmt.Errorf("--max-body-bytes %d: want at least 1024", c.MaxBodyBytes)
	case c.MaxImagesPerRequest < 1 || c.MaxImagesPerRequest > sdfleetv1alpha1.MaxImageDetails:
		return fmt.Errorf("--max-images-per-request %d: want 1 to %d", c.MaxImagesPerRequest, sdfleetv1alpha1.MaxImageDetails)
	case c.RequestsPerSecond <= 0 || c.Burst < 1:
		return fmt.Errorf("--rate-limit %v and --rate-burst %d: want a positive rate and a burst of at least 1", c.RequestsPerSecond, c.Burst)
	case c.AuthCacheTTL < 0:
		return fmt.Errorf("--auth-cache-ttl %v: want 0 or more", c.AuthCacheTTL)
	}
	return c.Models.Validate()
}

// localImagePath maps an image's status.outputPath to a path relative to OutputDir. ok is
// false when the job's images are not on the gateway's volume.
func (c Config) localImagePath(job *sdfleetv1alpha1.ImageGenerationJob, outputPath string) (string, bool) {
	if !sameLocation(job.Spec.Output, c.Output) || outputPath == "" {
		return "", false
	}
	if hp := c.Output.HostPath; hp != nil {
		root := "/" + podcontract.CleanRelative(hp.Path)
		rel, found := strings.CutPrefix(outputPath, root+"/")
		if !found {
			return "", false
		}
		return podcontract.CleanRelative(rel), true
	}
	return podcontract.CleanRelative(outputPath), true
}

func sameLocation(a, b sdfleetv1alpha1.StorageLocation) bool {
	switch {
	case a.HostPath != nil && b.HostPath != nil:
		return podcontract.CleanRelative(a.HostPath.Path) == podcontract.CleanRelative(b.HostPath.Path)
	case a.PersistentVolumeClaim != nil && b.PersistentVolumeClaim != nil:
		return a.PersistentVolumeClaim.ClaimName == b.PersistentVolumeClaim.ClaimName &&
			podcontract.CleanRelative(a.PersistentVolumeClaim.Path) == podcontract.CleanRelative(b.PersistentVolumeClaim.Path)
	}
	return false
}
