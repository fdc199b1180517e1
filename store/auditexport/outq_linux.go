package auditexport

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// outq returns the bytes of a TCP socket's send queue that the peer has not
// acknowledged yet (SIOCOUTQ, tcp(7)). Zero means the receiver's TCP has
// every byte sent so far.
func outq(c syscall.Conn) (int, bool) {
	if c == nil {
		return 0, false
	}
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, false
	}
	var n int
	var ierr error
	if err := rc.Control(func(fd uintptr) { n, ierr = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ) }); err != nil || ierr != nil {
		return 0, false
	}
	return n, true
}
