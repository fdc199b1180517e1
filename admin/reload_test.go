package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"hardbound/admin"
)

// fakeReloader answers as the node does: a report, or a refusal that
// wraps admin.ErrConfigRefused; it records the actor it was called for.
type fakeReloader struct {
	err    error
	actors []string
}

func (f *fakeReloader) Reload(_ context.Context, actor string) (admin.ReloadReport, error) {
	f.actors = append(f.actors, actor)
	if f.err != nil {
		return admin.ReloadReport{}, f.err
	}
	return admin.ReloadReport{Path: "/etc/hardbound.yaml", Applied: []string{"profiles[1].min_os.ios"}, RestartRequired: []string{"radius.auth_addr"}}, nil
}

func TestReloadEndpoint(t *testing.T) {
	t.Parallel()
	ok := &fakeReloader{}
	refused := &fakeReloader{err: fmt.Errorf("%w: /etc/hardbound.yaml: profiles[1].min_os: bad version", admin.ErrConfigRefused)}
	tests := []struct {
		name     string
		reloader *fakeReloader
		tok      string
		want     int
		body     string
	}{
		{"ok", ok, token, http.StatusOK, `"restart_required": [`},
		{"refused", refused, token, http.StatusUnprocessableEntity, "/etc/hardbound.yaml: profiles[1].min_os"},
		{"no_token", ok, "", http.StatusUnauthorized, "unauthorized"},
		{"not_wired", nil, token, http.StatusNotImplemented, "cannot reload"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := newEnv(t, func(d *admin.Deps) {
				if tc.reloader != nil {
					d.Reload = tc.reloader
				}
			})
			code, body := e.call(t, "POST", "/api/v1/config/reload", tc.tok, "")
			if code != tc.want || !strings.Contains(body, tc.body) {
				t.Fatalf("HTTP %d %s, want %d with %q", code, body, tc.want, tc.body)
			}
			if code == http.StatusOK {
				var rep admin.ReloadReport
				if err := json.Unmarshal([]byte(body), &rep); err != nil || rep.Path == "" || len(rep.Applied) != 1 {
					t.Fatalf("report %s: %v", body, err)
				}
			}
		})
	}
	if len(ok.actors) != 1 || ok.actors[0] != "admin:ops" {
		t.Errorf("reloads ran for %v, want once for admin:ops (the 401 must not reach it)", ok.actors)
	}
}
