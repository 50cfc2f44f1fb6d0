//go:build !linux

package cpu

// populate does nothing where madvise(MADV_POPULATE_READ) does not exist:
// the pages fault in as they are packed.
func (b *Backend) populate([]byte) {}
