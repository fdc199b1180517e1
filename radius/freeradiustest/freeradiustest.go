// Package freeradiustest runs a FreeRADIUS server for the tests that use it
// as a peer (interop, proxy, home-server and benchmark tests). The caller
// writes a complete configuration into a directory; nothing is read from
// /etc/freeradius. It imports nothing of hardbound, so package radius's own
// tests can use it too.
package freeradiustest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// readyLine is what FreeRADIUS logs once every listener is open.
const readyLine = "Ready to process requests"

// Run starts bin (the freeradius binary) in the foreground on the
// configuration in dir, whose radiusd.conf logs to dir/radius.log, and
// returns once it is ready to process requests (at most 30 s). It is
// stopped with SIGTERM at test end; on failure its output and log are
// logged.
func Run(t testing.TB, bin, dir string) {
	t.Helper()
	cmd := exec.Command(bin, "-f", "-d", dir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	logPath := filepath.Join(dir, "radius.log")
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			log, _ := os.ReadFile(logPath)
			t.Logf("freeradius output:\n%s\nradius.log:\n%s", tail(out.String(), 40), tail(string(log), 40))
		}
	})
	deadline := time.After(30 * time.Second)
	for {
		if log, _ := os.ReadFile(logPath); bytes.Contains(log, []byte(readyLine)) {
			return
		}
		select {
		case err := <-exited:
			exited <- err // for the cleanup
			t.Fatalf("freeradius exited before it was ready: %v", err)
		case <-deadline:
			t.Fatal("freeradius not ready after 30s")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
