package eaptls

// Metrics receives one event per finished server session. version is
// "1.2", "1.3" or "unknown" (handshake never agreed on one), so labels stay
// bounded. Implementations must be safe for concurrent use.
type Metrics interface {
	Handshake(version string, ok bool)
	// ChainCache reports one client chain looked up in the cache of
	// verified chains.
	ChainCache(hit bool)
}

// NopMetrics discards everything; it is the default.
type NopMetrics struct{}

// Handshake implements Metrics.
func (NopMetrics) Handshake(string, bool) {}

// ChainCache implements Metrics.
func (NopMetrics) ChainCache(bool) {}
