package testmodel

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/go-logr/logr"

	"github.com/sdfleet/sdfleet/inference/checkpoint"
	"github.com/sdfleet/sdfleet/inference/safetensors"
)

// Options say what to generate.
type Options struct {
	// Family is checkpoint.SD1 (the default) or checkpoint.SDXL.
	Family checkpoint.Family
	Size   Size
	Layout checkpoint.Layout
	Seed   uint64
	// DType overrides Size.DefaultDType (F32, F16 or BF16).
	DType safetensors.DType
	// CLIPVocab gives the text encoder CLIP's 49408 embedding rows and,
	// for a single-file model, writes no tokenizer folder: the shape of a
	// real single-file SD 1.x checkpoint, which relies on the built-in
	// vocabulary. (The full-size model has those rows already.)
	CLIPVocab bool
	// Log receives one line per file written.
	Log logr.Logger
}

// SingleFileName is the checkpoint file name in a generated single-file
// model; its tokenizer folder is "tokenizer" beside it.
const SingleFileName = "model.safetensors"

// Generate writes a model into dir (created if needed) and returns the path
// to give checkpoint.Open: dir itself for a diffusers folder, the
// .safetensors file for a single-file model.
func Generate(dir string, o Options) (string, error) {
	a, err := ArchitectureFor(o.Family, o.Size)
	if err != nil {
		return "", err
	}
	if o.CLIPVocab {
		a.TextEncoder.VocabSize = fullVocabSize
	}
	xl := a.Family == checkpoint.SDXL
	dt := o.DType
	if dt == "" {
		dt = o.Size.DefaultDType()
	}
	if !dt.IsFloat() {
		return "", fmt.Errorf("test model dtype %q: want F32, F16 or BF16", dt)
	}
	tensors, err := checkpoint.ExpectedTensors(o.Layout, a)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	g := generator{seed: o.Seed, dtype: dt, log: o.Log}
	switch o.Layout {
	case checkpoint.SingleFile:
		path := filepath.Join(dir, SingleFileName)
		extras, writeTokenizers := ldmExtras(), func() error { return WriteTokenizer(filepath.Join(dir, "tokenizer")) }
		if xl {
			extras, writeTokenizers = sdxlExtras(), func() error { return writeSDXLTokenizers(dir) }
		}
		if err := g.writeFile(path, tensors, extras); err != nil {
			return "", err
		}
		if o.CLIPVocab {
			return path, nil
		}
		if err := writeTokenizers(); err != nil {
			return "", err
		}
		return path, nil
	case checkpoint.Diffusers:
		writeConfigs := writeDiffusersConfigs
		if xl {
			writeConfigs = writeSDXLDiffusersConfigs
		}
		if err := writeConfigs(dir, a, dt); err != nil {
			return "", err
		}
		byComponent := map[checkpoint.Component][]checkpoint.StoredTensor{}
		for _, t := range tensors {
			byComponent[t.Component] = append(byComponent[t.Component], t)
		}
		variant := ""
		if dt == safetensors.F16 {
			variant = ".fp16" // as the released fp16 weights are named
		}
		components := []checkpoint.Component{checkpoint.UNet, checkpoint.VAE, checkpoint.TextEncoder}
		if xl {
			components = append(components, checkpoint.TextEncoder2)
		}
		for _, c := range components {
			ts := byComponent[c]
			base := "diffusion_pytorch_model"
			if c == checkpoint.TextEncoder || c == checkpoint.TextEncoder2 {
				base = "model"
			}
			if err := g.writeFile(filepath.Join(dir, string(c), base+variant+".safetensors"), ts, nil); err != nil {
				return "", err
			}
		}
		return dir, nil
	}
	return "", fmt.Errorf("unknown layout %q (want %s or %s)", o.Layout, checkpoint.Diffusers, checkpoint.SingleFile)
}

type generator struct {
	seed  uint64
	dtype safetensors.DType
	log   logr.Logger
}

// extra is a non-weight tensor with fixed contents.
type extra struct {
	safetensors.Spec
	data []byte
}

// ldmExtras are the buffers the released SD 1.5 single files carry besides
// weights: the noise schedule, EMA bookkeeping and CLIP's position_ids.
func ldmExtras() []extra {
	out := scheduleExtras()
	decay, _ := safetensors.Float32Bytes(safetensors.F32, []float32{0.9999})
	out = append(out, extra{safetensors.Spec{Name: "model_ema.decay", DType: safetensors.F32, Shape: []int64{}}, decay})
	out = append(out, extra{safetensors.Spec{Name: "model_ema.num_updates", DType: safetensors.I32, Shape: []int64{}}, []byte{0, 0, 0, 0}})
	ids := make([]byte, 8*77)
	for i := range 77 {
		binary.LittleEndian.PutUint64(ids[8*i:], uint64(i))
	}
	out = append(out, extra{safetensors.Spec{Name: "cond_stage_model.transformer.text_model.embeddings.position_ids", DType: safetensors.I64, Shape: []int64{1, 77}}, ids})
	return out
}

// scheduleExtras are the training noise schedule's buffers, under their
// stored names, in name order.
func scheduleExtras() []extra {
	var out []extra
	sched := schedule()
	names := make([]string, 0, len(sched))
	for k := range sched {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		b, _ := safetensors.Float32Bytes(safetensors.F32, sched[k])
		out = append(out, extra{safetensors.Spec{Name: k, DType: safetensors.F32, Shape: []int64{int64(len(sched[k]))}}, b})
	}
	return out
}

func (g generator) writeFile(path string, tensors []checkpoint.StoredTensor, extras []extra) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	specs := make([]safetensors.Spec, 0, len(tensors)+len(extras))
	for _, t := range tensors {
		specs = append(specs, safetensors.Spec{Name: t.Name, DType: g.dtype, Shape: t.Shape})
	}
	for _, e := range extras {
		specs = append(specs, e.Spec)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 4<<20)
	w, err := safetensors.NewWriter(bw, specs, map[string]string{"format": "pt"})
	if err != nil {
		return err
	}
	var bytes int64
	for _, t := range tensors {
		data, err := safetensors.Float32Bytes(g.dtype, storedValues(g.seed, t))
		if err != nil {
			return err
		}
		if err := w.WriteTensor(t.Name, data); err != nil {
			return err
		}
		bytes += int64(len(data))
	}
	for _, e := range extras {
		if err := w.WriteTensor(e.Name, e.data); err != nil {
			return err
		}
		bytes += int64(len(e.data))
	}
	if err := w.Finish(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	g.log.Info("wrote test model file", "path", path, "tensors", len(specs), "bytes", bytes)
	return nil
}
