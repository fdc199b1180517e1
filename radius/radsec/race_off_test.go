//go:build !race

package radsec

// memFactor scales memory bounds (see race_on_test.go).
const memFactor = 1
