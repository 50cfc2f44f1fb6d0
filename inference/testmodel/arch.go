package testmodel

import (
	"fmt"

	"github.com/sdfleet/sdfleet/inference/checkpoint"
	"github.com/sdfleet/sdfleet/inference/safetensors"
)

// Size selects the model dimensions.
type Size string

const (
	Tiny Size = "tiny"
	Full Size = "full"
)

// ParseSize checks a size name.
func ParseSize(s string) (Size, error) {
	switch Size(s) {
	case Tiny, Full:
		return Size(s), nil
	}
	return "", fmt.Errorf("unknown test model size %q (want tiny or full)", s)
}

// DefaultDType is the dtype weights are stored in: F32 for Tiny, so tests
// compare exact values, and F16 for Full, as the released fp16 files.
func (s Size) DefaultDType() safetensors.DType {
	if s == Full {
		return safetensors.F16
	}
	return safetensors.F32
}

// fullVocabSize is CLIP ViT-L/14's vocabulary size; the tiny model's
// vocabulary is the synthetic tokenizer's.
const fullVocabSize = 49408

// Architecture returns the configs of an SD 1.5 model of the given size,
// the same ones checkpoint.Open infers when it loads the generated files.
func Architecture(size Size) (checkpoint.Architecture, error) {
	return ArchitectureFor(checkpoint.SD1, size)
}

// ParseFamily checks a family name: sd1 (also the empty string) or sdxl.
func ParseFamily(s string) (checkpoint.Family, error) {
	switch checkpoint.Family(s) {
	case "", checkpoint.SD1:
		return checkpoint.SD1, nil
	case checkpoint.SDXL:
		return checkpoint.SDXL, nil
	}
	return "", fmt.Errorf("unknown test model family %q (want %s or %s)", s, checkpoint.SD1, checkpoint.SDXL)
}

// ArchitectureFor returns the configs of a model of the given family
// (SD1 when empty) and size.
func ArchitectureFor(family checkpoint.Family, size Size) (checkpoint.Architecture, error) {
	switch family {
	case "", checkpoint.SD1:
	case checkpoint.SDXL:
		return sdxlArchitecture(size)
	default:
		return checkpoint.Architecture{}, fmt.Errorf("unknown test model family %q (want %s or %s)", family, checkpoint.SD1, checkpoint.SDXL)
	}
	switch size {
	case Tiny:
		return checkpoint.Architecture{
			Family: checkpoint.SD1,
			UNet:   unet([]int{32, 32, 64, 64}, 32),
			VAE:    vae([]int{32, 32, 64, 64}),
			TextEncoder: checkpoint.TextEncoderConfig{
				VocabSize: SyntheticVocabSize(), HiddenSize: 32, IntermediateSize: 128,
				Layers: 12, Heads: 2, MaxPositions: 77, HiddenAct: "quick_gelu",
			},
		}, nil
	case Full:
		return checkpoint.Architecture{
			Family: checkpoint.SD1,
			UNet:   unet([]int{320, 640, 1280, 1280}, 768),
			VAE:    vae([]int{128, 256, 512, 512}),
			TextEncoder: checkpoint.TextEncoderConfig{
				VocabSize: fullVocabSize, HiddenSize: 768, IntermediateSize: 3072,
				Layers: 12, Heads: 12, MaxPositions: 77, HiddenAct: "quick_gelu",
			},
		}, nil
	}
	return checkpoint.Architecture{}, fmt.Errorf("unknown test model size %q (want tiny or full)", size)
}

// unet is the SD 1.5 UNet topology at the given widths: two resnets per
// level, cross-attention in all but the lowest resolution, 8 heads.
func unet(chs []int, ctx int) checkpoint.UNetConfig {
	return checkpoint.UNetConfig{
		InChannels: 4, OutChannels: 4,
		BlockOutChannels: chs, LayersPerBlock: 2,
		Attention:        []bool{true, true, true, false},
		TransformerDepth: []int{1, 1, 1, 0}, MidDepth: 1,
		Heads:             []int{8, 8, 8, 8},
		CrossAttentionDim: ctx, NormGroups: 32,
		TimeEmbedDim: 4 * chs[0], SampleSize: 64,
	}
}

func vae(chs []int) checkpoint.VAEConfig {
	return checkpoint.VAEConfig{
		InChannels: 3, OutChannels: 3, LatentChannels: 4,
		BlockOutChannels: chs, LayersPerBlock: 2, NormGroups: 32,
		ScalingFactor: 0.18215, SampleSize: 512,
	}
}

// ByteSize is the total tensor bytes an SD 1.5 model of this size and
// layout occupies, computed without generating it.
func ByteSize(size Size, layout checkpoint.Layout) (int64, error) {
	return ByteSizeFor(checkpoint.SD1, size, layout)
}

// ByteSizeFor is ByteSize for a model of the given family.
func ByteSizeFor(family checkpoint.Family, size Size, layout checkpoint.Layout) (int64, error) {
	a, err := ArchitectureFor(family, size)
	if err != nil {
		return 0, err
	}
	tensors, err := checkpoint.ExpectedTensors(layout, a)
	if err != nil {
		return 0, err
	}
	dt := size.DefaultDType()
	var total int64
	for _, t := range tensors {
		total += safetensors.Spec{DType: dt, Shape: t.Shape}.ByteSize()
	}
	if layout == checkpoint.SingleFile {
		extras := ldmExtras()
		if a.Family == checkpoint.SDXL {
			extras = sdxlExtras()
		}
		for _, e := range extras {
			total += e.ByteSize()
		}
	}
	return total, nil
}
