package safetensors

import (
	"encoding/binary"
	"fmt"
	"os"
	"sort"
	"unsafe"
)

// File is an open, validated safetensors file. Its tensors' bytes alias a
// read-only memory mapping that stays valid until Close.
type File struct {
	path   string
	data   []byte // whole file
	body   []byte // data section
	header *Header
	unmap  func() error
	closed bool
}

// Open maps path into memory and validates its header.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fileErr(path, "not a regular file")
	}
	data, unmap, err := mapFile(f, st.Size())
	if err != nil {
		return nil, fileErr(path, "memory-mapping failed: %v", err)
	}
	sf, err := newFile(path, data)
	if err != nil {
		_ = unmap()
		return nil, err
	}
	sf.unmap = unmap
	return sf, nil
}

// FromBytes validates an in-memory file. name is used in errors. The
// returned File aliases data.
func FromBytes(name string, data []byte) (*File, error) {
	return newFile(name, data)
}

func newFile(name string, data []byte) (*File, error) {
	size := int64(len(data))
	if size < 8 {
		return nil, fileErr(name, "file is %d bytes, shorter than the 8-byte header length", size)
	}
	n := binary.LittleEndian.Uint64(data[:8])
	if n > MaxHeaderSize {
		return nil, fileErr(name, "header length %d exceeds the %d-byte limit", n, MaxHeaderSize)
	}
	if int64(n) > size-8 {
		return nil, fileErr(name, "header length %d runs past the end of the %d-byte file (truncated?)", n, size)
	}
	h, err := ParseHeader(name, data[8:8+n], size-8-int64(n))
	if err != nil {
		return nil, err
	}
	return &File{path: name, data: data, body: data[8+n:], header: h}, nil
}

// Close releases the mapping. Tensor bytes obtained from the file must not be
// used afterwards.
func (f *File) Close() error {
	f.data, f.body, f.closed = nil, nil, true
	if f.unmap == nil {
		return nil
	}
	u := f.unmap
	f.unmap = nil
	if err := u(); err != nil {
		return fileErr(f.path, "unmapping failed: %v", err)
	}
	return nil
}

// DropResidentPages takes the file's pages out of the process's resident memory once their
// contents have been converted elsewhere (weights packed by a backend). The mapping stays
// valid: a later read of a tensor faults its pages in again.
func (f *File) DropResidentPages() error {
	if f.closed {
		return fileErr(f.path, "file is closed")
	}
	if err := dropPages(f.data); err != nil {
		return fileErr(f.path, "dropping resident pages failed: %v", err)
	}
	return nil
}

// DropPagesOf takes the whole pages under b out of resident memory when b lies inside this
// file's mapping (a tensor's bytes, once a backend has converted them), and does nothing
// otherwise: only file-backed pages may be dropped, never memory of the Go heap.
func (f *File) DropPagesOf(b []byte) error {
	if f.closed || len(b) == 0 || len(f.data) == 0 {
		return nil
	}
	base := uintptr(unsafe.Pointer(unsafe.SliceData(f.data)))
	start := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	if start < base || start+uintptr(len(b)) > base+uintptr(len(f.data)) {
		return nil
	}
	page := uintptr(os.Getpagesize())
	lo := (start - base + page - 1) / page * page
	hi := (start - base + uintptr(len(b))) / page * page
	if hi <= lo {
		return nil
	}
	if err := dropPages(f.data[lo:hi]); err != nil {
		return fileErr(f.path, "dropping resident pages failed: %v", err)
	}
	return nil
}

// Path is the file's path as given to Open.
func (f *File) Path() string { return f.path }

// Header returns the validated header.
func (f *File) Header() *Header { return f.header }

// Metadata returns the optional "__metadata__" map (nil when absent).
func (f *File) Metadata() map[string]string { return f.header.Metadata }

// Names lists the tensor names in sorted order.
func (f *File) Names() []string {
	names := make([]string, 0, len(f.header.Tensors))
	for _, t := range f.header.Tensors {
		names = append(names, t.Name)
	}
	sort.Strings(names)
	return names
}

// Len is the number of tensors.
func (f *File) Len() int { return len(f.header.Tensors) }

// Tensor returns a view of the named tensor; nothing once the file is
// closed.
func (f *File) Tensor(name string) (Tensor, bool) {
	info, ok := f.header.Lookup(name)
	if !ok || f.closed {
		return Tensor{}, false
	}
	return Tensor{File: f.path, Name: name, DType: info.DType, Shape: info.Shape, Data: f.body[info.Begin:info.End:info.End]}, true
}

// MustHave returns the named tensor or an error naming the file and tensor.
func (f *File) MustHave(name string) (Tensor, error) {
	t, ok := f.Tensor(name)
	if !ok {
		return Tensor{}, tensorErr(f.path, name, "not in file")
	}
	return t, nil
}
