// Package simulator provides simulated GPUs for clusters and CI without hardware. It builds a
// go-nvml mock server (the same kind as go-nvml's dgxh100 server) whose memory, utilization,
// temperature, power and event queries follow a YAML scenario: the GPUs (product family nvidia
// or amd, product, memory, UUID, starting load), a timeline of load changes, and failure injection (an Xid or a double-bit ECC
// error at a time, NVML query errors, recovery). The node agent reads it through the very NVML
// adapter it uses on real GPUs.
//
// The load can be changed while the agent runs, two ways:
//   - edit the scenario file: it is polled and re-read when its content changes (this works
//     with ConfigMap volumes, whose files are swapped by symlink). The GPUs must stay the same;
//     their starting load is re-applied and the timeline restarts from the moment of the reload.
//   - the control endpoint (Handler), served by the agent under /simulator on its own address
//     (--simulator-control-bind-address, loopback by default, since it takes no
//     authentication): GET returns the current state; POST a YAML or JSON body
//     {"steps": [...]} with steps shaped like the timeline's, whose "at" counts from the request.
//
// See config/samples/simulator/gpus.yaml for a commented scenario.
package simulator
