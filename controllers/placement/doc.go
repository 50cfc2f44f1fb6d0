// Package placement decides which GPU each image of an ImageGenerationJob runs on. It is pure:
// it reads a Snapshot of the GPUs (as the node agents last published them) and the reservations
// still in flight, makes no API calls, keeps no clock and gives the same answer for the same
// input and cursor. The ImageGenerationJob controller calls it; hack/placement-sim measures it.
//
// # Effective load
//
// The load a GPU is judged by is
//
//	effective bytes = max(live used, reserved + baseline)
//	effective load  = effective bytes / total
//
// where reserved is the sum of the GPU's reservations plus the images placed on it earlier in
// the same call, and baseline is the part of the live used figure that no reservation accounts
// for. By the Reservation contract a reservation's memory is not in the live figures yet (the
// caller drops it once its memory shows up), so the whole live figure is baseline and the
// formula comes down to live used + reserved. That is what stops a burst from herding: every
// image placed but not yet loaded counts at once, on top of what the GPU really holds, instead
// of the GPU looking idle until its next sample. Nothing is counted twice as long as the caller
// keeps to the contract; while a model is half loaded when a sample is taken the overlap is
// counted twice for at most one sampling interval, which errs towards spreading, never towards
// an out-of-memory. The max keeps the result at or above the live figure whatever the caller
// passes (negative bytes are rejected).
//
// # Usable GPUs
//
// A GPU that is unhealthy, has no memory total, or whose heartbeat is older than three
// sampling intervals (or GPU.StaleAfter) counts as fully loaded (load 1): it is listed last among the alternatives
// and never chosen. A usable GPU is chosen only if it fits the image: effective bytes plus the
// image's memory stay within total minus the headroom (5% by default), and it has a free slot
// (Slots <= 0 means the GPU is not limited by slots). SlotsInUse must count every image the
// caller has placed on the GPU, reserved or running; images placed in the same call add one
// each.
//
// # Policies
//
//   - LeastLoaded (the default): greedy, re-evaluated after each image, on effective load plus a
//     penalty for a GPU hotter than Config.HotTemperatureCelsius. When any candidate GPU has a
//     speed (GPU.ImagesPerSecond; the controller always gives one, learned by
//     controllers/throughput) the engine instead picks the earliest expected finish, (work on the GPU + 1) / images per second, where the work is GPU.QueuedWork when
//     the caller knows it and the images of SlotsInUse otherwise, and a GPU of unknown speed
//     is taken at the slowest known speed. It answers Wait rather than use a slow free GPU
//     when busy GPUs are expected to finish every image still to place (the call's and
//     Request.Backlog) sooner than that GPU would finish one; when there are more images than
//     the busy GPUs can take in that time, the free GPU gets one now
//     (Config.NoWaitForFasterGPU turns the waiting off).
//   - RoundRobin: the classic single-host balancer's method. The usable GPUs are sorted once
//     by load; image i goes to GPU i mod n, skipping GPUs that no longer fit.
//   - Pack: the most loaded GPU that still fits, to keep whole GPUs free.
//   - Pinned: only the GPUs of Request.Pinned, least loaded among them. A pinned GPU that is not
//     in the snapshot is an error naming it.
//
// Ties are broken round-robin: among equal GPUs the first after the last chosen one, in
// (node, index, UUID) order, wins. The cursor lives in the Engine and persists across calls, so
// repeated single-image jobs spread out. GPUs in Request.Avoid are used only when no other GPU
// fits.
//
// When the snapshot has no GPU at all the images go to the CPU if the request allows it, and
// wait otherwise; when it has GPUs but none is usable (all unhealthy, silent or without
// figures) they wait, whatever the request allows. When usable GPUs exist but none has room, each image gets a Wait
// decision whose reason says why; since a Wait changes nothing, the rest of the call's images
// wait for the same reason.
//
// # Cost
//
// A call makes one pass over the snapshot and its reservations, then one pass over the
// candidate GPUs per image (BenchmarkPlace measures it with 1000 GPUs). The Engine keeps its
// working buffers, and PlaceInto reuses the caller's decisions, so a steady stream of
// decisions that place images allocates nothing; only Wait and CPU decisions format a reason.
package placement
