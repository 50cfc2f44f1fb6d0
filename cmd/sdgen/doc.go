// Command sdgen is the inference command line of sdfleet. Each piece of
// work is a subcommand: `sdgen testmodel` writes a synthetic SD 1.5-topology
// checkpoint for tests and benchmarks; image generation joins it as
// `sdgen generate`. `sdgen --help` lists the subcommands and
// `sdgen SUBCOMMAND --help` their flags.
package main
