package inventory_test

import (
	"errors"
	"strings"
	"testing"

	"hardbound/store"
	"hardbound/store/badger"
	"hardbound/store/inventory"
)

func openStore(t *testing.T) store.Store {
	t.Helper()
	s, err := badger.Open(t.Context(), "", badger.WithInMemory())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		format inventory.Format
		in     string
		want   []inventory.Record
		err    bool
	}{
		{"csv", inventory.FormatCSV,
			"\xef\xbb\xbfplatform,serial,profile,owner,alias:jamf_computer_id\nmacOS,C02ABC,corp,alice@example.com,17\n,,,,\nAndroid, R58N ,byod,,\n",
			[]inventory.Record{
				{Platform: "macOS", Serial: "C02ABC", Profile: "corp", Owner: "alice@example.com", Aliases: map[string]string{"jamf_computer_id": "17"}},
				{Platform: "Android", Serial: "R58N", Profile: "byod"},
			}, false},
		{"csv/any-order", inventory.FormatCSV, "ek_sha256,id,platform\n" + strings.Repeat("ab", 32) + ",pc-1,windows\n",
			[]inventory.Record{{ID: "pc-1", Platform: "windows", EKSHA256: strings.Repeat("ab", 32)}}, false},
		{"csv/unknown-column", inventory.FormatCSV, "platform,colour\nios,red\n", nil, true},
		{"csv/no-platform", inventory.FormatCSV, "serial\nX\n", nil, true},
		{"csv/duplicate-column", inventory.FormatCSV, "platform,serial,serial\nios,a,b\n", nil, true},
		{"csv/ragged", inventory.FormatCSV, "platform,serial\nios\n", nil, true},
		{"csv/empty", inventory.FormatCSV, "", nil, true},
		{"json/array", inventory.FormatJSON, `[{"platform":"ios","serial":"F2L","profile":"corp"}]`,
			[]inventory.Record{{Platform: "ios", Serial: "F2L", Profile: "corp"}}, false},
		{"json/object", inventory.FormatJSON, `{"devices":[{"platform":"linux","id":"srv-1"}]}`,
			[]inventory.Record{{Platform: "linux", ID: "srv-1"}}, false},
		{"json/unknown-field", inventory.FormatJSON, `[{"platform":"ios","colour":"red"}]`, nil, true},
		{"json/trailing", inventory.FormatJSON, `[] []`, nil, true},
		{"json/no-devices", inventory.FormatJSON, `{}`, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rows, err := inventory.Parse(strings.NewReader(tc.in), tc.format)
			if tc.err {
				if !errors.Is(err, inventory.ErrParse) {
					t.Fatalf("Parse = %v, want ErrParse", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != len(tc.want) {
				t.Fatalf("rows = %+v, want %+v", rows, tc.want)
			}
			for i, r := range rows {
				w := tc.want[i]
				if r.Record.ID != w.ID || r.Record.Platform != w.Platform || r.Record.Serial != w.Serial || r.Record.Profile != w.Profile ||
					r.Record.Owner != w.Owner || r.Record.EKSHA256 != w.EKSHA256 || len(r.Record.Aliases) != len(w.Aliases) {
					t.Errorf("row %d = %+v, want %+v", i, r.Record, w)
				}
				for k, v := range w.Aliases {
					if r.Record.Aliases[k] != v {
						t.Errorf("row %d alias %s = %q, want %q", i, k, r.Record.Aliases[k], v)
					}
				}
			}
		})
	}
}

func TestNormalize(t *testing.T) {
	t.Parallel()
	known := func(p string) bool { return p == "corp" || p == "default" }
	tests := []struct {
		name   string
		r      inventory.Record
		wantID string
		err    bool
	}{
		{"id-from-serial", inventory.Record{Platform: "macOS", Serial: "C02", UDID: "U"}, "C02", false},
		{"id-from-ek", inventory.Record{Platform: "Windows", EKSHA256: strings.Repeat("AB", 32)}, strings.Repeat("ab", 32), false},
		{"explicit-id", inventory.Record{ID: "mac-1", Platform: "mac", Serial: "C02"}, "mac-1", false},
		{"no-identity", inventory.Record{Platform: "ios"}, "", true},
		{"bad-platform", inventory.Record{Platform: "beos", Serial: "X"}, "", true},
		{"bad-ek", inventory.Record{Platform: "linux", EKSHA256: "abc"}, "", true},
		{"unknown-profile", inventory.Record{Platform: "ios", Serial: "X", Profile: "vip"}, "", true},
		{"control-char", inventory.Record{Platform: "ios", Serial: "X\x00"}, "", true},
		{"space-in-id", inventory.Record{Platform: "ios", Serial: "X Y"}, "", true},
		{"too-long", inventory.Record{Platform: "ios", Serial: strings.Repeat("x", 300)}, "", true},
		{"named-alias-twice", inventory.Record{Platform: "ios", Serial: "X", Aliases: map[string]string{"serial": "Y"}}, "", true},
	}
	for _, tc := range tests {
		r := tc.r
		err := r.Normalize(known)
		if tc.err {
			if !errors.Is(err, inventory.ErrInvalid) {
				t.Errorf("%s: Normalize = %v, want ErrInvalid", tc.name, err)
			}
			continue
		}
		if err != nil || r.ID != tc.wantID {
			t.Errorf("%s: Normalize = %v, id %q; want %q", tc.name, err, r.ID, tc.wantID)
		}
	}
}

func rows(recs ...inventory.Record) []inventory.Row {
	out := make([]inventory.Row, len(recs))
	for i, r := range recs {
		out[i] = inventory.Row{Line: i + 1, Record: r}
	}
	return out
}

func TestApplyAddUpdateDryRun(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := openStore(t)
	o := inventory.Options{Source: inventory.SourceImport, Actor: "admin:ops"}

	dry := o
	dry.DryRun = true
	rep, err := inventory.Apply(ctx, st, rows(inventory.Record{Platform: "macos", Serial: "C02A", Profile: "corp"}), dry)
	if err != nil || rep.Added != 1 || !rep.DryRun {
		t.Fatalf("dry run: %+v, %v", rep, err)
	}
	if _, err := st.GetDevice(ctx, "C02A"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("dry run wrote the device: %v", err)
	}

	rep, err = inventory.Apply(ctx, st, rows(
		inventory.Record{Platform: "macos", Serial: "C02A", Profile: "corp", Owner: "alice"},
		inventory.Record{Platform: "android", Serial: "R58N"},
		inventory.Record{Platform: "beos", Serial: "BAD"},
	), o)
	if err != nil || rep.Added != 2 || rep.Failed != 1 || len(rep.Errors) != 1 || rep.Errors[0].Line != 3 {
		t.Fatalf("apply: %+v, %v", rep, err)
	}
	d, err := st.GetDevice(ctx, "C02A")
	if err != nil || d.Platform != "macos" || d.Profile != "corp" || d.Owner != "alice" || d.Source != "import" || d.Aliases["serial"] != "C02A" {
		t.Fatalf("stored %+v, %v", d, err)
	}
	if d, err := st.FindDeviceByAlias(ctx, "serial", "R58N"); err != nil || d.ID != "R58N" {
		t.Fatalf("alias lookup: %+v, %v", d, err)
	}

	// The same file again changes nothing; a new profile and a UDID update
	// the record found by its serial.
	rep, err = inventory.Apply(ctx, st, rows(inventory.Record{Platform: "macos", Serial: "C02A", Profile: "corp", Owner: "alice"}), o)
	if err != nil || rep.Unchanged != 1 || rep.Updated != 0 {
		t.Fatalf("reapply: %+v, %v", rep, err)
	}
	rep, err = inventory.Apply(ctx, st, rows(inventory.Record{ID: "other-id", Platform: "macos", Serial: "C02A", UDID: "U-1", Profile: "eng"}), o)
	if err != nil || rep.Updated != 1 || len(rep.Changes) != 1 || strings.Join(rep.Changes[0].Fields, ",") != "aliases.udid,profile" {
		t.Fatalf("update: %+v, %v", rep, err)
	}
	if d, _ := st.GetDevice(ctx, "C02A"); d.Profile != "eng" || d.Aliases["udid"] != "U-1" {
		t.Fatalf("update not stored: %+v", d)
	}

	// A platform of another attestation format is a conflict, reported.
	rep, err = inventory.Apply(ctx, st, rows(inventory.Record{Platform: "android", Serial: "C02A"}), o)
	if err != nil || rep.Failed != 1 || !strings.Contains(rep.Errors[0].Error, "attests with apple") {
		t.Fatalf("platform conflict: %+v, %v", rep, err)
	}
	// Identities naming two devices conflict.
	rep, err = inventory.Apply(ctx, st, rows(inventory.Record{Platform: "android", Serial: "R58N", UDID: "U-1"}), o)
	if err != nil || rep.Failed != 1 || !strings.Contains(rep.Errors[0].Error, "belongs to device") {
		t.Fatalf("identity conflict: %+v, %v", rep, err)
	}

	// Every write was audited.
	evs, err := st.TailAudit(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range evs {
		actions = append(actions, e.Action+":"+e.Subject+":"+e.Actor)
	}
	if got := strings.Join(actions, " "); got != "inventory.add:C02A:admin:ops inventory.add:R58N:admin:ops inventory.update:C02A:admin:ops" {
		t.Fatalf("audit = %s", got)
	}
}

func TestApplyCompleteListingRemovesAndReadmits(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := openStore(t)
	jamf := inventory.Options{Source: "jamf", Complete: true}
	if _, err := inventory.Apply(ctx, st, rows(inventory.Record{Platform: "macos", Serial: "A"}, inventory.Record{Platform: "ios", Serial: "B"}), jamf); err != nil {
		t.Fatal(err)
	}
	// A device of another source is never removed by this one's listing.
	if _, err := inventory.Apply(ctx, st, rows(inventory.Record{Platform: "linux", ID: "srv"}), inventory.Options{Source: "admin"}); err != nil {
		t.Fatal(err)
	}
	rep, err := inventory.Apply(ctx, st, rows(inventory.Record{Platform: "macos", Serial: "A"}), jamf)
	if err != nil || rep.Removed != 1 || rep.Unchanged != 1 {
		t.Fatalf("prune: %+v, %v", rep, err)
	}
	for id, in := range map[string]bool{"A": true, "B": false, "srv": true} {
		d, err := st.GetDevice(ctx, id)
		if err != nil || d.InInventory() != in {
			t.Errorf("%s: in inventory %v, want %v (%v)", id, d.InInventory(), in, err)
		}
	}
	// An invalid entry still counts as listed.
	rep, err = inventory.Apply(ctx, st, rows(inventory.Record{Platform: "beos", Serial: "A"}, inventory.Record{Platform: "ios", Serial: "B"}), jamf)
	if err != nil || rep.Removed != 0 || rep.Failed != 1 || rep.Updated != 1 {
		t.Fatalf("readmit: %+v, %v", rep, err)
	}
	if d, _ := st.GetDevice(ctx, "B"); !d.InInventory() {
		t.Fatalf("B not readmitted: %+v", d)
	}
	if d, _ := st.GetDevice(ctx, "A"); !d.InInventory() {
		t.Fatalf("A removed though listed (invalid entry): %+v", d)
	}
}
