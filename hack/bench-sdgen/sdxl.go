package main

import (
	"fmt"
	"math/rand/v2"
	"runtime/debug"

	"github.com/sdfleet/sdfleet/inference/backend"
	"github.com/sdfleet/sdfleet/inference/checkpoint"
	"github.com/sdfleet/sdfleet/inference/models"
	"github.com/sdfleet/sdfleet/inference/models/clip"
	"github.com/sdfleet/sdfleet/inference/models/unet"
	"github.com/sdfleet/sdfleet/inference/models/vae"
	"github.com/sdfleet/sdfleet/inference/pipeline"
)

// devicePeak is a backend that reports its peak device memory (the Vulkan one).
type devicePeak interface{ PeakMemoryBytes() int64 }

// phasesXL measures an SDXL model network by network, as the pipeline runs it: each network
// is loaded, run once and released before the next, so that each phase's peak resident memory
// is its own (SDXL's UNet alone is 10 GB in float32).
func phasesXL(b backend.Backend, path string, size int) error {
	resetPeak()
	var ck *checkpoint.Model
	if err := timed("open checkpoint", func() (err error) {
		ck, err = checkpoint.Open(path, checkpoint.Options{})
		return err
	}); err != nil {
		return err
	}
	defer ck.Close()
	if ck.Family != checkpoint.SDXL {
		return fmt.Errorf("%s is a %s model, not SDXL", path, ck.Family)
	}
	peak := func(label string) {
		fmt.Printf("%-34s %8.2f GiB\n", "peak RSS, "+label, float64(pipeline.PeakRSS())/(1<<30))
		if d, ok := b.(devicePeak); ok {
			fmt.Printf("%-34s %8.2f GiB\n", "peak device memory so far", float64(d.PeakMemoryBytes())/(1<<30))
		}
		debug.FreeOSMemory()
		resetPeak()
	}

	// Text: both encoders, batch 2 (negative and prompt).
	var te1, te2 *clip.Model
	if err := timed("load text encoders (CLIP-L, bigG)", func() (err error) {
		if te1, err = clip.New(b, models.FromCheckpoint(ck, checkpoint.TextEncoder), ck.TextEncoder, clip.Options{SkipLastLayers: 1}); err != nil {
			return err
		}
		te2, err = clip.New(b, models.FromCheckpoint(ck, checkpoint.TextEncoder2), *ck.TextEncoder2, clip.Options{Projection: true})
		return err
	}); err != nil {
		return err
	}
	ids := make([][]int, 2)
	for i := range ids {
		ids[i] = make([]int, 77)
		for j := range ids[i] {
			ids[i][j] = (j*31 + i) % ck.TextEncoder.VocabSize
		}
	}
	var h1, h2, pooled backend.Tensor
	if err := timed("text encoders (batch 2)", func() (err error) {
		if h1, err = te1.EncodeHidden(ids); err != nil {
			return err
		}
		if h2, pooled, err = te2.EncodePenultimate(ids, []int{76, 76}); err != nil {
			return err
		}
		return b.Sync()
	}); err != nil {
		return err
	}
	work := backend.NewScope(b)
	defer work.Release()
	ctx, err := work.Alloc(2, 77, h1.Dims()[2]+h2.Dims()[2])
	if err != nil {
		return err
	}
	if err := b.Concat(ctx, h1, h2); err != nil {
		return err
	}
	added, err := unet.AddedConditioning(b, ck.UNet, pooled, unet.DefaultSizeConditioning(size, size))
	if err != nil {
		return err
	}
	defer b.Release(added)
	b.Release(h1)
	b.Release(h2)
	b.Release(pooled)
	te1.Release()
	te2.Release()
	peak("text encoders")

	var un *unet.Model
	if err := timed("load unet", func() (err error) {
		un, err = unet.New(b, models.FromCheckpoint(ck, checkpoint.UNet), ck.UNet)
		return err
	}); err != nil {
		return err
	}
	fmt.Printf("%-34s %8.2f GiB\n", "packed unet weights", float64(un.PackedBytes())/(1<<30))
	r := rand.New(rand.NewPCG(1, 1))
	lat := size / 8
	noise := make([]float32, 2*lat*lat*ck.UNet.InChannels)
	for i := range noise {
		noise[i] = float32(r.NormFloat64())
	}
	x, err := work.Upload(noise, 2, lat, lat, ck.UNet.InChannels)
	if err != nil {
		return err
	}
	if err := timed("unet step with guidance (batch 2)", func() error {
		pred, err := un.ForwardAdded(x, 951, ctx, added)
		if err != nil {
			return err
		}
		defer b.Release(pred)
		return b.Sync()
	}); err != nil {
		return err
	}
	un.Release()
	peak("unet")

	var dec *vae.Decoder
	if err := timed("load vae decoder", func() (err error) {
		dec, err = vae.New(b, models.FromCheckpoint(ck, checkpoint.VAE), ck.VAE)
		return err
	}); err != nil {
		return err
	}
	one, err := work.Upload(noise[:lat*lat*ck.UNet.InChannels], 1, lat, lat, ck.UNet.InChannels)
	if err != nil {
		return err
	}
	if err := timed("vae decode", func() error {
		_, err := dec.Decode(one)
		return err
	}); err != nil {
		return err
	}
	dec.Release()
	peak("vae decode")
	return nil
}
