// Package v1alpha1 holds the sdfleet.io/v1alpha1 API: ImageGenerationJob, which asks for a batch
// of Stable Diffusion images, and GPUNode, which the node agent writes to publish the live load
// of every GPU on a node.
//
// Validation lives in the schema (OpenAPI and CEL markers on these types) so that the API server
// rejects bad input before any controller sees it.
//
// +kubebuilder:object:generate=true
// +groupName=sdfleet.io
package v1alpha1
