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
