//go:build race

package e2e

// raceEnabled builds the server with the race detector when the tests run
// with it, so a data race in the server fails the run too.
const raceEnabled = true
