package inventory_test

import (
	"bytes"
	"errors"
	"testing"

	"hardbound/store/inventory"
)

// FuzzParse: an import file of any content is parsed or refused with
// ErrParse, never a panic; every parsed record is then either normalized
// or refused with ErrInvalid.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"platform,serial,profile\nmacos,C02,corp\n",
		"id,platform,ek_sha256,alias:jamf_computer_id\npc,windows,abababababababababababababababababababababababababababababababab,3\n",
		"\"platform\",\"serial\"\n\"ios\",\"a\"\"b\"\n",
		`[{"platform":"ios","serial":"F2L"}]`,
		`{"devices":[{"platform":"android","serial":"R5","aliases":{"azure_ad_id":"x"}}]}`,
		"", "[", "{}", "platform\n\n\n",
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, b []byte, asJSON bool) {
		format := inventory.FormatCSV
		if asJSON {
			format = inventory.FormatJSON
		}
		rows, err := inventory.Parse(bytes.NewReader(b), format)
		if err != nil {
			if !errors.Is(err, inventory.ErrParse) {
				t.Fatalf("error does not wrap ErrParse: %v", err)
			}
			return
		}
		for _, r := range rows {
			rec := r.Record
			if err := rec.Normalize(nil); err != nil {
				if !errors.Is(err, inventory.ErrInvalid) {
					t.Fatalf("Normalize error does not wrap ErrInvalid: %v", err)
				}
				continue
			}
			if rec.ID == "" || rec.Platform == "" {
				t.Fatalf("normalized record without id or platform: %+v", rec)
			}
		}
	})
}
