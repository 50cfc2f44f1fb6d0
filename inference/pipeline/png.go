package pipeline

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/sdfleet/sdfleet/inference/checkpoint"
	"github.com/sdfleet/sdfleet/inference/sampler"
)

// samplerLabels are the sampler names other Stable Diffusion tools write
// into their "parameters" text.
var samplerLabels = map[string]string{
	sampler.DDIM:           "DDIM",
	sampler.EulerAncestral: "Euler a",
	sampler.DPMPP2MKarras:  "DPM++ 2M Karras",
}

// Parameters formats a request the way the common Stable Diffusion web UIs
// store it in a PNG's "parameters" text: the prompt, a "Negative prompt:"
// line when there is one, and a line of "Key: value" settings.
func Parameters(req Request) string {
	var b strings.Builder
	b.WriteString(req.Prompt)
	b.WriteString("\n")
	if req.NegativePrompt != "" {
		fmt.Fprintf(&b, "Negative prompt: %s\n", req.NegativePrompt)
	}
	label := samplerLabels[req.Sampler]
	if label == "" {
		label = req.Sampler
	}
	fmt.Fprintf(&b, "Steps: %d, Sampler: %s, CFG scale: %g, Seed: %d, Size: %dx%d", req.Steps, label, req.Guidance, req.Seed, req.Width, req.Height)
	if req.RNG != "" {
		fmt.Fprintf(&b, ", RNG: %s", req.RNG)
	}
	return b.String()
}

// Metadata is the "sdfleet" JSON text chunk: the request, machine-readable.
// It holds nothing that varies between runs of the same request (no
// timings, paths or host names), so equal requests give equal files.
type Metadata struct {
	Prompt         string  `json:"prompt"`
	NegativePrompt string  `json:"negativePrompt,omitempty"`
	Width          int     `json:"width"`
	Height         int     `json:"height"`
	Steps          int     `json:"steps"`
	Guidance       float64 `json:"guidance"`
	Sampler        string  `json:"sampler"`
	Seed           uint64  `json:"seed"`
	RNG            string  `json:"rng"`
	Family         string  `json:"family,omitempty"`
}

// MetadataFor describes req for a model of the given family.
func MetadataFor(req Request, family string) Metadata {
	rng := req.RNG
	if rng == "" {
		rng = "sdfleet"
	}
	return Metadata{Prompt: req.Prompt, NegativePrompt: req.NegativePrompt, Width: req.Width, Height: req.Height,
		Steps: req.Steps, Guidance: req.Guidance, Sampler: req.Sampler, Seed: req.Seed, RNG: rng, Family: family}
}

// TextChunk is a PNG text entry.
type TextChunk struct {
	Keyword string
	Text    string
}

// EncodePNG encodes img and inserts the text chunks right after the header,
// where readers look for them first. Text representable in Latin-1 goes
// into tEXt chunks; other text into iTXt (UTF-8).
func EncodePNG(img image.Image, texts []TextChunk) ([]byte, error) {
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.DefaultCompression}
	if err := enc.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("png: %w", err)
	}
	data := buf.Bytes()
	// Signature (8 bytes) then IHDR: length, type, 13 bytes, CRC.
	const ihdrEnd = 8 + 4 + 4 + 13 + 4
	if len(data) < ihdrEnd || string(data[12:16]) != "IHDR" {
		return nil, fmt.Errorf("png: encoder output does not start with IHDR")
	}
	var out bytes.Buffer
	out.Write(data[:ihdrEnd])
	for _, t := range texts {
		if err := writeText(&out, t); err != nil {
			return nil, err
		}
	}
	out.Write(data[ihdrEnd:])
	return out.Bytes(), nil
}

func writeText(w *bytes.Buffer, t TextChunk) error {
	if len(t.Keyword) == 0 || len(t.Keyword) > 79 || strings.ContainsRune(t.Keyword, 0) {
		return fmt.Errorf("png text keyword %q: expected 1 to 79 characters without NUL", t.Keyword)
	}
	if latin1, ok := toLatin1(t.Text); ok {
		return writeChunk(w, "tEXt", append(append([]byte(t.Keyword), 0), latin1...))
	}
	// iTXt: keyword, NUL, compression flag 0, method 0, empty language
	// tag and translated keyword (each NUL-terminated), UTF-8 text.
	body := append([]byte(t.Keyword), 0, 0, 0, 0, 0)
	return writeChunk(w, "iTXt", append(body, t.Text...))
}

// toLatin1 encodes s as ISO 8859-1 when every character fits and none is NUL.
func toLatin1(s string) ([]byte, bool) {
	if !utf8.ValidString(s) {
		return nil, false
	}
	out := make([]byte, 0, len(s))
	for _, r := range s {
		if r == 0 || r > 0xff {
			return nil, false
		}
		out = append(out, byte(r))
	}
	return out, true
}

func writeChunk(w *bytes.Buffer, kind string, body []byte) error {
	if len(body) > 1<<30 {
		return fmt.Errorf("png %s chunk: %d bytes is too long", kind, len(body))
	}
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(body)))
	w.Write(n[:])
	crc := crc32.NewIEEE()
	crc.Write([]byte(kind))
	crc.Write(body)
	w.WriteString(kind)
	w.Write(body)
	binary.BigEndian.PutUint32(n[:], crc.Sum32())
	w.Write(n[:])
	return nil
}

// ImagePNG encodes an Output's image with its "parameters" and "sdfleet"
// text chunks.
func ImagePNG(img image.Image, req Request, family string) ([]byte, error) {
	meta, err := json.Marshal(MetadataFor(req, family))
	if err != nil {
		return nil, err
	}
	params := Parameters(req)
	// SD 1.x images keep the parameters text they always had; an SDXL
	// image says which model made it, as the web UIs' "Model:" entry.
	if family == string(checkpoint.SDXL) {
		params += ", Model: " + FamilyLabel(checkpoint.SDXL)
	}
	return EncodePNG(img, []TextChunk{{"parameters", params}, {"sdfleet", string(meta)}})
}

// WriteFileAtomic writes data to a temporary file beside path, flushes it
// to disk and renames it over path, so no reader ever sees a partial file.
// Missing parent folders are created.
func WriteFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("output folder %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("output %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("output %s: %w", path, err)
	}
	if err = f.Chmod(0o644); err != nil {
		return fmt.Errorf("output %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("output %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("output %s: %w", path, err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("output %s: %w", path, err)
	}
	return nil
}
