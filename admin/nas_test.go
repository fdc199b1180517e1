package admin_test

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"

	"hardbound/admin"
	"hardbound/enroll/ca/catest"
	"hardbound/radius/radsec"
	"hardbound/store"
	"hardbound/store/policy"
)

// TestIssueNAS: POST /api/v1/nas signs the CSR under the NAS profile,
// records the binding (device nas:<name>, profile nas) and answers the
// chain and the CA bundle; bad names and CSRs are 400 and audited; without
// an issuer the endpoint answers 501.
func TestIssueNAS(t *testing.T) {
	t.Parallel()
	var st store.Store
	e, _ := newEnv(t, func(d *admin.Deps) {
		c := catest.New(t, filepath.Join(t.TempDir(), "nasca"))
		st = d.Store.(store.Store)
		d.NAS = &radsec.Issuer{CA: c, Store: st}
	})
	code, body := e.call(t, http.MethodPost, "/api/v1/nas", token, fmt.Sprintf(`{"name":"wlc-1","dns":["wlc-1.example.org"],"csr":%q}`, csrBase64(t)))
	if code != http.StatusCreated {
		t.Fatalf("%d %s", code, body)
	}
	var out admin.NASResponse
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatal(err)
	}
	blk, rest := pem.Decode([]byte(out.Certificate))
	if blk == nil || len(rest) == 0 || out.CABundle == "" || out.Serial == "" {
		t.Fatalf("answer %+v", out)
	}
	b, err := st.GetCertBySerial(e.ctx, out.Serial)
	if err != nil || b.DeviceID != radsec.DeviceID("wlc-1") || b.Profile != policy.NASProfile {
		t.Fatalf("binding %+v: %v", b, err)
	}
	for _, tt := range []struct{ name, body string }{
		{"bad name", fmt.Sprintf(`{"name":"a/b","csr":%q}`, csrBase64(t))},
		{"bad csr", `{"name":"wlc-2","csr":"AAAA"}`},
		{"unknown field", `{"name":"wlc-2","pem":"x"}`},
	} {
		before := refusals(t, e, "nas.issue")
		if code, body := e.call(t, http.MethodPost, "/api/v1/nas", token, tt.body); code != http.StatusBadRequest {
			t.Fatalf("%s: %d %s", tt.name, code, body)
		}
		if refusals(t, e, "nas.issue") != before+1 {
			t.Fatalf("%s: refusal not audited", tt.name)
		}
	}
	plain, _ := newEnv(t, nil)
	if code, _ := plain.call(t, http.MethodPost, "/api/v1/nas", token, `{"name":"x","csr":""}`); code != http.StatusNotImplemented {
		t.Fatalf("without an issuer: %d", code)
	}
}
