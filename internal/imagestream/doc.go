// Package imagestream is how a job's PNGs leave its output volume when no gateway serves them:
// `kubectl sdfleet` starts a short-lived reader pod that mounts the volume read-only and runs
// `sdgen hold`, then runs `sdgen export` in it through the API server's exec, which writes the
// requested files to its standard output as a tar stream (Write). The plugin reads the stream
// back (Read) and checks each file against the SHA-256 of the job's status.
//
// Both sides import this package so that the commands and the stream's format are written
// down once, as controllers/podcontract does for image pods.
//
// # Invocation
//
//	sdgen hold --for 10m                                   the reader pod's main process
//	sdgen export --root /sdfleet/output ns/job/0.png ...   run through exec
//
// export refuses paths that leave --root (absolute paths, ".." segments, symbolic links that
// point outside it) and stops at the first file it cannot read, naming it on standard error.
package imagestream
