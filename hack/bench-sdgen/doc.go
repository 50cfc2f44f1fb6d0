// Command bench-sdgen prints how long Stable Diffusion 1.5 generation
// takes on this machine's CPU backend, and how much memory it needs.
//
//	go run ./hack/bench-sdgen [--family sd1|sdxl] [--model PATH] [--size 512] [--steps 20] [--skip-phases] [--skip-total] [--skip-tiny] [--cpuprofile FILE]
//
// With --family sdxl the generated model is SDXL base 1.0 (fp16, about 6.9 GB; the temporary
// folder is removed at exit), the size defaults to 1024 and the networks are measured one
// after the other, each released before the next, with the peak resident memory of each
// phase: the text encoders, one guided UNet evaluation (through the text_time embedding), the
// VAE decode.
//
// Without --model it writes the `full` random test model (true SD 1.5
// shapes, fp16, about 2 GB) into a temporary folder first. It reports the
// load time of each network, one UNet evaluation with classifier-free
// guidance (batch 2) at the given size, one VAE decode, the peak resident
// memory of those phases, then a whole --steps generation through the
// pipeline (which releases each network after its phase) with its own peak
// resident memory, and the same whole generation with the tiny test model.
// The weights are random, so the images are noise; the work is the real
// model's. Timings are single runs: on a shared machine they are
// pessimistic.
package main
