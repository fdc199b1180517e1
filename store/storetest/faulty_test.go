package storetest_test

import (
	"errors"
	"testing"

	"hardbound/store"
	"hardbound/store/badger"
	"hardbound/store/storetest"
)

func openMem(t *testing.T) store.Store {
	t.Helper()
	s, err := badger.Open(t.Context(), "", badger.WithInMemory())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// A Faulty store that injects nothing must still be a conforming store.
func TestFaultyPassThroughConforms(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store { return &storetest.Faulty{Store: openMem(t)} })
}

func TestFailOnFailsOnlyTheNthCallOfTheMethod(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	f := &storetest.Faulty{Store: openMem(t), Fail: storetest.FailOn("GetDevice", 2, boom)}
	defer f.Close()
	ctx := t.Context()
	if err := f.PutDevice(ctx, &store.Device{ID: "d1"}); err != nil {
		t.Fatalf("PutDevice: %v", err)
	}
	got := make([]error, 3)
	for i := range got {
		_, got[i] = f.GetDevice(ctx, "d1")
	}
	if got[0] != nil || !errors.Is(got[1], boom) || got[2] != nil {
		t.Fatalf("GetDevice errors = %v, want [nil boom nil]", got)
	}
}

// Watch reaches the wrapped store, and an injected failure announces nothing.
func TestFaultyPassesWatchThrough(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	f := &storetest.Faulty{Store: openMem(t), Fail: storetest.FailOn("PutDevice", 2, boom)}
	defer f.Close()
	var got []store.Change
	stop := f.Watch(func(c store.Change) { got = append(got, c) })
	defer stop()
	ctx := t.Context()
	if err := f.PutDevice(ctx, &store.Device{ID: "d1"}); err != nil {
		t.Fatalf("PutDevice: %v", err)
	}
	if err := f.PutDevice(ctx, &store.Device{ID: "d2"}); !errors.Is(err, boom) {
		t.Fatalf("PutDevice = %v, want the injected failure", err)
	}
	if len(got) != 1 || got[0].Kind != store.ChangeDevice || got[0].DeviceID != "d1" {
		t.Fatalf("announced %+v, want the one device change of d1", got)
	}
}
