// Package workpool is a persistent pool of goroutines, one per usable CPU
// by default, that runs the data-parallel loops of the CPU backend.
//
// Keeping the goroutines alive between calls matters because a diffusion
// step issues thousands of small operations; starting goroutines for each
// would cost more than some of the operations themselves. Each task learns
// the index of the worker running it so callers can give every worker its
// own scratch buffer without locking.
package workpool
