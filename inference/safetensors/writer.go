package safetensors

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
)

// Spec declares one tensor to be written.
type Spec struct {
	Name  string
	DType DType
	Shape []int64
}

// ByteSize is the number of data bytes the tensor occupies.
func (s Spec) ByteSize() int64 {
	n := s.DType.Size()
	for _, d := range s.Shape {
		n *= d
	}
	return n
}

// Writer streams a safetensors file: the header is written up front from the
// declared specs, then each tensor's bytes in declaration order, so a large
// file never has to be held in memory.
type Writer struct {
	w     io.Writer
	specs []Spec
	next  int
}

type headerEntry struct {
	DType       DType   `json:"dtype"`
	Shape       []int64 `json:"shape"`
	DataOffsets []int64 `json:"data_offsets"`
}

// NewWriter validates the specs and writes the header to w. The header is
// padded with spaces to a multiple of 8 bytes so that the data section, and
// every F32 tensor in a file laid out by a Writer, stays 4-byte aligned.
func NewWriter(w io.Writer, specs []Spec, metadata map[string]string) (*Writer, error) {
	hdr := make(map[string]any, len(specs)+1)
	var off int64
	for _, s := range specs {
		if !s.DType.Valid() {
			return nil, fmt.Errorf("safetensors writer: tensor %q: unknown dtype %q", s.Name, s.DType)
		}
		if s.Name == metadataKey {
			return nil, fmt.Errorf("safetensors writer: tensor name %q is reserved", s.Name)
		}
		if _, dup := hdr[s.Name]; dup {
			return nil, fmt.Errorf("safetensors writer: tensor %q declared twice", s.Name)
		}
		for _, d := range s.Shape {
			if d < 0 {
				return nil, fmt.Errorf("safetensors writer: tensor %q: negative dimension in shape %v", s.Name, s.Shape)
			}
		}
		shape := s.Shape
		if shape == nil {
			shape = []int64{}
		}
		size := s.ByteSize()
		hdr[s.Name] = headerEntry{DType: s.DType, Shape: shape, DataOffsets: []int64{off, off + size}}
		off += size
	}
	if len(metadata) > 0 {
		hdr[metadataKey] = metadata
	}
	js, err := json.Marshal(hdr)
	if err != nil {
		return nil, fmt.Errorf("safetensors writer: encoding header: %w", err)
	}
	for len(js)%8 != 0 {
		js = append(js, ' ')
	}
	var lenBuf [8]byte
	putUint64LE(lenBuf[:], uint64(len(js)))
	if _, err := w.Write(lenBuf[:]); err != nil {
		return nil, fmt.Errorf("safetensors writer: %w", err)
	}
	if _, err := w.Write(js); err != nil {
		return nil, fmt.Errorf("safetensors writer: %w", err)
	}
	return &Writer{w: w, specs: specs}, nil
}

// WriteTensor writes the bytes of the next declared tensor, which must be
// the one named.
func (w *Writer) WriteTensor(name string, data []byte) error {
	if w.next >= len(w.specs) {
		return fmt.Errorf("safetensors writer: tensor %q: all %d declared tensors already written", name, len(w.specs))
	}
	s := w.specs[w.next]
	if s.Name != name {
		return fmt.Errorf("safetensors writer: tensor %q written out of order, want %q next", name, s.Name)
	}
	if int64(len(data)) != s.ByteSize() {
		return fmt.Errorf("safetensors writer: tensor %q: got %d bytes, %s%v needs %d", name, len(data), s.DType, s.Shape, s.ByteSize())
	}
	if _, err := w.w.Write(data); err != nil {
		return fmt.Errorf("safetensors writer: tensor %q: %w", name, err)
	}
	w.next++
	return nil
}

// Finish checks that every declared tensor was written.
func (w *Writer) Finish() error {
	if w.next != len(w.specs) {
		return fmt.Errorf("safetensors writer: only %d of %d declared tensors written, %q is next", w.next, len(w.specs), w.specs[w.next].Name)
	}
	return nil
}

// TensorData is a spec with its bytes, for writing small files in one call.
type TensorData struct {
	Spec
	Data []byte
}

// Encode writes a complete file holding tensors, in the given order, to w.
func Encode(w io.Writer, tensors []TensorData, metadata map[string]string) error {
	specs := make([]Spec, len(tensors))
	for i, t := range tensors {
		specs[i] = t.Spec
	}
	sw, err := NewWriter(w, specs, metadata)
	if err != nil {
		return err
	}
	for _, t := range tensors {
		if err := sw.WriteTensor(t.Name, t.Data); err != nil {
			return err
		}
	}
	return sw.Finish()
}

// WriteFile writes tensors to path through a buffer.
func WriteFile(path string, tensors []TensorData, metadata map[string]string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("safetensors writer: %w", err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	if err := Encode(bw, tensors, metadata); err != nil {
		f.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("safetensors writer: %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("safetensors writer: %s: %w", path, err)
	}
	return nil
}

func putUint64LE(b []byte, v uint64) {
	for i := range 8 {
		b[i] = byte(v >> (8 * i))
	}
}

// Float32Bytes encodes values as little-endian bytes of the given float
// dtype (F32, F16 or BF16).
func Float32Bytes(dt DType, values []float32) ([]byte, error) {
	switch dt {
	case F32:
		out := make([]byte, 4*len(values))
		for i, v := range values {
			bits := math.Float32bits(v)
			out[4*i], out[4*i+1], out[4*i+2], out[4*i+3] = byte(bits), byte(bits>>8), byte(bits>>16), byte(bits>>24)
		}
		return out, nil
	case F16, BF16:
		conv := Float32ToHalf
		if dt == BF16 {
			conv = Float32ToBFloat16
		}
		out := make([]byte, 2*len(values))
		for i, v := range values {
			h := conv(v)
			out[2*i], out[2*i+1] = byte(h), byte(h>>8)
		}
		return out, nil
	}
	return nil, fmt.Errorf("safetensors: cannot encode float32 values as %s (want F32, F16 or BF16)", dt)
}
