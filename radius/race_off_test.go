//go:build !race

package radius

// memFactor: see race_on_test.go.
const memFactor = 1
