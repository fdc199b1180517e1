package admin_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"hardbound/admin"
	"hardbound/store"
	"hardbound/store/policy"
)

func withInventory() func(*admin.Deps) {
	return func(d *admin.Deps) {
		mins, _ := policy.ParseMinimums(map[string]string{"ios": "17.4"}, 0)
		d.Inventory = &admin.Inventory{
			Store:        d.Store.(store.Store),
			KnownProfile: func(p string) bool { return p == "corp" || p == "default" },
			Minimums: func(p string) policy.Minimums {
				if p == "corp" {
					return mins
				}
				return policy.Minimums{}
			},
		}
	}
}

func (e *env) callType(t *testing.T, method, path, ctype, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", ctype)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestInventoryEndpoints(t *testing.T) {
	t.Parallel()
	e, _ := newEnv(t, withInventory())

	// device add: created, then unchanged, then updated.
	code, body := e.call(t, "POST", "/api/v1/devices", token, `{"platform":"macOS","serial":"C02ADD","profile":"corp","owner":"alice"}`)
	if code != http.StatusCreated || !strings.Contains(body, `"id": "C02ADD"`) || !strings.Contains(body, `"source": "admin"`) {
		t.Fatalf("add: %d %s", code, body)
	}
	if code, body = e.call(t, "POST", "/api/v1/devices", token, `{"platform":"macos","serial":"C02ADD","profile":"corp"}`); code != http.StatusOK || !strings.Contains(body, `"unchanged": 1`) {
		t.Fatalf("re-add: %d %s", code, body)
	}
	if code, body = e.call(t, "POST", "/api/v1/devices", token, `{"platform":"macos","serial":"C02ADD","profile":"default"}`); code != http.StatusOK || !strings.Contains(body, `"profile"`) {
		t.Fatalf("update: %d %s", code, body)
	}
	for _, tc := range []struct{ body, want string }{
		{`{"platform":"beos","serial":"X"}`, "platform"},
		{`{"platform":"ios","serial":"Y","profile":"vip"}`, "not configured"},
		{`{"platform":"android","serial":"C02ADD"}`, "attests with apple"},
		{`{"platform":"ios"}`, "needs an id"},
		{`{"platform":"ios","serial":"Z","colour":"red"}`, "unknown field"},
	} {
		code, body := e.call(t, "POST", "/api/v1/devices", token, tc.body)
		if code != http.StatusBadRequest || !strings.Contains(body, tc.want) {
			t.Errorf("add %s: %d %s, want 400 %q", tc.body, code, body, tc.want)
		}
	}
	evs, _ := e.st.TailAudit(e.ctx, 1)
	if len(evs) != 1 || evs[0].Action != "inventory.add" || evs[0].Result != "error" || evs[0].Actor != "admin:ops" {
		t.Errorf("refusal audit: %+v", evs)
	}

	// import: dry run writes nothing, then the real one; a bad row is
	// reported with its line and the others apply.
	csv := "platform,serial,profile,owner\nios,F2LIMP1,corp,bob\nandroid,R58IMP2,,\nbeos,BAD3,,\n"
	code, body = e.callType(t, "POST", "/api/v1/inventory/import?dry_run=true", "text/csv", csv)
	var rep admin.InventoryReport
	if err := json.Unmarshal([]byte(body), &rep); err != nil || code != 200 || !rep.DryRun || rep.Added != 2 || rep.Failed != 1 || rep.Errors[0].Line != 4 {
		t.Fatalf("dry run: %d %s", code, body)
	}
	if _, err := e.st.GetDevice(e.ctx, "F2LIMP1"); err == nil {
		t.Fatal("dry run wrote")
	}
	code, body = e.callType(t, "POST", "/api/v1/inventory/import", "text/csv", csv)
	if err := json.Unmarshal([]byte(body), &rep); err != nil || code != 200 || rep.DryRun || rep.Added != 2 {
		t.Fatalf("import: %d %s", code, body)
	}
	if d, err := e.st.GetDevice(e.ctx, "F2LIMP1"); err != nil || d.Profile != "corp" || d.Owner != "bob" || d.Platform != "ios" {
		t.Fatalf("imported %+v %v", d, err)
	}
	if evs, _ := e.st.TailAudit(e.ctx, 1); evs[0].Action != "inventory.import" || !strings.Contains(evs[0].Reason, "2 added") {
		t.Errorf("import audit %+v", evs[0])
	}
	code, body = e.callType(t, "POST", "/api/v1/inventory/import", "application/json", `{"devices":[{"platform":"linux","id":"srv-1"}]}`)
	if code != 200 || !strings.Contains(body, `"added": 1`) {
		t.Fatalf("json import: %d %s", code, body)
	}
	if code, body = e.callType(t, "POST", "/api/v1/inventory/import", "text/csv", "colour\nred\n"); code != 400 || !strings.Contains(body, "not one of") {
		t.Errorf("bad import: %d %s", code, body)
	}

	// The bound test device's attestation, shown against its profile.
	code, body = e.call(t, "GET", "/api/v1/devices/dev-1/attestations", token, "")
	if code != 200 || !strings.Contains(body, `"meets_minimums": true`) {
		t.Errorf("attestations: %d %s", code, body)
	}
	if code, _ = e.call(t, "GET", "/api/v1/devices/nope/attestations", token, ""); code != 404 {
		t.Errorf("attestations of unknown: %d", code)
	}
}

func TestInventoryEndpointsWithoutInventory(t *testing.T) {
	t.Parallel()
	e, _ := newEnv(t, nil)
	if code, _ := e.call(t, "POST", "/api/v1/devices", token, `{"platform":"ios","serial":"X"}`); code != http.StatusNotImplemented {
		t.Errorf("add without inventory: %d", code)
	}
}
