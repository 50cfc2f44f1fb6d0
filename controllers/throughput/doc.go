// Package throughput learns how fast each GPU generates images and turns that, with the work
// in flight on each GPU, into the figures the placement engine ranks GPUs by: images per
// second and queued work (placement.GPU.ImagesPerSecond and QueuedWork). The controller and
// hack/placement-sim use it the same way, so the simulator's production figures are the
// product's.
//
// # Speed
//
// A GPU's speed is its seconds per megapixel-step: the time one image of one megapixel takes
// per sampler step when it has the GPU to itself. Each finished image gives a sample,
//
//	sample = duration / mean concurrency / (megapixels x steps) x (1 - foreign share)
//
// where the mean concurrency is how many sdfleet images shared the GPU, on average, while it
// ran, and the foreign share is the part of the GPU that work sdfleet did not place was taking
// (its NVML utilisation the last time no sdfleet image ran there). Samples are folded into an
// exponentially weighted average. A GPU without samples takes the median of the measured GPUs
// of the same product, else the median of every measured GPU; with no measurement at all every
// GPU takes the same nominal figure, so that placement ranks by work in flight alone. When GPUs
// are ranked, a measured GPU whose figure is within a factor 1.5 of the median of its product's
// measured GPUs counts as that median: GPUs of one product differ by measurement noise, which
// must not send every image to one of two equal GPUs; a GPU further off (throttled, faulty)
// keeps its own figure.
//
// # Expected finish
//
// For a request whose images are W megapixel-steps each, a GPU whose speed is s seconds per
// megapixel-step and whose foreign share is f gets
//
//	images per second = (1 - f) / (s x W)
//	queued work       = sum over its images in flight of their remaining megapixel-steps / W
//
// A running image's remaining work is its work less what it has done, judged from how long it
// has run at the GPU's speed shared with the other running images, and at least 5% of it (an
// image that overran its estimate is still running); an image not yet running counts whole.
package throughput
