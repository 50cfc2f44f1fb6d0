// Package reservations says how much GPU memory sdfleet holds for its images: each image placed
// on a GPU and not finished (its pod starting or running) reserves the job's memory per image
// there, as the controller's placement counts it. The figure is derived from the jobs' status,
// never stored: the dashboard's memory bar and `kubectl sdfleet top` show it next to the GPU's
// live use.
//
// Only the per-image detail of a job's status counts, which holds every active image of jobs
// with up to 256 of them at once (api/v1alpha1.MaxImageDetails).
package reservations
