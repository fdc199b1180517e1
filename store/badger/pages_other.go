//go:build !linux

package badger

import "errors"

// pageReleaseSupported: only Linux gives a process its mappings
// (/proc/self/maps) and MADV_PAGEOUT; elsewhere releasing is a no-op.
const pageReleaseSupported = false

var errRangeGone = errors.New("store/badger: range no longer mapped")

func readSelfMaps() ([]byte, error) { return nil, errors.ErrUnsupported }

func pageOut(start, length uintptr) error { return errors.ErrUnsupported }
