package auditbudget

import (
	"fmt"
	"testing"
	"time"
)

func TestBudgetWritesTheFirstPerKeyAndCountsTheRest(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	b := New(time.Minute, 3)
	steps := []struct {
		at         time.Duration
		key        string
		write      bool
		suppressed int
	}{
		{0, "a", true, 0},
		{time.Second, "a", false, 0},
		{2 * time.Second, "a", false, 0},
		{3 * time.Second, "b", true, 0},
		{61 * time.Second, "a", true, 2}, // the next window states the count
		{62 * time.Second, "a", false, 0},
	}
	for i, s := range steps {
		w, n := b.Allow(t0.Add(s.at), s.key, "k")
		if w != s.write || n != s.suppressed {
			t.Errorf("step %d (%s at %v): write=%v suppressed=%d, want %v %d", i, s.key, s.at, w, n, s.write, s.suppressed)
		}
	}
	sums := b.Expire(t0.Add(3 * time.Minute))
	if len(sums) != 1 || sums[0].Key != "a" || sums[0].Suppressed != 1 {
		t.Fatalf("Expire = %+v, want one summary of a with 1", sums)
	}
	if sums := b.Expire(t0.Add(4 * time.Minute)); len(sums) != 0 {
		t.Fatalf("second Expire = %+v", sums)
	}
}

func TestBudgetBoundsDistinctKeys(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	b := New(time.Minute, 4)
	written := 0
	for i := range 1000 {
		if w, _ := b.Allow(t0, fmt.Sprint("src-", i), "reject"); w {
			written++
		}
	}
	// Four keys, then one overflow bucket.
	if written != 5 {
		t.Fatalf("1000 distinct sources wrote %d events, want 5", written)
	}
	sums := b.Expire(t0.Add(time.Minute))
	if len(sums) != 1 || !IsOverflow(sums[0].Key) || sums[0].Suppressed != 995 {
		t.Fatalf("Expire = %+v, want the overflow bucket with 995", sums)
	}
}
