//go:build unix

package safetensors

import (
	"os"
	"syscall"
)

// mapFile maps the file read-only and private: tensor views must never be
// written to, and a write would fault rather than corrupt the checkpoint.
func mapFile(f *os.File, size int64) ([]byte, func() error, error) {
	if size == 0 {
		return []byte{}, func() error { return nil }, nil
	}
	data, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_PRIVATE)
	if err != nil {
		return nil, nil, err
	}
	return data, func() error { return syscall.Munmap(data) }, nil
}

// dropPages takes the mapping's resident pages out of the process: they are file-backed and
// unmodified, so a later read faults them in again from the file (or the page cache).
func dropPages(data []byte) error {
	if len(data) == 0 {
		return nil
	}
	return syscall.Madvise(data, syscall.MADV_DONTNEED)
}
