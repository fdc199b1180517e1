// Package badgertest opens throwaway Badger stores for tests.
package badgertest

import (
	"context"
	"testing"

	"hardbound/store/badger"
)

// Memory opens an in-memory store that is closed when the test ends.
func Memory(t testing.TB, opts ...badger.Option) *badger.Store {
	t.Helper()
	st, err := badger.Open(context.Background(), "", append([]badger.Option{badger.WithInMemory()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}
