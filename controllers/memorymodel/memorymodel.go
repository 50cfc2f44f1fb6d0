package memorymodel

import (
	"strings"
	"sync"
)

// GiB is 2^30 bytes.
const GiB = int64(1) << 30

// Families as sdgen reports them in its result.
const (
	FamilySD1  = "sd1"
	FamilySD2  = "sd2"
	FamilySDXL = "sdxl"
)

// Source says where an estimate comes from.
type Source string

const (
	// Learned: the largest peak memory per pixel of the model's finished images.
	Learned Source = "Learned"
	// Default: the family's default, before any image of the model has finished.
	Default Source = "Default"
)

// Estimate is the memory reserved for one image.
type Estimate struct {
	Bytes int64
	// BytesPerPixel is Bytes over the image's pixels.
	BytesPerPixel float64
	Source        Source
	// Family is the model's family when known ("sd1", "sd2", "sdxl"), "" otherwise.
	Family string
	// Images is how many finished images the figure was learned from (0 for a default).
	Images int
}

// DefaultBytes is the family's default for an image of the given pixels: the fp16 weights of
// the largest network and the working memory, plus activations that grow with the pixel
// count. SD 1.x and 2.x: about 3 GiB at 512x512. SDXL: about 8 GiB at 1024x1024 (5.1 GB of
// fp16 UNet weights, activations at four times the pixels).
func DefaultBytes(family string, pixels int64) int64 {
	if family == FamilySDXL {
		return 6*GiB + 2*GiB*pixels/(1024*1024)
	}
	return 2*GiB + GiB*pixels/(512*512)
}

// FamilyFromPath guesses a model's family from its location, for a model no image has run
// yet: SDXL checkpoints are conventionally named with "xl" ("sd_xl_base_1.0.safetensors",
// "stable-diffusion-xl-base-1.0"); anything else is taken for SD 1.x.
func FamilyFromPath(path string) string {
	p := strings.ToLower(path)
	if strings.Contains(p, "xl") {
		return FamilySDXL
	}
	return ""
}

// maxSeen bounds the image names remembered per model to count each image once.
const maxSeen = 4096

type model struct {
	family   string
	perPixel float64
	images   int
	seen     map[string]bool
}

// Learner holds what finished images taught about each model. It is safe for concurrent use.
type Learner struct {
	mu     sync.Mutex
	models map[string]*model
}

// NewLearner returns a learner that knows no model.
func NewLearner() *Learner { return &Learner{models: map[string]*model{}} }

// Observe records a finished image of the model at key: image names it (so that seeing the
// same finished image again changes nothing), family is what the image's result reported,
// peakBytes the most memory it held (the GPU's, or the host's on the CPU) and pixels its
// width × height. Observations without a positive peak or size are ignored. It reports
// whether the model's estimate changed.
func (l *Learner) Observe(key, image, family string, peakBytes, pixels int64) bool {
	if key == "" || peakBytes <= 0 || pixels <= 0 {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	m := l.models[key]
	if m == nil {
		m = &model{seen: map[string]bool{}}
		l.models[key] = m
	}
	if m.seen[image] {
		return false
	}
	if len(m.seen) >= maxSeen {
		clear(m.seen)
	}
	m.seen[image] = true
	m.images++
	changed := false
	if family != "" && m.family != family {
		m.family, changed = family, true
	}
	// The largest rate seen: a reservation that is too small herds images onto a GPU that
	// cannot hold them, one too large only spreads them.
	if r := float64(peakBytes) / float64(pixels); r > m.perPixel {
		m.perPixel, changed = r, true
	}
	return changed
}

// Estimate is the memory to reserve for an image of pixels of the model at key, whose
// location is path (for the family guess before any image finished).
func (l *Learner) Estimate(key, path string, pixels int64) Estimate {
	if pixels <= 0 {
		pixels = 512 * 512
	}
	l.mu.Lock()
	m := l.models[key]
	var family string
	var perPixel float64
	var images int
	if m != nil {
		family, perPixel, images = m.family, m.perPixel, m.images
	}
	l.mu.Unlock()
	if perPixel > 0 {
		return Estimate{Bytes: int64(perPixel * float64(pixels)), BytesPerPixel: perPixel, Source: Learned, Family: family, Images: images}
	}
	if family == "" {
		family = FamilyFromPath(path)
	}
	b := DefaultBytes(family, pixels)
	return Estimate{Bytes: b, BytesPerPixel: float64(b) / float64(pixels), Source: Default, Family: family}
}
