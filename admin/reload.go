package admin

import (
	"context"
	"errors"
	"net/http"
)

// Reloader re-reads the running server's configuration file (the node):
// it validates the file as a start does and, on success, applies what can
// change at run time. It audits the outcome itself (action config.reload,
// actor as given), as SIGHUP's reloads are audited.
type Reloader interface {
	Reload(ctx context.Context, actor string) (ReloadReport, error)
}

// ErrConfigRefused is wrapped by a Reloader's error for a configuration
// file that does not load or validate: the running configuration stays.
var ErrConfigRefused = errors.New("configuration refused")

// ReloadReport is POST /api/v1/config/reload's answer: the file, the keys
// whose new values now apply, and the changed keys that take effect only
// after a restart (they keep their running values until then).
type ReloadReport struct {
	Path            string   `json:"path"`
	Applied         []string `json:"applied"`
	RestartRequired []string `json:"restart_required"`
	// ReviewingSessions says the live sessions are being judged again
	// under the new profiles in the background; those the new profiles
	// no longer admit alike are disconnected (docs/admin.md).
	ReviewingSessions bool `json:"reviewing_sessions,omitempty"`
}

// reloadConfig is POST /api/v1/config/reload (scope admin). A refused
// file is a 422 naming the file and the first problem.
func (s *Server) reloadConfig(w http.ResponseWriter, r *http.Request) {
	if s.deps.Reload == nil {
		writeErr(w, http.StatusNotImplemented, "this server cannot reload its configuration")
		return
	}
	rep, err := s.deps.Reload.Reload(r.Context(), actorOf(r.Context()))
	switch {
	case errors.Is(err, ErrConfigRefused):
		writeErr(w, http.StatusUnprocessableEntity, err.Error())
	case err != nil:
		s.fail(w, r, err)
	default:
		writeJSON(w, http.StatusOK, rep)
	}
}
