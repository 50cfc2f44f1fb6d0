package backend

import (
	"slices"

	"github.com/sdfleet/sdfleet/inference/tensor"
)

// Scope is the working set of one evaluation (a UNet step, a VAE
// decode): the activations allocated through it are released together by
// Release, so a failed pass leaks nothing, and Free releases one early as
// soon as its last reader has been called, which keeps the peak down.
// With a backend that pools released memory, the next evaluation's
// Allocs reuse the same buffers.
type Scope struct {
	b    Backend
	owns []Tensor
}

// NewScope returns an empty scope allocating through b.
func NewScope(b Backend) *Scope { return &Scope{b: b} }

// Backend is the backend the scope allocates through.
func (s *Scope) Backend() Backend { return s.b }

// Alloc allocates through the backend and remembers the tensor.
func (s *Scope) Alloc(shape ...int) (Tensor, error) {
	t, err := s.b.Alloc(shape...)
	if err != nil {
		return nil, err
	}
	s.owns = append(s.owns, t)
	return t, nil
}

// Upload allocates a tensor of the given shape and writes data into it.
func (s *Scope) Upload(data []float32, shape ...int) (Tensor, error) {
	t, err := s.Alloc(shape...)
	if err != nil {
		return nil, err
	}
	if err := s.b.Write(t, data); err != nil {
		return nil, err
	}
	return t, nil
}

// Free releases the given tensors now if the scope allocated them and
// they are not yet released; others (the caller's inputs, views, nil) are
// left alone.
func (s *Scope) Free(ts ...Tensor) {
	for _, t := range ts {
		if i := s.index(t); i >= 0 {
			s.owns = slices.Delete(s.owns, i, i+1)
			s.b.Release(t)
		}
	}
}

// Keep stops tracking t, which then outlives the scope: a pass's result.
func (s *Scope) Keep(t Tensor) {
	if i := s.index(t); i >= 0 {
		s.owns = slices.Delete(s.owns, i, i+1)
	}
}

// index finds t among the tracked tensors, newest first since passes
// mostly free what they allocated last.
func (s *Scope) index(t Tensor) int {
	if t == nil {
		return -1
	}
	for i := len(s.owns) - 1; i >= 0; i-- {
		if s.owns[i] == t {
			return i
		}
	}
	return -1
}

// Release releases every tensor the scope allocated, newest first, and
// leaves the scope empty and reusable.
func (s *Scope) Release() {
	for i := len(s.owns) - 1; i >= 0; i-- {
		s.b.Release(s.owns[i])
		s.owns[i] = nil
	}
	s.owns = s.owns[:0]
}

// ToHost reads all of t into a new host tensor of the same shape; the
// host waits for the operations t depends on. It is for the edges of a
// pass (latents back to the sampler, an image out) and for tests.
func ToHost(b Backend, t Tensor) (*tensor.Tensor, error) {
	out, err := tensor.New(t.Dims()...)
	if err != nil {
		return nil, err
	}
	if err := b.Read(out.Data, t); err != nil {
		return nil, err
	}
	return out, nil
}

// Len is the number of elements of t.
func Len(t Tensor) int {
	n, _ := tensor.NumElements(t.Dims())
	return n
}
