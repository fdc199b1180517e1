//go:build !race

package radsec_test

// memFactor scales memory bounds (see race_on_test.go).
const memFactor = 1
