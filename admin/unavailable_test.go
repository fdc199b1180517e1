package admin_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"hardbound/admin"
	"hardbound/enroll/ca/catest"
	"hardbound/enroll/devbind"
	"hardbound/posture"
	"hardbound/store"
	"hardbound/store/badger/badgertest"
	"hardbound/store/storetest"
)

// While the store's database is away, admin writes are refused with 503,
// a Retry-After and a JSON error, not a 500: nothing was changed and the
// same request may succeed later.
func TestWritesWhileStoreUnavailable(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	faulty := &storetest.Faulty{Store: badgertest.Memory(t)}
	svc, err := posture.New(faulty, nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := devbind.Bind(ctx, catest.New(t, t.TempDir()), faulty, time.Now(), devbind.Request{DeviceID: "dev-1"})
	if err != nil {
		t.Fatal(err)
	}
	a, err := admin.New(admin.Deps{Store: faulty, Standing: svc}, []admin.Token{{Name: "ops", SHA256: admin.HashToken(token)}})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{ctx: ctx, st: faulty, svc: svc, srv: httptest.NewServer(a)}
	t.Cleanup(e.srv.Close)
	faulty.Fail = func(m string) error { return fmt.Errorf("test: %s: %w", m, store.ErrUnavailable) }
	for _, tc := range []struct{ method, path, body string }{
		{"POST", "/api/v1/devices/dev-1/quarantine", ""},
		{"POST", "/api/v1/devices/dev-1/posture", `{"state":"noncompliant"}`},
		{"POST", "/api/v1/certs/" + d.Binding.Serial + "/revoke", `{"reason":"keyCompromise"}`},
		{"POST", "/api/v1/devices/dev-1/revoke", ""},
		{"GET", "/api/v1/devices/dev-1", ""},
	} {
		req, err := http.NewRequest(tc.method, e.srv.URL+tc.path, strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var eb admin.ErrorBody
		derr := json.NewDecoder(resp.Body).Decode(&eb)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != admin.RetryAfterUnavailable ||
			derr != nil || !strings.Contains(eb.Error, "unavailable") {
			t.Errorf("%s %s: HTTP %d Retry-After %q body %+v (%v); want 503, Retry-After, a JSON error",
				tc.method, tc.path, resp.StatusCode, resp.Header.Get("Retry-After"), eb, derr)
		}
	}
	faulty.Fail = nil
	if code, body := e.call(t, "POST", "/api/v1/devices/dev-1/quarantine", token, ""); code != 200 {
		t.Fatalf("quarantine once the store answers: HTTP %d %s", code, body)
	}
}
