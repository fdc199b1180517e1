package auditexport

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"hardbound/store"
	"hardbound/store/badger"
	"hardbound/store/badger/badgertest"
)

func TestChainExport(t *testing.T) {
	var now time.Time
	base := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	st := badgertest.Memory(t, badger.WithClock(func() time.Time { return now }))
	for i := range 30 { // one event a minute
		now = base.Add(time.Duration(i) * time.Minute)
		if err := st.AppendAudit(t.Context(), &store.AuditEvent{Actor: "system", Action: "test", Subject: "s", Result: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	signer := testSigner(t)
	tail, _ := st.TailAudit(t.Context(), 11)
	cp, err := signer.Sign(20, tail[0].Hash)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.PutAuditCheckpoint(t.Context(), cp); err != nil {
		t.Fatal(err)
	}
	ch := NewChain(st, keysOf(t, signer), "hb1")
	tests := []struct {
		name      string
		o         ExportOptions
		wantFirst uint64
		wantN     int
	}{
		{"all_jsonl", ExportOptions{}, 1, 30},
		{"from_seq", ExportOptions{FromSeq: 18}, 18, 13},
		{"since", ExportOptions{Since: base.Add(24*time.Minute + 30*time.Second)}, 26, 5},
		{"since_before_start", ExportOptions{Since: base.Add(-time.Hour)}, 1, 30},
		{"rfc5424", ExportOptions{FromSeq: 19, Format: FormatRFC5424}, 19, 12},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			var progressed bool
			tt.o.Progress = func(seq, head uint64) { progressed = seq == head && head == 30 }
			n, err := ch.Export(t.Context(), &buf, tt.o)
			if err != nil || n != tt.wantN || !progressed {
				t.Fatalf("Export = %d, %v (progress %v)", n, err, progressed)
			}
			var seqs []uint64
			var cps int
			ReadRecords(&buf, func(e *store.AuditEvent, c *store.AuditCheckpoint) error {
				if e != nil {
					seqs = append(seqs, e.Seq)
				} else {
					cps++
					if c.Seq != 20 || seqs[len(seqs)-1] != 20 {
						t.Errorf("checkpoint of %d after event %d", c.Seq, seqs[len(seqs)-1])
					}
				}
				return nil
			})
			if len(seqs) != tt.wantN || seqs[0] != tt.wantFirst {
				t.Fatalf("exported seqs %v", seqs)
			}
			if wantCP := tt.wantFirst <= 20; (cps == 1) != wantCP {
				t.Fatalf("%d checkpoints exported", cps)
			}
			if tt.o.Format == FormatRFC5424 {
				buf.Reset()
				ch.Export(t.Context(), &buf, ExportOptions{FromSeq: 30, Format: FormatRFC5424})
				if !rfc5424.Match(bytes.TrimSpace(buf.Bytes())) {
					t.Fatalf("not RFC 5424: %s", buf.Bytes())
				}
			}
		})
	}
	if _, err := ch.Export(t.Context(), &bytes.Buffer{}, ExportOptions{Format: "csv"}); !errors.Is(err, ErrBadFormat) {
		t.Fatalf("csv: %v", err)
	}
	rep, err := ch.Verify(t.Context(), true, nil)
	if err != nil || !rep.OK || rep.Events != 30 || rep.AnchorSeq != 20 || rep.FromSeq != 1 {
		t.Fatalf("Verify(full) = %+v, %v", rep, err)
	}
	rep, err = ch.Verify(t.Context(), false, nil)
	if err != nil || !rep.OK || rep.Events != 11 || rep.FromSeq != 20 {
		t.Fatalf("Verify(from checkpoint) = %+v, %v", rep, err)
	}
}
