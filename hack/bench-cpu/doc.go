// Command bench-cpu prints how fast the CPU backend runs Stable
// Diffusion's hot operations on this machine, next to OpenBLAS and the
// machine's measured FMA peak.
//
//	go run ./hack/bench-cpu [--format table|json] [--repeat N]
//
// For the four matrix multiply shapes SD spends its time in it reports
// our GFLOP/s; OpenBLAS's (Debian's libopenblas0-pthread, loaded at run
// time through purego so no other binary links a C library) as this
// environment configures it, with OPENBLAS_CORETYPE unset, and with each
// core type this CPU supports forced (SkylakeX, Cooperlake, Haswell; see
// --openblas-coretypes), because OpenBLAS's own detection falls back to a
// generic kernel on CPUs newer than the library; our ratio to the fastest
// OpenBLAS figure; and our fraction of the measured FMA peak. Then it
// times one 3×3 convolution at 64×64×320 and self-attention over 4096
// tokens × 8 heads × 40. With --format json it prints one object per line.
//
// OpenBLAS runs in child processes of this command (re-executed with
// --openblas-child), so each environment gets a freshly initialised
// library and its threads never compete with ours. Other work on a shared
// machine only slows runs down, so everything is measured in --repeat
// rounds and the best figure of each is reported; ours gets as many timed
// runs per round as the OpenBLAS children together.
package main
