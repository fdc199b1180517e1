package inventory_test

import (
	"errors"
	"strings"
	"testing"

	"hardbound/store/inventory"
)

// TestParseNamedPicksTheFormat: the format given wins, else the file's
// name, else its first byte.
func TestParseNamedPicksTheFormat(t *testing.T) {
	t.Parallel()
	const csv = "serial,platform\nS1,windows\n"
	const js = `[{"serial":"S1","platform":"windows"}]`
	for _, tc := range []struct {
		name, body string
		format     inventory.Format
		wantErr    bool
	}{
		{"devices.csv", csv, "", false},
		{"devices.json", js, "", false},
		{"-", js, "", false},
		{"-", csv, "", false},
		{"devices.txt", csv, inventory.FormatCSV, false},
		{"devices.csv", js, inventory.FormatJSON, false},
		{"devices.json", csv, "", true},
		{"-", csv, "xml", true},
	} {
		rows, err := inventory.ParseNamed(strings.NewReader(tc.body), tc.name, tc.format)
		if tc.wantErr {
			if !errors.Is(err, inventory.ErrParse) {
				t.Errorf("%s as %q: %v, want ErrParse", tc.name, tc.format, err)
			}
			continue
		}
		if err != nil || len(rows) != 1 || rows[0].Record.Serial != "S1" {
			t.Errorf("%s as %q: %+v: %v", tc.name, tc.format, rows, err)
		}
	}
}
