//go:build !unix

package media

import (
	"fmt"
	"io"
	"os"
)

// mapFile reads the first n bytes of f: where mmap is not available the
// upload is held in memory once.
func mapFile(f *os.File, n int64) ([]byte, func(), error) {
	b := make([]byte, n)
	if _, err := f.ReadAt(b, 0); err != nil && err != io.EOF {
		return nil, nil, fmt.Errorf("read upload: %w", err)
	}
	return b, func() {}, nil
}
