//go:build unix

package media

import (
	"fmt"
	"os"
	"syscall"
)

// mapFile maps the first n bytes of f read-only. The pages belong to the
// file, not to the heap: the kernel reads them in as the decoder walks
// the upload and may drop them again, so a large upload costs no heap.
func mapFile(f *os.File, n int64) ([]byte, func(), error) {
	if n == 0 {
		return nil, func() {}, nil
	}
	b, err := syscall.Mmap(int(f.Fd()), 0, int(n), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, nil, fmt.Errorf("map upload: %w", err)
	}
	_ = syscall.Madvise(b, syscall.MADV_SEQUENTIAL)
	return b, func() { _ = syscall.Munmap(b) }, nil
}
