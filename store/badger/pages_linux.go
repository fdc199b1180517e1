//go:build linux

package badger

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// pageReleaseSupported: Linux has /proc/self/maps and MADV_PAGEOUT (5.4+).
const pageReleaseSupported = true

// errRangeGone: the range was unmapped before the advice reached it.
var errRangeGone = errors.New("store/badger: range no longer mapped")

func readSelfMaps() ([]byte, error) {
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return nil, fmt.Errorf("read maps: %w", err)
	}
	return b, nil
}

// pageOut advises MADV_PAGEOUT on [start, start+length): the kernel
// reclaims the range's pages now. For a clean shared file page (a table
// Badger has msync'ed) that drops it from this process's RSS and, if no
// one else maps it, from the page cache; a later read faults it back from
// the file. Dirty file pages are left alone; anonymous pages go to swap, or
// stay if there is none. The advice never changes what a read of the range
// returns, which is why it is safe on a range read from /proc/self/maps
// that Badger may have unmapped, and the kernel reused, meanwhile.
//
// The address goes to the system call as a plain integer: no Go slice or
// pointer is ever built over memory this package does not own.
func pageOut(start, length uintptr) error {
	_, _, errno := unix.Syscall(unix.SYS_MADVISE, start, length, unix.MADV_PAGEOUT)
	switch errno {
	case 0:
		return nil
	case unix.ENOMEM:
		// Part or all of the range is no longer mapped (the kernel still
		// advised whatever part is).
		return errRangeGone
	case unix.EINVAL:
		// A kernel older than 5.4 does not know MADV_PAGEOUT; a locked
		// (VM_LOCKED) or special mapping refuses it.
		return fmt.Errorf("madvise(MADV_PAGEOUT): %w (needs Linux 5.4 or later)", errno)
	default:
		return fmt.Errorf("madvise(MADV_PAGEOUT): %w", errno)
	}
}
