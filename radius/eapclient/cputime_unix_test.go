//go:build unix

package eapclient

import (
	"syscall"
	"time"
)

// processCPU is the user+system CPU time of the whole process (client and
// server both run here); 0 if unavailable.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
