//go:build race

package radsec_test

// memFactor scales memory bounds: the race detector's shadow memory and
// per-goroutine state multiply a connection's footprint about sevenfold.
const memFactor = 10
