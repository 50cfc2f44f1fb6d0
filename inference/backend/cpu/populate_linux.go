package cpu

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// populateChunk is how much of a weight one worker faults in at a time.
const populateChunk = 4 << 20

// populate faults data's pages in before it is packed, on every worker,
// with one madvise(MADV_POPULATE_READ) per chunk instead of one page fault
// per page: for a memory-mapped checkpoint that is most of the kernel's
// share of loading. Errors (an old kernel, heap memory) only mean the
// pages fault in as they are read.
func (b *Backend) populate(data []byte) {
	page := os.Getpagesize()
	// Whole pages inside data only, so every pointer made stays in it.
	skip := (page - int(uintptr(unsafe.Pointer(unsafe.SliceData(data))))%page) % page
	if len(data) < skip+2*page {
		return
	}
	data = data[skip:]
	chunks := ceilDiv(len(data), populateChunk)
	b.pool.Run(chunks, func(_, c int) {
		region := data[c*populateChunk : min(len(data), (c+1)*populateChunk)]
		_ = unix.Madvise(region, unix.MADV_POPULATE_READ)
	})
}
