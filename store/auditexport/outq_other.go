//go:build !linux

package auditexport

import "syscall"

// outq is unknown outside Linux: ConfirmAfter alone decides.
func outq(syscall.Conn) (int, bool) { return 0, false }
