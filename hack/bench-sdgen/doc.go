// Command bench-sdgen prints how long Stable Diffusion 1.5 generation
// takes on this machine's CPU backend, and how much memory it needs.
//
//	go run ./hack/bench-sdgen [--family sd1|sdxl] [--model PATH] [--size 512] [--steps 3] [--threads 2] [--precisions fp32,bf16]
//	    [--before OLD-SDGEN] [--sdgen SDGEN] [--skip-phases] [--skip-total] [--skip-tiny] [--cpuprofile FILE]
//
// With --family sdxl the generated model is SDXL base 1.0 (fp16, about 6.9 GB; the temporary
// folder is removed at exit), the size defaults to 1024 and the in-process networks are measured
// one after the other, each released before the next, with the peak resident memory of each
// phase: the text encoders, one guided UNet evaluation (through the text_time embedding), the
// VAE decode.
//
// Without --model it writes the `full` random test model (true SD 1.5
// shapes, fp16, single file, about 2 GB) into a temporary folder first.
//
// For each precision it loads the three networks in this process and
// reports each one's load time, one UNet evaluation with classifier-free
// guidance (batch 2) at the given size, one VAE decode, and the peak
// resident memory with all of them loaded. It then runs `sdgen generate`
// as its own process, as an image pod does, once per precision (and once
// with the --before binary, an sdgen built from an earlier commit, for
// before-and-after figures in one run): load, encode, one guided step,
// decode, the time from process start to the first denoising step, the
// total and the peak resident memory, and the PSNR of each image against
// the first run's. Finally it runs the tiny test model's whole 20-step
// pipeline at 64x64 in each precision.
//
// --threads sets GOMAXPROCS here and in every sdgen (default 2). The
// weights are random, so the images are noise; the work is the real
// model's. Timings are single runs, and the CPU time printed beside the
// in-process wall times shows how much a shared machine stretched them.
package main
