package safetensors

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
)

// MaxHeaderSize bounds the JSON header. Real checkpoints have headers of a
// few hundred kilobytes; anything near this limit is a corrupt length field.
const MaxHeaderSize = 100 << 20

// metadataKey is the reserved header entry holding free-form string metadata.
const metadataKey = "__metadata__"

// TensorInfo describes one tensor as declared in a header. Begin and End are
// byte offsets relative to the start of the data section.
type TensorInfo struct {
	Name  string
	DType DType
	Shape []int64
	Begin int64
	End   int64
}

// NumElements is the product of the shape (1 for a scalar).
func (t TensorInfo) NumElements() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Header is a parsed and validated header.
type Header struct {
	// Tensors in data order (ascending offsets).
	Tensors  []TensorInfo
	Metadata map[string]string
	byName   map[string]int
}

// Lookup returns the tensor with the given name.
func (h *Header) Lookup(name string) (TensorInfo, bool) {
	i, ok := h.byName[name]
	if !ok {
		return TensorInfo{}, false
	}
	return h.Tensors[i], true
}

type rawTensorInfo struct {
	DType       *string  `json:"dtype"`
	Shape       *[]int64 `json:"shape"`
	DataOffsets *[]int64 `json:"data_offsets"`
}

// ParseHeader parses and validates the JSON header of a file whose data
// section is dataLen bytes long. file is used only to name the file in errors.
// All tensors must together cover the data section exactly, without gaps or
// overlaps, as the reference implementation requires.
func ParseHeader(file string, header []byte, dataLen int64) (*Header, error) {
	if dataLen < 0 {
		return nil, fileErr(file, "negative data length %d", dataLen)
	}
	dec := json.NewDecoder(bytes.NewReader(header))
	tok, err := dec.Token()
	if err != nil {
		return nil, fileErr(file, "header is not valid JSON: %v", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fileErr(file, "header must be a JSON object, found %v", tok)
	}
	h := &Header{byName: map[string]int{}}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fileErr(file, "header is not valid JSON: %v", err)
		}
		name, ok := tok.(string)
		if !ok {
			return nil, fileErr(file, "header key %v is not a string", tok)
		}
		if seen[name] {
			return nil, tensorErr(file, name, "duplicate entry in header")
		}
		seen[name] = true
		if name == metadataKey {
			var meta map[string]string
			if err := dec.Decode(&meta); err != nil {
				return nil, fileErr(file, "%s must map strings to strings: %v", metadataKey, err)
			}
			h.Metadata = meta
			continue
		}
		var raw rawTensorInfo
		if err := dec.Decode(&raw); err != nil {
			return nil, tensorErr(file, name, "entry is not {dtype, shape, data_offsets}: %v", err)
		}
		info, err := checkEntry(file, name, raw, dataLen)
		if err != nil {
			return nil, err
		}
		h.byName[name] = len(h.Tensors)
		h.Tensors = append(h.Tensors, info)
	}
	if _, err := dec.Token(); err != nil { // closing brace
		return nil, fileErr(file, "header is not valid JSON: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fileErr(file, "header has trailing data after the JSON object")
	}
	if err := checkCoverage(file, h, dataLen); err != nil {
		return nil, err
	}
	return h, nil
}

func checkEntry(file, name string, raw rawTensorInfo, dataLen int64) (TensorInfo, error) {
	if raw.DType == nil || raw.Shape == nil || raw.DataOffsets == nil {
		return TensorInfo{}, tensorErr(file, name, "entry needs dtype, shape and data_offsets")
	}
	dt, err := ParseDType(*raw.DType)
	if err != nil {
		return TensorInfo{}, tensorErr(file, name, "%v", err)
	}
	offs := *raw.DataOffsets
	if len(offs) != 2 {
		return TensorInfo{}, tensorErr(file, name, "data_offsets has %d values, want 2", len(offs))
	}
	begin, end := offs[0], offs[1]
	if begin < 0 || end < 0 {
		return TensorInfo{}, tensorErr(file, name, "data_offsets [%d, %d] are negative", begin, end)
	}
	if begin > end {
		return TensorInfo{}, tensorErr(file, name, "data_offsets [%d, %d] are reversed", begin, end)
	}
	if end > dataLen {
		return TensorInfo{}, tensorErr(file, name, "data_offsets [%d, %d] run past the end of the data section (%d bytes)", begin, end, dataLen)
	}
	shape := append([]int64{}, (*raw.Shape)...)
	count := int64(1)
	for _, d := range shape {
		if d < 0 {
			return TensorInfo{}, tensorErr(file, name, "shape %v has a negative dimension", shape)
		}
		if d != 0 && count > math.MaxInt64/d {
			return TensorInfo{}, tensorErr(file, name, "shape %v overflows", shape)
		}
		count *= d
	}
	if count > math.MaxInt64/dt.Size() {
		return TensorInfo{}, tensorErr(file, name, "shape %v overflows", shape)
	}
	if want := count * dt.Size(); end-begin != want {
		return TensorInfo{}, tensorErr(file, name, "holds %d bytes but %s%v needs %d", end-begin, dt, shape, want)
	}
	return TensorInfo{Name: name, DType: dt, Shape: shape, Begin: begin, End: end}, nil
}

// checkCoverage sorts tensors by offset and requires them to tile the data
// section exactly: the first starts at 0, each starts where the previous one
// ended, and the last ends at dataLen.
func checkCoverage(file string, h *Header, dataLen int64) error {
	sort.SliceStable(h.Tensors, func(i, j int) bool {
		a, b := h.Tensors[i], h.Tensors[j]
		if a.Begin != b.Begin {
			return a.Begin < b.Begin
		}
		return a.End < b.End
	})
	var pos int64
	prev := ""
	for i, t := range h.Tensors {
		h.byName[t.Name] = i
		switch {
		case t.Begin < pos:
			return tensorErr(file, t.Name, "data_offsets [%d, %d] overlap tensor %q, which ends at %d", t.Begin, t.End, prev, pos)
		case t.Begin > pos:
			return tensorErr(file, t.Name, "data_offsets [%d, %d] leave bytes %d..%d unused", t.Begin, t.End, pos, t.Begin)
		}
		pos = t.End
		prev = t.Name
	}
	if pos != dataLen {
		return fileErr(file, "tensors cover %d bytes but the data section has %d", pos, dataLen)
	}
	return nil
}

// describe formats a header entry for error messages and debugging.
func (t TensorInfo) String() string {
	return fmt.Sprintf("%s %s%v [%d, %d)", t.Name, t.DType, t.Shape, t.Begin, t.End)
}
