//go:build race

package radius

// memFactor scales memory bounds checked against RSS: the race detector
// costs 5-10x memory (its shadow memory), so make test (-race) checks the
// bound times 8 and a plain go test the bound itself.
const memFactor = 8
