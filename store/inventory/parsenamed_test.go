package inventory_test

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
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

// TestParseFileReadsThePathOrStdin: "-" is stdin, named by "-" (so the
// format comes from the content); a missing file is the open's error.
func TestParseFileReadsThePathOrStdin(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	csvFile := filepath.Join(dir, "devices.csv")
	if err := os.WriteFile(csvFile, []byte("serial,platform\nS1,windows\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	stdin := strings.NewReader(`[{"serial":"S2","platform":"linux"}]`)
	for _, tc := range []struct {
		path, serial string
	}{
		{csvFile, "S1"},
		{"-", "S2"},
	} {
		rows, err := inventory.ParseFile(tc.path, stdin, "")
		if err != nil || len(rows) != 1 || rows[0].Record.Serial != tc.serial {
			t.Errorf("%s: %+v: %v", tc.path, rows, err)
		}
	}
	if _, err := inventory.ParseFile(filepath.Join(dir, "absent.csv"), stdin, ""); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing file: %v", err)
	}
}

func TestParseAliases(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		pairs   []string
		want    map[string]string
		wantErr string
	}{
		{"none", nil, nil, ""},
		{"two kinds", []string{"jamf_id=42", "asset=A-1"}, map[string]string{"jamf_id": "42", "asset": "A-1"}, ""},
		{"the later of a kind", []string{"asset=A-1", "asset=A-2"}, map[string]string{"asset": "A-2"}, ""},
		{"a value with =", []string{"note=a=b"}, map[string]string{"note": "a=b"}, ""},
		{"no =", []string{"asset"}, nil, `"asset": want KIND=VALUE`},
		{"no kind", []string{"=1"}, nil, `"=1": want KIND=VALUE`},
		{"no value", []string{"ok=1", "asset="}, nil, `"asset=": want KIND=VALUE`},
	} {
		got, err := inventory.ParseAliases(tc.pairs)
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr || got != nil {
				t.Errorf("%s: %v %v, want %q", tc.name, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !maps.Equal(got, tc.want) || (got == nil) != (tc.want == nil) {
			t.Errorf("%s: %v %v, want %v", tc.name, got, err, tc.want)
		}
	}
}
