// Command placement-sim is a discrete-event simulation of a GPU cluster running Stable
// Diffusion images. It measures sdfleet's placement engine (controllers/placement) against the
// placement users have without it, on scripted scenarios, and prints how close each strategy
// comes to the best any schedule could do.
//
//	go run ./hack/placement-sim [--scenario NAME] [--format table|json] [--seed N]
//
// # The model
//
// Time is in seconds, memory in bytes. Every image needs the same work W = model-load work +
// generation work, in seconds of a reference GPU. A GPU has a memory total, a speed factor
// (reference = 1), background memory and a background compute share taken by other tenants, and
// a number of slots (images it runs at once). Its effective speed is speed x (1 - background
// compute share), and the images running on it share that speed equally (processor sharing),
// so an image alone takes W / effective speed and k images together take k times as long.
// An image's memory appears on the GPU only once its model-load work is done; if it does not
// fit then (background + memory of the loaded images + this image > total) the image fails
// with out-of-memory. GPUs fail and recover at scripted times: the images on a failed GPU
// fail, and an image bound to a GPU that is down fails one second later. A failed image is
// retried one second after failing, at most four attempts in all; after that it is lost
// (failed_images).
//
// Every second each GPU's node agent publishes its live figures (memory used, health); the
// placement engine sees only those and the controller's own bookkeeping (slots in use, the
// reservations of images placed whose memory is not yet in the published figures, and, for
// production, the speed each GPU showed on the images that finished on it).
//
// # Strategies
//
//   - gpu0: every image on the first GPU (a backend that ignores the other GPUs).
//   - seed-round-robin: a single-host balancer: at job arrival, sort the healthy GPUs by published
//     load and deal image i to GPU i mod n. Images are bound at once; a GPU runs its slots'
//     worth and queues the rest.
//   - count-spread: what a count-based device plugin with time-slicing gives: each image is
//     bound at arrival to the healthy GPU with the fewest images bound, blind to memory and
//     speed.
//   - least-loaded: sdfleet's controller as it was before it learned speeds: the real placement
//     engine, policy LeastLoaded, ranking by memory alone. Images are placed only when the engine finds a GPU with room; the others wait
//     in the controller and are placed as slots free up. After every event that can open room
//     the controller asks the engine for as many pending images as there are free slots, job
//     by job, with the rest of its queue as Request.Backlog.
//   - production: sdfleet's controller as it runs: the same, with each GPU's speed learned by
//     controllers/throughput from the durations of the images that finished on it (as the
//     controller reads them from each pod's result) and the images in flight on each GPU (as
//     its ledger records them), so the engine picks the earliest expected finish and may keep
//     an image for a busy fast GPU rather than start it on a slow free one. Jobs share the GPU
//     slots fairly (controllers/fairshare: max-min between namespaces, then jobs, the oldest
//     first when slots are fewer than jobs). The learner, the conversion into engine figures,
//     the fair shares and the engine are the controller's own code.
//
// Retries of the baselines go through the same rule as a new image; sdfleet's retries avoid
// the GPUs where the image already failed.
//
// # Figures
//
// makespan_s is when the last image finished (jobs arrive from time 0); lower_bound_s is the
// larger of total work / total effective speed and the longest single image on the fastest
// GPU (a GPU whose background memory leaves no room for one image has no effective speed);
// ratio is makespan / lower bound; p95_latency_s is the 95th percentile of image finish minus
// job arrival; max_job_start_wait_s is the longest any job waited from its arrival to its first
// image's start (in two-tenants, the small job's wait); utilization is the GPUs' busy time over
// GPUs x makespan. The lower bound ignores that images are indivisible, so a scenario like 4
// images on 3 GPUs has ratio 1.5 for any schedule.
package main
