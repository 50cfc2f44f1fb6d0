// Package memorymodel estimates the GPU memory one image of a model needs, so that the
// controller's per-image reservation fits SDXL as well as SD 1.x. It learns each model's peak
// memory per pixel from the results of finished images, keyed by where the model is stored,
// and falls back to a default for the model's family (when a result has named it, or the
// model's path does) before it has seen an image of the model.
package memorymodel
