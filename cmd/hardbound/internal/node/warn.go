package node

import "log/slog"

// warnProduction logs what a production start should not keep from the
// defaults. The server names are in the RADIUS and enrollment server
// certificates that supplicants and enrollment clients check: "localhost"
// works on the trial box only.
func warnProduction(cfg *Config, log *slog.Logger) {
	if cfg.Dev {
		return
	}
	for _, s := range []struct {
		field string
		names []string
		on    bool
	}{
		{"radius.server_names", cfg.RADIUS.ServerNames, cfg.RADIUS.AuthAddr != ""},
		{"enroll.server_names", cfg.Enroll.ServerNames, cfg.Enroll.HTTPSAddr != ""},
	} {
		if s.on && onlyLocalhost(s.names) {
			log.Warn("WARNING: "+s.field+" is still localhost: devices elsewhere will not match the server certificate; set the names they connect to",
				"field", s.field)
		}
	}
}

func onlyLocalhost(names []string) bool {
	for _, n := range names {
		if n != "localhost" && n != "127.0.0.1" && n != "::1" {
			return false
		}
	}
	return true
}
