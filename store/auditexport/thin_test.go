package auditexport

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"hardbound/store"
)

// TestThinKeepsTheNewestHalfAndSpreadsTheRest: at most n, oldest first,
// the newest n/2 all kept, the older ones spread from the first on.
func TestThinKeepsTheNewestHalfAndSpreadsTheRest(t *testing.T) {
	t.Parallel()
	cps := func(k int) []store.AuditCheckpoint {
		out := make([]store.AuditCheckpoint, k)
		for i := range out {
			out[i].Seq = uint64(i + 1)
		}
		return out
	}
	for _, tc := range []struct{ have, n int }{{5, 10}, {10, 10}, {11, 10}, {1000, 10}, {5001, 2000}} {
		got := Thin(cps(tc.have), tc.n)
		want := min(tc.have, tc.n)
		if len(got) != want {
			t.Fatalf("Thin(%d, %d): %d kept", tc.have, tc.n, len(got))
		}
		for i := 1; i < len(got); i++ {
			if got[i].Seq <= got[i-1].Seq {
				t.Fatalf("Thin(%d, %d): not ascending at %d", tc.have, tc.n, i)
			}
		}
		if got[0].Seq != 1 || got[len(got)-1].Seq != uint64(tc.have) {
			t.Errorf("Thin(%d, %d): from %d to %d", tc.have, tc.n, got[0].Seq, got[len(got)-1].Seq)
		}
		if tc.have > tc.n && got[len(got)-tc.n/2].Seq != uint64(tc.have-tc.n/2+1) {
			t.Errorf("Thin(%d, %d): the newest half is not whole", tc.have, tc.n)
		}
	}
}

func TestReadCheckpointFileNamesTheFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "sink.jsonl")
	b, err := item{cp: &store.AuditCheckpoint{Seq: 7, KeyID: "k"}}.appendJSON(nil, "hb")
	if err != nil {
		t.Fatal(err)
	}
	ev, err := item{ev: &store.AuditEvent{Seq: 7, Action: "x"}}.appendJSON(nil, "hb")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(good, append(append(ev, '\n'), append(b, '\n')...), 0o600); err != nil {
		t.Fatal(err)
	}
	cps, err := ReadCheckpointFile(good)
	if err != nil || len(cps) != 1 || cps[0].Seq != 7 || cps[0].KeyID != "k" {
		t.Fatalf("%+v: %v", cps, err)
	}
	long := filepath.Join(dir, "long.jsonl")
	if err := os.WriteFile(long, []byte(strings.Repeat("x", MaxLine+1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadCheckpointFile(long); err == nil || !strings.HasPrefix(err.Error(), long+": ") {
		t.Errorf("a bad file: %v", err)
	}
	if _, err := ReadCheckpointFile(filepath.Join(dir, "absent")); err == nil {
		t.Error("a missing file read")
	}
	// Events only, or nothing: no checkpoint to verify against.
	eventsOnly := filepath.Join(dir, "events.jsonl")
	if err := os.WriteFile(eventsOnly, append(ev, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	if cps, err := ReadCheckpointFile(eventsOnly); !errors.Is(err, ErrNoCheckpoint) || err.Error() != eventsOnly+" holds no audit checkpoint" || cps != nil {
		t.Errorf("a file of events only: %v %v", cps, err)
	}
}
