package checkpoint

// Layout is how a checkpoint is stored on disk.
type Layout string

const (
	// Diffusers is a folder with model_index.json and one sub-folder per
	// component (unet/, vae/, text_encoder/, tokenizer/).
	Diffusers Layout = "diffusers"
	// SingleFile is one original-LDM-style .safetensors file holding every
	// component under model.diffusion_model., first_stage_model. and
	// cond_stage_model. (or conditioner.embedders. for SDXL).
	SingleFile Layout = "single-file"
)

// Family is the model generation, which decides the text encoders, the
// cross-attention width and the pipeline that can run the model.
type Family string

const (
	SD1  Family = "sd1"  // Stable Diffusion 1.x: CLIP ViT-L/14 text encoder, context width 768.
	SD2  Family = "sd2"  // Stable Diffusion 2.x: OpenCLIP ViT-H text encoder, context width 1024.
	SDXL Family = "sdxl" // SDXL: two text encoders, context width 2048, added conditioning.
)

// Component names one network of a checkpoint. The values are the diffusers
// folder names.
type Component string

const (
	UNet         Component = "unet"
	VAE          Component = "vae"
	TextEncoder  Component = "text_encoder"
	TextEncoder2 Component = "text_encoder_2"
)

// UNetConfig is the denoiser's architecture, as far as it matters for
// running it. Slices are indexed by down block (up blocks mirror them).
type UNetConfig struct {
	InChannels  int
	OutChannels int
	// BlockOutChannels per resolution level, e.g. 320, 640, 1280, 1280.
	BlockOutChannels []int
	// LayersPerBlock is the number of resnets per down block; up blocks
	// have one more.
	LayersPerBlock int
	// Attention tells which down blocks have cross-attention transformers.
	Attention []bool
	// TransformerDepth is the number of transformer blocks per attention
	// in each down block (0 where there is no attention), and MidDepth in
	// the middle block.
	TransformerDepth []int
	MidDepth         int
	// Heads is the number of attention heads per down block.
	Heads []int
	// CrossAttentionDim is the width of the text context (768 for SD 1.x).
	CrossAttentionDim int
	// LinearProjection is true when proj_in/proj_out are linear layers
	// (SD 2.x, SDXL) rather than 1x1 convolutions (SD 1.x).
	LinearProjection bool
	NormGroups       int
	TimeEmbedDim     int
	// AdditionEmbedDim is the input width of SDXL's added time/size
	// embedding (2816), 0 when there is none.
	AdditionEmbedDim int
	// SampleSize is the latent size the model was trained at (64 for 512px).
	SampleSize int
}

// VAEConfig is the autoencoder's architecture.
type VAEConfig struct {
	InChannels       int
	OutChannels      int
	LatentChannels   int
	BlockOutChannels []int
	LayersPerBlock   int
	NormGroups       int
	// ScalingFactor multiplies latents after encoding and divides them
	// before decoding (0.18215 for SD 1.x/2.x, 0.13025 for SDXL).
	ScalingFactor float64
	SampleSize    int
}

// TextEncoderConfig is a CLIP text transformer's architecture.
type TextEncoderConfig struct {
	VocabSize        int
	HiddenSize       int
	IntermediateSize int
	Layers           int
	Heads            int
	MaxPositions     int
	// HiddenAct is "quick_gelu" (OpenAI CLIP) or "gelu" (OpenCLIP).
	HiddenAct string
	// ProjectionDim is the width of text_projection, 0 when absent.
	ProjectionDim int
}
