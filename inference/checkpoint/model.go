package checkpoint

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/sdfleet/sdfleet/inference/safetensors"
)

// Options adjust how a checkpoint is opened.
type Options struct {
	// TokenizerDir is the folder holding vocab.json and merges.txt for the
	// (first) text encoder of a single-file checkpoint. Default: a
	// "tokenizer" folder beside the file. Ignored for diffusers folders,
	// which carry their own.
	TokenizerDir string
	// Tokenizer2Dir is the same for SDXL's second text encoder (default
	// "tokenizer_2" beside the file).
	Tokenizer2Dir string
	// Variant picks between a diffusers folder's weight files: "fp16"
	// prefers *.fp16.safetensors, "" the plain files. Either falls back to
	// the other when only one exists.
	Variant string
}

// Model is an opened, fully validated checkpoint. Its tensors alias the
// memory-mapped files until Close.
type Model struct {
	Path   string
	Layout Layout
	Family Family

	UNet        UNetConfig
	VAE         VAEConfig
	TextEncoder TextEncoderConfig
	// TextEncoder2 is SDXL's second (OpenCLIP bigG) text encoder, nil for
	// other families.
	TextEncoder2 *TextEncoderConfig

	// Ignored lists stored tensors that are known to be unused (noise
	// schedule buffers, EMA copies, position_ids, ...), by stored name.
	Ignored []string

	files      []*safetensors.File
	tensors    map[Component]map[string]Tensor
	tokenizers map[Component]string
}

// Open detects the layout of path (a diffusers folder or a single
// .safetensors file), the model family, and the architecture, maps every
// tensor to its canonical diffusers name and checks that each one the
// architecture needs is present with the right shape. All problems are
// returned together as a *ValidationError.
func Open(path string, opts Options) (*Model, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	if st.IsDir() {
		if _, err := os.Stat(filepath.Join(path, "model_index.json")); err != nil {
			return nil, fmt.Errorf("checkpoint %s: a folder must be a diffusers model with model_index.json: %w", path, err)
		}
		return openDiffusers(path, opts)
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".safetensors":
		return openSingleFile(path, opts)
	case ".ckpt", ".pt", ".pth", ".bin":
		return nil, fmt.Errorf("checkpoint %s: pickle checkpoints are not supported (they can run code when loaded); convert it to .safetensors", path)
	}
	return nil, fmt.Errorf("checkpoint %s: want a diffusers folder or a .safetensors file", path)
}

// Close unmaps every file. Tensor bytes must not be used afterwards.
func (m *Model) Close() error {
	var errs []error
	for _, f := range m.files {
		errs = append(errs, f.Close())
	}
	m.files = nil
	return errors.Join(errs...)
}

// DropResidentPages takes every file's pages out of the process's resident memory, for
// example after a network's weights have been packed by a backend, so that the stored copy and
// the packed copy are not both counted. Tensors stay readable: their pages fault in again.
func (m *Model) DropResidentPages() error {
	var errs []error
	for _, f := range m.files {
		errs = append(errs, f.DropResidentPages())
	}
	return errors.Join(errs...)
}

// DropPagesOf takes the pages under b (a tensor's stored bytes) out of resident memory once a
// backend has converted them; bytes that are not in a mapped file (transposed copies) are
// left alone. The tensor stays readable.
func (m *Model) DropPagesOf(b []byte) error {
	var errs []error
	for _, f := range m.files {
		errs = append(errs, f.DropPagesOf(b))
	}
	return errors.Join(errs...)
}

// Components lists the networks present, in a fixed order.
func (m *Model) Components() []Component {
	var out []Component
	for _, c := range []Component{UNet, VAE, TextEncoder, TextEncoder2} {
		if _, ok := m.tensors[c]; ok {
			out = append(out, c)
		}
	}
	return out
}

// Names lists a component's canonical tensor names, sorted.
func (m *Model) Names(c Component) []string {
	names := make([]string, 0, len(m.tensors[c]))
	for n := range m.tensors[c] {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Tensor returns the tensor with the given canonical (diffusers) name, for
// example Tensor(UNet, "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight").
func (m *Model) Tensor(c Component, name string) (Tensor, error) {
	t, ok := m.tensors[c][name]
	if !ok {
		return Tensor{}, fmt.Errorf("checkpoint %s: %s has no tensor %q", m.Path, c, name)
	}
	return t, nil
}

// TokenizerDir returns the folder with vocab.json and merges.txt for the
// given text encoder, or an error saying where it was looked for.
func (m *Model) TokenizerDir(c Component) (string, error) {
	dir, ok := m.tokenizers[c]
	if !ok {
		return "", fmt.Errorf("checkpoint %s: no text encoder %q in a %s model", m.Path, c, m.Family)
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		hint := ""
		if m.Layout == SingleFile {
			hint = " (a single-file checkpoint needs a tokenizer folder with vocab.json and merges.txt beside it, or one given explicitly)"
		}
		return "", fmt.Errorf("checkpoint %s: tokenizer folder %s for %s not found%s", m.Path, dir, c, hint)
	}
	return dir, nil
}

// binder matches expected entries against a file's tensors and collects
// problems and the canonical tensors.
type binder struct {
	model    *Model
	problems []Problem
	consumed map[*safetensors.File]map[string]bool
}

func newBinder(m *Model) *binder {
	m.tensors = map[Component]map[string]Tensor{}
	return &binder{model: m, consumed: map[*safetensors.File]map[string]bool{}}
}

// bind resolves entries of component c in file f. alias, when set, offers
// older spellings of a stored name to try when the current one is absent.
func (b *binder) bind(c Component, f *safetensors.File, entries []entry, alias func(string) string) {
	if b.model.tensors[c] == nil {
		b.model.tensors[c] = map[string]Tensor{}
	}
	if b.consumed[f] == nil {
		b.consumed[f] = map[string]bool{}
	}
	for _, e := range entries {
		src := e.Source
		st, ok := f.Tensor(src)
		if !ok && alias != nil {
			if a := alias(src); a != "" {
				if st, ok = f.Tensor(a); ok {
					src = a
				}
			}
		}
		want := shapesString(e)
		if !ok {
			b.problems = append(b.problems, Problem{Kind: Missing, Component: c, Canonical: e.Canonical, File: f.Path(), Source: e.Source, Want: want})
			continue
		}
		b.consumed[f][src] = true
		if !st.DType.IsFloat() {
			b.problems = append(b.problems, Problem{Kind: BadDType, Component: c, Canonical: e.Canonical, File: f.Path(), Source: src, Want: "F32, F16 or BF16", Got: string(st.DType)})
			continue
		}
		if !shapeMatches(st.Shape, e) {
			b.problems = append(b.problems, Problem{Kind: BadShape, Component: c, Canonical: e.Canonical, File: f.Path(), Source: src, Want: want, Got: fmt.Sprint(st.Shape)})
			continue
		}
		b.model.tensors[c][e.Canonical] = Tensor{
			Component: c, Name: e.Canonical, DType: st.DType, Shape: e.Shape,
			File: f.Path(), Source: src, stored: st, t: e.T,
		}
	}
}

// unexpected reports every tensor of f that no entry consumed, except
// those ignore accepts, which are recorded in Model.Ignored.
func (b *binder) unexpected(component func(string) Component, f *safetensors.File, ignore func(string) bool) {
	for _, name := range f.Names() {
		if b.consumed[f][name] {
			continue
		}
		if ignore != nil && ignore(name) {
			b.model.Ignored = append(b.model.Ignored, name)
			continue
		}
		st, _ := f.Tensor(name)
		b.problems = append(b.problems, Problem{Kind: Unexpected, Component: component(name), File: f.Path(), Source: name, Got: fmt.Sprintf("%s%v", st.DType, st.Shape)})
	}
}

func (b *binder) configMismatch(c Component, file, field string, fromShapes, fromConfig any) {
	b.problems = append(b.problems, Problem{Kind: BadConfig, Component: c, File: file,
		Want: fmt.Sprintf("%s = %v (from tensor shapes)", field, fromShapes), Got: fmt.Sprintf("%v in config.json", fromConfig)})
}

func (b *binder) err() error {
	if len(b.problems) == 0 {
		return nil
	}
	return &ValidationError{Path: b.model.Path, Problems: b.problems}
}

func shapeMatches(got []int64, e entry) bool {
	for _, want := range e.sourceShapes() {
		if equalShape(got, want) {
			return true
		}
	}
	return false
}

func equalShape(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func shapesString(e entry) string {
	var parts []string
	for _, s := range e.sourceShapes() {
		parts = append(parts, fmt.Sprint(s))
	}
	return "shape " + strings.Join(parts, " or ")
}

func indexShapes(files ...*safetensors.File) shapeIndex {
	s := newShapeIndex()
	for _, f := range files {
		for _, t := range f.Header().Tensors {
			s.add(t.Name, t.Shape)
		}
	}
	return s
}
