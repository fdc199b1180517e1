package eaptls

// growStack runs once at the start of each handshake coroutine, while its
// stack is shallow. A new goroutine starts with a few KiB of stack and
// crypto/tls's handshake needs more, so without this the runtime grows it
// (allocate, copy, adjust every frame) two or three times in the middle of
// the handshake, when the stack is deepest: 3% of a resumed TLS 1.3
// authentication's server CPU (BENCHMARKS.md, issue 15). Asking for the
// room up front costs one growth of an almost empty stack.
//
//go:noinline
func growStack() {
	var room [handshakeStack]byte
	touch(room[:])
}

// handshakeStack is the stack a server handshake is given at once.
const handshakeStack = 16 << 10

//go:noinline
func touch(b []byte) { b[len(b)-1] = 0 }
