package radius

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// pending reports whether another datagram is already queued on the socket
// (SIOCINQ: the size of the next one, 0 when the queue is empty). When it
// cannot tell it says yes, which keeps the hand-off to a worker.
func pending(rc syscall.RawConn) bool {
	queued := 1
	if err := rc.Control(func(fd uintptr) {
		n, err := unix.IoctlGetInt(int(fd), unix.SIOCINQ)
		if err == nil {
			queued = n
		}
	}); err != nil {
		return true
	}
	return queued > 0
}
