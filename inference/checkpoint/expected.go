package checkpoint

import "fmt"

// StoredTensor is one tensor as a layout stores it: Name and Shape are
// what the file holds; Canonical is the diffusers name it maps to (for a
// fused OpenCLIP in_proj, the q_proj name of the three it yields).
type StoredTensor struct {
	Component Component
	Canonical string
	Name      string
	Shape     []int64
}

// Architecture bundles the configs that determine a checkpoint's tensors.
type Architecture struct {
	Family       Family
	UNet         UNetConfig
	VAE          VAEConfig
	TextEncoder  TextEncoderConfig
	TextEncoder2 *TextEncoderConfig // SDXL only
}

// Architecture returns the configs of an opened model.
func (m *Model) Architecture() Architecture {
	return Architecture{Family: m.Family, UNet: m.UNet, VAE: m.VAE, TextEncoder: m.TextEncoder, TextEncoder2: m.TextEncoder2}
}

// ExpectedTensors lists the weight tensors a checkpoint of this architecture
// stores in the given layout, in a stable order, with the names and shapes
// that the loader requires. Buffers that the loader ignores (noise
// schedule, position_ids) are not included. The VAE attention is listed as
// 1x1 convolutions for single files and as linear layers for diffusers, as
// the released SD checkpoints store it.
func ExpectedTensors(layout Layout, a Architecture) ([]StoredTensor, error) {
	ldm := layout == SingleFile
	if !ldm && layout != Diffusers {
		return nil, fmt.Errorf("unknown layout %q", layout)
	}
	groups := []struct {
		c       Component
		entries []entry
	}{
		{UNet, unetSpec(a.UNet, ldm)},
		{VAE, vaeSpec(a.VAE, ldm)},
	}
	switch {
	case a.Family == SD1 || !ldm:
		// Diffusers folders store every family's first encoder as a
		// Hugging Face CLIPTextModel.
		groups = append(groups, struct {
			c       Component
			entries []entry
		}{TextEncoder, clipSpec(a.TextEncoder, ldm, ldmCLIP)})
	case a.Family == SD2:
		groups = append(groups, struct {
			c       Component
			entries []entry
		}{TextEncoder, openCLIPSpec(a.TextEncoder, ldmOpenCLIP)})
	case a.Family == SDXL:
		groups = append(groups, struct {
			c       Component
			entries []entry
		}{TextEncoder, clipSpec(a.TextEncoder, true, ldmXLCLIP)})
	default:
		return nil, fmt.Errorf("unknown family %q", a.Family)
	}
	if a.Family == SDXL {
		if a.TextEncoder2 == nil {
			return nil, fmt.Errorf("an SDXL architecture needs TextEncoder2")
		}
		var e []entry
		if ldm {
			e = openCLIPSpec(*a.TextEncoder2, ldmXLOpenCLIP)
		} else {
			e = clipSpec(*a.TextEncoder2, false, "")
		}
		groups = append(groups, struct {
			c       Component
			entries []entry
		}{TextEncoder2, e})
	}
	var out []StoredTensor
	seen := map[string]bool{}
	for _, g := range groups {
		for _, e := range g.entries {
			key := string(g.c) + "/" + e.Source
			if seen[key] {
				continue // the other parts of a fused in_proj
			}
			seen[key] = true
			shapes := e.sourceShapes()
			shape := shapes[0]
			if e.T == squeezeConv && ldm {
				shape = shapes[1]
			}
			out = append(out, StoredTensor{Component: g.c, Canonical: e.Canonical, Name: e.Source, Shape: shape})
		}
	}
	return out, nil
}
