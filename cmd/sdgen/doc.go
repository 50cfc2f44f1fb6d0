// Command sdgen is the inference command line of sdfleet. Each piece of
// work is a subcommand: `sdgen testmodel` writes a synthetic SD 1.5- or
// SDXL-topology checkpoint for tests and benchmarks; `sdgen generate`
// generates an image with an SD 1.x, 2.x or SDXL base checkpoint. `sdgen --help` lists the subcommands and
// `sdgen SUBCOMMAND --help` their flags.
package main
