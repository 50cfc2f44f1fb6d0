package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// ErrRefiner is returned (wrapped, with the file that shows it) for an
// SDXL refiner checkpoint. The refiner is an image-to-image model with
// only the OpenCLIP bigG text encoder and an aesthetic-score conditioning;
// it is out of scope: sdfleet runs SDXL base 1.0, whose images need no
// refiner pass.
var ErrRefiner = errors.New("this is an SDXL refiner checkpoint; the refiner is out of scope (sdfleet runs SDXL base 1.0 text-to-image, which needs no refiner pass): give the SDXL base checkpoint")

// ldmXLRefinerOpenCLIP is where the refiner keeps its only text encoder.
const ldmXLRefinerOpenCLIP = "conditioner.embedders.0.model."

// singleFileRefiner tells an SDXL refiner single file by its text
// encoders: OpenCLIP bigG as the first embedder and no CLIP ViT-L.
func singleFileRefiner(s shapeIndex) bool {
	return s.hasPrefix(ldmXLRefinerOpenCLIP) && !s.hasPrefix(ldmXLCLIP)
}

// diffusersRefiner tells an SDXL refiner folder by its model_index.json: an
// image-to-image SDXL pipeline that asks for an aesthetic score, or one
// with text_encoder_2 but no text_encoder.
func diffusersRefiner(index map[string]json.RawMessage) bool {
	var class string
	_ = json.Unmarshal(index["_class_name"], &class)
	var aesthetic bool
	_ = json.Unmarshal(index["requires_aesthetics_score"], &aesthetic)
	present := func(c Component) bool {
		raw, ok := index[string(c)]
		return ok && !strings.Contains(string(raw), "null")
	}
	return (strings.HasPrefix(class, "StableDiffusionXL") && aesthetic) || (present(TextEncoder2) && !present(TextEncoder))
}

func refinerError(path, why string) error {
	return fmt.Errorf("checkpoint %s: %w (%s)", path, ErrRefiner, why)
}
