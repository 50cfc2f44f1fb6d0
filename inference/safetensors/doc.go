// Package safetensors reads and writes the safetensors file format used by
// Stable Diffusion checkpoints.
//
// A file is an 8-byte little-endian header length N, N bytes of JSON that map
// tensor names to their dtype, shape and byte range ("data_offsets", relative
// to the end of the header), an optional "__metadata__" string map, and then
// the tensor bytes. Open memory-maps the file read-only so that multi-gigabyte
// checkpoints cost no copy until a tensor is converted; every header field is
// validated before any tensor is handed out, and every error names the file
// and, where there is one, the tensor.
//
// Views are offered for F32, F16 and BF16 (Tensor.Float32, Tensor.Float32View);
// other dtypes are parsed so that a header can be checked, but converting them
// fails with an error that says which dtype was found.
//
// Writer produces files in the same format; it is used by the test-model
// generator and by tests.
package safetensors
