package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"hardbound/admin"
	tokens "hardbound/admin/token"
	"hardbound/posture"
	"hardbound/radius"
	"hardbound/store/badger/badgertest"
)

type fakeTicketKeys struct {
	rot   radius.KeyRotation
	err   error
	calls int
}

func (f *fakeTicketKeys) RotateTicketKeys(context.Context) (radius.KeyRotation, error) {
	f.calls++
	return f.rot, f.err
}

// TestRotateTicketKeys: POST /api/v1/resumption/rotate-keys replaces the
// ticket keys and audits it (never the keys, only local or the shared
// version); a node without resumption or RADIUS answers 409, a failure
// 500, both audited as refusals.
func TestRotateTicketKeys(t *testing.T) {
	t.Parallel()
	const path = "/api/v1/resumption/rotate-keys"
	tests := []struct {
		name       string
		keys       *fakeTicketKeys
		wantCode   int
		wantResult string
		wantReason string
		want       admin.TicketKeysResponse
	}{
		{"local", &fakeTicketKeys{}, http.StatusOK, "ok", "local", admin.TicketKeysResponse{Rotated: true}},
		{"shared", &fakeTicketKeys{rot: radius.KeyRotation{Shared: true, Version: 7}}, http.StatusOK, "ok", "shared version 7",
			admin.TicketKeysResponse{Rotated: true, Shared: true, Version: 7}},
		{"resumption_off", &fakeTicketKeys{err: radius.ErrNoResumption}, http.StatusConflict, "error", "resumption_off", admin.TicketKeysResponse{}},
		{"no_radius", nil, http.StatusConflict, "error", "resumption_off", admin.TicketKeysResponse{}},
		{"store_down", &fakeTicketKeys{err: errors.New("store unreachable")}, http.StatusInternalServerError, "error", "internal", admin.TicketKeysResponse{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := newEnv(t, func(d *admin.Deps) {
				if tc.keys != nil {
					d.TicketKeys = tc.keys
				}
			})
			code, body := e.call(t, http.MethodPost, path, token, "")
			if code != tc.wantCode {
				t.Fatalf("HTTP %d %s, want %d", code, body, tc.wantCode)
			}
			if code == http.StatusOK {
				var got admin.TicketKeysResponse
				if err := json.Unmarshal([]byte(body), &got); err != nil || got != tc.want {
					t.Fatalf("answer %s (%v), want %+v", body, err, tc.want)
				}
			}
			evs, err := e.st.TailAudit(e.ctx, 10)
			if err != nil {
				t.Fatal(err)
			}
			last := evs[len(evs)-1]
			if last.Action != "resumption.rotate_keys" || last.Actor != "admin:ops" || last.Result != tc.wantResult || last.Reason != tc.wantReason {
				t.Fatalf("audit %+v, want %s/%s", last, tc.wantResult, tc.wantReason)
			}
		})
	}
}

// A read-scope token may not rotate the keys: 403, and nothing rotated.
func TestRotateTicketKeysNeedsAdminScope(t *testing.T) {
	t.Parallel()
	st := badgertest.Memory(t)
	svc, err := posture.New(st, nil)
	if err != nil {
		t.Fatal(err)
	}
	keys := &fakeTicketKeys{}
	a, err := admin.New(admin.Deps{Store: st, Standing: svc, TicketKeys: keys},
		[]admin.Token{{Name: "viewer", SHA256: admin.HashToken("read-token"), Scope: tokens.Read}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/v1/resumption/rotate-keys", nil)
	req.Header.Set("Authorization", "Bearer read-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || keys.calls != 0 {
		t.Fatalf("read token: HTTP %d, %d rotations; want 403 and none", resp.StatusCode, keys.calls)
	}
}
