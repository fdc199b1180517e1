// Package catest makes a throwaway issuing CA for tests.
package catest

import (
	"testing"

	"hardbound/enroll/ca"
)

// New creates a root and issuing CA in dir (a fresh t.TempDir() when dir is
// empty) and loads it with opts.
func New(t testing.TB, dir string, opts ...ca.Option) *ca.CA {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	if err := ca.Init(ca.InitOptions{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	c, err := ca.Load(dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
