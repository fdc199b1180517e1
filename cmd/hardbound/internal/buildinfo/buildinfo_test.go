package buildinfo

import (
	"runtime"
	"strings"
	"testing"
)

func TestVersionNamesTheBuild(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		version, date string
		prefix, has   string
	}{
		{"v1.2.3", "2026-12-03T09:00:00Z", "v1.2.3", " built 2026-12-03T09:00:00Z "},
		{"v1.2.3", "", "v1.2.3", ""},
		{"", "", "", ""}, // the module's version: "(devel)" in a test binary
	} {
		got := Version(tc.version, tc.date)
		if !strings.HasPrefix(got, tc.prefix) || !strings.Contains(got, tc.has) || !strings.HasSuffix(got, " "+runtime.Version()) {
			t.Errorf("Version(%q, %q) = %q", tc.version, tc.date, got)
		}
		if tc.date == "" && strings.Contains(got, " built ") {
			t.Errorf("Version(%q, %q) = %q names a build date", tc.version, tc.date, got)
		}
	}
}
