package posture

import (
	"testing"
	"time"
)

// A full change clock forgets and raises its floor: what it can no longer
// answer is "changed", never "unchanged".
func TestChangeClockOverflowRaisesTheFloor(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	c := newChangeClock(2, t0)
	c.mark("a", t0.Add(1*time.Second))
	c.mark("b", t0.Add(2*time.Second))
	if c.since("z", t0.Add(time.Second)) || !c.since("a", t0.Add(time.Second)) {
		t.Fatal("before overflow: wrong answers")
	}
	c.mark("c", t0.Add(3*time.Second)) // full: forget a and b, floor = 3s
	for _, id := range []string{"a", "b", "z"} {
		if !c.since(id, t0.Add(2*time.Second)) {
			t.Errorf("%s: a time before the new floor answered unchanged", id)
		}
	}
	if c.since("a", t0.Add(4*time.Second)) {
		t.Error("a time after the floor with no change answered changed")
	}
	if !c.since("c", t0.Add(3*time.Second)) {
		t.Error("the change that overflowed the clock was lost")
	}
	c.mark("", t0.Add(5*time.Second)) // a reset
	if !c.since("c", t0.Add(4*time.Second)) || c.since("c", t0.Add(6*time.Second)) {
		t.Error("a reset did not raise the floor")
	}
}
