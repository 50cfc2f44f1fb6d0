// Command sdgen is the inference command line of sdfleet. Each piece of
// work is a subcommand: `sdgen testmodel` writes a synthetic SD 1.5- or
// SDXL-topology checkpoint for tests and benchmarks; `sdgen generate` makes
// one image with an SD 1.x, 2.x or SDXL base checkpoint (the image pods'
// command); `sdgen hold` and `sdgen export` are the two halves of a reader
// pod, through which `kubectl sdfleet` copies a job's PNGs out of its output
// volume when no gateway serves them. `sdgen --help` lists the subcommands
// and `sdgen SUBCOMMAND --help` their flags.
package main
