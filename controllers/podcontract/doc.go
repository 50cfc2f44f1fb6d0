// Package podcontract is the interface between the ImageGenerationJob controller and the
// inference binary (sdgen) running in each image pod: the command and flags the controller
// passes, the mount points of the model and output volumes, the exit codes sdgen returns and
// the JSON result it writes to the termination message.
//
// Both sides import this package so that the contract is written down once.
//
// # Invocation
//
//	sdgen generate --prompt P --negative-prompt N --seed S --steps 20 --width 512 --height 512 \
//	  --guidance 7.5 --sampler ddim --model /sdfleet/model/<path> \
//	  --output /sdfleet/output/<prefix>/<namespace>/<job>/<index>.png \
//	  --device auto|cpu --result-file /dev/termination-log
//
// The model volume is mounted read-only at ModelMountPath, the output volume read-write at
// OutputMountPath, and an empty scratch directory at ScratchMountPath (the root filesystem is
// read-only). sdgen creates the output file's parent folders.
//
// # Result
//
// On exit, sdgen writes one JSON object (Result) to the result file. On success it names the
// PNG, its SHA-256, how long generation took and the device used; on failure it carries Error.
// The pod uses terminationMessagePolicy FallbackToLogsOnError, so when sdgen dies before writing
// the file the tail of its log reaches the controller instead; ParseResult accepts both.
//
// # Exit codes
//
//	0 success                    the image is done
//	2 invalid input              the image fails at once, no retry
//	3 model error                the whole job fails: every image would hit it
//	4 out of GPU memory          retried on another GPU
//	5 device error               retried on another GPU
//	anything else                retried
package podcontract
