// Package buildinfo says which build a hardbound binary is, for `hardbound
// version`, the serve banner and the metrics.
package buildinfo

import "runtime/debug"

// Version is version (set by the linker; the module's version when
// empty), the VCS revision and time the binary was built from (with
// "modified" for uncommitted changes), buildDate when set, and the Go
// version.
func Version(version, buildDate string) string {
	v := version
	bi, ok := debug.ReadBuildInfo()
	if v == "" {
		v = "unknown"
		if ok {
			v = bi.Main.Version
		}
	}
	if !ok {
		return v
	}
	var rev, at, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = ", modified"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev != "" {
		v += " revision " + rev + " (" + at + dirty + ")"
	}
	if buildDate != "" {
		v += " built " + buildDate
	}
	return v + " " + bi.GoVersion
}
