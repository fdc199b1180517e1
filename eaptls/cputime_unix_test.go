//go:build unix

package eaptls

import (
	"syscall"
	"time"
)

// processCPU is user+system CPU time of the whole process; benchmarks report
// it per op because wall time is meaningless on a loaded machine.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
