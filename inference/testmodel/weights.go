package testmodel

import (
	"hash/fnv"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/sdfleet/sdfleet/inference/checkpoint"
)

// Values returns the deterministic weights of one tensor. They depend only
// on the seed, the component and the canonical name, never on the layout or
// on the order tensors are written in, which is what makes both layouts of
// a seed hold identical tensors.
func Values(seed uint64, component, canonical string, shape []int64) []float32 {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	out := make([]float32, n)
	h := fnv.New64a()
	h.Write([]byte(component))
	h.Write([]byte{'/'})
	h.Write([]byte(canonical))
	r := rand.New(rand.NewPCG(seed, h.Sum64()))

	center, spread := float32(0), float32(0)
	switch {
	case strings.HasSuffix(canonical, ".bias"):
		spread = 0.02
	case len(shape) == 1:
		// Only norms have one-dimensional weights: keep their gain near 1.
		center, spread = 1, 0.05
	case strings.Contains(canonical, "token_embedding"):
		spread = float32(0.02 * math.Sqrt(3))
	case strings.Contains(canonical, "position_embedding"):
		spread = float32(0.01 * math.Sqrt(3))
	default:
		// Uniform with variance 1/fan-in keeps each layer's output at the
		// scale of its input.
		fanIn := int64(1)
		for _, d := range shape[1:] {
			fanIn *= d
		}
		spread = float32(math.Sqrt(3 / float64(fanIn)))
	}
	for i := range out {
		out[i] = center + spread*(2*r.Float32()-1)
	}
	return out
}

// storedValues are the values of a tensor as its layout stores it: the
// canonical tensor's Values, except where a single file stores several
// canonical tensors in one (OpenCLIP's fused attention in_proj, the q, k and
// v projections stacked) or transposed (OpenCLIP's text_projection, [in,
// out]), so that both layouts hold the same canonical tensors.
func storedValues(seed uint64, t checkpoint.StoredTensor) []float32 {
	c := string(t.Component)
	switch {
	case strings.HasSuffix(t.Name, ".attn.in_proj_weight"), strings.HasSuffix(t.Name, ".attn.in_proj_bias"):
		part := append([]int64{t.Shape[0] / 3}, t.Shape[1:]...)
		var out []float32
		for _, p := range []string{"q_proj", "k_proj", "v_proj"} {
			out = append(out, Values(seed, c, strings.Replace(t.Canonical, "q_proj", p, 1), part)...)
		}
		return out
	case strings.HasSuffix(t.Name, ".text_projection") && len(t.Shape) == 2:
		in, out := int(t.Shape[0]), int(t.Shape[1])
		v := Values(seed, c, t.Canonical, []int64{t.Shape[1], t.Shape[0]})
		tr := make([]float32, len(v))
		for o := range out {
			for i := range in {
				tr[i*out+o] = v[o*in+i]
			}
		}
		return tr
	}
	return Values(seed, c, t.Canonical, t.Shape)
}

// schedule computes SD 1.x's training noise schedule (scaled-linear betas
// from 0.00085 to 0.012 over 1000 steps) and the buffers original
// checkpoints derive from it, under their stored names.
func schedule() map[string][]float32 {
	const steps = 1000
	lo, hi := math.Sqrt(0.00085), math.Sqrt(0.012)
	cols := map[string][]float64{}
	ac := 1.0
	for i := range steps {
		b := lo + (hi-lo)*float64(i)/float64(steps-1)
		beta := b * b
		prev := ac
		ac *= 1 - beta
		cols["betas"] = append(cols["betas"], beta)
		cols["alphas_cumprod"] = append(cols["alphas_cumprod"], ac)
		cols["alphas_cumprod_prev"] = append(cols["alphas_cumprod_prev"], prev)
		cols["sqrt_alphas_cumprod"] = append(cols["sqrt_alphas_cumprod"], math.Sqrt(ac))
		cols["sqrt_one_minus_alphas_cumprod"] = append(cols["sqrt_one_minus_alphas_cumprod"], math.Sqrt(1-ac))
		cols["log_one_minus_alphas_cumprod"] = append(cols["log_one_minus_alphas_cumprod"], math.Log(1-ac))
		cols["sqrt_recip_alphas_cumprod"] = append(cols["sqrt_recip_alphas_cumprod"], math.Sqrt(1/ac))
		cols["sqrt_recipm1_alphas_cumprod"] = append(cols["sqrt_recipm1_alphas_cumprod"], math.Sqrt(1/ac-1))
		pv := beta * (1 - prev) / (1 - ac)
		cols["posterior_variance"] = append(cols["posterior_variance"], pv)
		cols["posterior_log_variance_clipped"] = append(cols["posterior_log_variance_clipped"], math.Log(math.Max(pv, 1e-20)))
		cols["posterior_mean_coef1"] = append(cols["posterior_mean_coef1"], beta*math.Sqrt(prev)/(1-ac))
		cols["posterior_mean_coef2"] = append(cols["posterior_mean_coef2"], (1-prev)*math.Sqrt(1-beta)/(1-ac))
	}
	out := map[string][]float32{}
	for k, v := range cols {
		f := make([]float32, len(v))
		for i, x := range v {
			f[i] = float32(x)
		}
		out[k] = f
	}
	return out
}
