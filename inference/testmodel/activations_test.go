package testmodel

import (
	"fmt"
	"math"
	"path/filepath"
	"testing"

	"github.com/sdfleet/sdfleet/inference/checkpoint"
	"github.com/sdfleet/sdfleet/inference/tokenizer"
)

// TestTextEncoderActivationsStayFinite runs the tiny model's CLIP text
// encoder with a plain float32 reference implementation and checks that
// the generated weights keep the hidden states finite and of unit scale
// through all twelve layers.
func TestTextEncoderActivationsStayFinite(t *testing.T) {
	dir, err := Generate(filepath.Join(t.TempDir(), "m"), Options{Size: Tiny, Layout: checkpoint.Diffusers, Seed: 11})
	if err != nil {
		t.Fatal(err)
	}
	m, err := checkpoint.Open(dir, checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	tokDir, err := m.TokenizerDir(checkpoint.TextEncoder)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Load(tokDir)
	if err != nil {
		t.Fatal(err)
	}
	w := func(name string) []float32 {
		tn, err := m.Tensor(checkpoint.TextEncoder, name)
		if err != nil {
			t.Fatal(err)
		}
		v, err := tn.Float32()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	cfg := m.TextEncoder
	D, S, H := cfg.HiddenSize, tokenizer.ContextLength, cfg.Heads
	ids := tok.Encode("a photo of an astronaut riding a horse on the moon").IDs

	tokEmb, posEmb := w("text_model.embeddings.token_embedding.weight"), w("text_model.embeddings.position_embedding.weight")
	x := make([]float32, S*D)
	for s, id := range ids {
		for d := range D {
			x[s*D+d] = tokEmb[id*D+d] + posEmb[s*D+d]
		}
	}
	for l := range cfg.Layers {
		p := fmt.Sprintf("text_model.encoder.layers.%d.", l)
		h := layerNorm(x, D, w(p+"layer_norm1.weight"), w(p+"layer_norm1.bias"))
		q := linear(h, D, w(p+"self_attn.q_proj.weight"), w(p+"self_attn.q_proj.bias"))
		k := linear(h, D, w(p+"self_attn.k_proj.weight"), w(p+"self_attn.k_proj.bias"))
		v := linear(h, D, w(p+"self_attn.v_proj.weight"), w(p+"self_attn.v_proj.bias"))
		att := causalAttention(q, k, v, S, D, H)
		o := linear(att, D, w(p+"self_attn.out_proj.weight"), w(p+"self_attn.out_proj.bias"))
		for i := range x {
			x[i] += o[i]
		}
		h = layerNorm(x, D, w(p+"layer_norm2.weight"), w(p+"layer_norm2.bias"))
		f := linear(h, D, w(p+"mlp.fc1.weight"), w(p+"mlp.fc1.bias"))
		for i, a := range f { // quick_gelu
			f[i] = a / (1 + float32(math.Exp(-1.702*float64(a))))
		}
		f = linear(f, cfg.IntermediateSize, w(p+"mlp.fc2.weight"), w(p+"mlp.fc2.bias"))
		for i := range x {
			x[i] += f[i]
		}
		if r := rms(x); math.IsNaN(r) || r > 20 {
			t.Fatalf("layer %d: residual stream RMS %v", l, r)
		}
	}
	out := layerNorm(x, D, w("text_model.final_layer_norm.weight"), w("text_model.final_layer_norm.bias"))
	if r := rms(out); math.IsNaN(r) || r < 0.5 || r > 2 {
		t.Errorf("final hidden states RMS %v, want about 1", r)
	}
}

func rms(x []float32) float64 {
	var s float64
	for _, v := range x {
		if math.IsInf(float64(v), 0) || math.IsNaN(float64(v)) {
			return math.NaN()
		}
		s += float64(v) * float64(v)
	}
	return math.Sqrt(s / float64(len(x)))
}

// linear computes x·Wᵀ + b for rows of x with in columns; w is [out, in].
func linear(x []float32, in int, w, b []float32) []float32 {
	rows, out := len(x)/in, len(b)
	y := make([]float32, rows*out)
	for r := range rows {
		for o := range out {
			acc := b[o]
			for i := range in {
				acc += x[r*in+i] * w[o*in+i]
			}
			y[r*out+o] = acc
		}
	}
	return y
}

func layerNorm(x []float32, d int, g, b []float32) []float32 {
	y := make([]float32, len(x))
	for r := 0; r < len(x); r += d {
		var mean, vr float64
		for _, v := range x[r : r+d] {
			mean += float64(v)
		}
		mean /= float64(d)
		for _, v := range x[r : r+d] {
			vr += (float64(v) - mean) * (float64(v) - mean)
		}
		inv := 1 / math.Sqrt(vr/float64(d)+1e-5)
		for i := range d {
			y[r+i] = float32((float64(x[r+i])-mean)*inv)*g[i] + b[i]
		}
	}
	return y
}

func causalAttention(q, k, v []float32, s, d, heads int) []float32 {
	hd := d / heads
	out := make([]float32, s*d)
	scale := 1 / math.Sqrt(float64(hd))
	scores := make([]float64, s)
	for h := range heads {
		for i := range s {
			maxv := math.Inf(-1)
			for j := 0; j <= i; j++ {
				var dot float64
				for c := range hd {
					dot += float64(q[i*d+h*hd+c]) * float64(k[j*d+h*hd+c])
				}
				scores[j] = dot * scale
				maxv = math.Max(maxv, scores[j])
			}
			var sum float64
			for j := 0; j <= i; j++ {
				scores[j] = math.Exp(scores[j] - maxv)
				sum += scores[j]
			}
			for j := 0; j <= i; j++ {
				p := float32(scores[j] / sum)
				for c := range hd {
					out[i*d+h*hd+c] += p * v[j*d+h*hd+c]
				}
			}
		}
	}
	return out
}
