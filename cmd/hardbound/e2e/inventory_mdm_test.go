package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"hardbound/cmd/hardbound/internal/node"
	"hardbound/enroll/acme"
	"hardbound/enroll/acme/acmetest"
	"hardbound/enroll/attest/attesttest"
	"hardbound/posture/mdm/jamf"
	"hardbound/store/config"
)

// fakeJamfPro is Jamf Pro's API as the inventory sync uses it: an OAuth
// client-credentials token (form fields) and /api/v1/computers-inventory
// paginated {totalCount, results}.
type fakeJamfPro struct {
	srv *httptest.Server
	mu  sync.Mutex
	// computers: serial -> (managed, groups)
	managed map[string]bool
	groups  map[string][]string
	order   []string
}

func newFakeJamfPro(t *testing.T) *fakeJamfPro {
	t.Helper()
	f := &fakeJamfPro{managed: map[string]bool{}, groups: map[string][]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/oauth/token", func(w http.ResponseWriter, r *http.Request) {
		if r.ParseForm() != nil || r.PostForm.Get("client_id") != "jamf-inv-client" || r.PostForm.Get("client_secret") != "jamf-inv-secret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"access_token":"jamf-e2e-inventory-token","token_type":"Bearer","expires_in":1199}`))
	})
	mux.HandleFunc("GET /api/v1/computers-inventory", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer jamf-e2e-inventory-token" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		page, _ := strconv.Atoi(r.URL.Query().Get("page"))
		size, _ := strconv.Atoi(r.URL.Query().Get("page-size"))
		f.mu.Lock()
		defer f.mu.Unlock()
		var all []map[string]any
		for i, serial := range f.order {
			var gm []map[string]any
			for j, g := range f.groups[serial] {
				gm = append(gm, map[string]any{"groupId": strconv.Itoa(j + 1), "groupName": g, "smartGroup": true})
			}
			all = append(all, map[string]any{
				"id": strconv.Itoa(i + 1), "udid": "UDID-" + serial,
				"general":          map[string]any{"name": serial, "remoteManagement": map[string]any{"managed": f.managed[serial]}},
				"hardware":         map[string]any{"serialNumber": serial},
				"userAndLocation":  map[string]any{"email": "owner-" + serial + "@example.com"},
				"groupMemberships": gm,
			})
		}
		lo, hi := min(page*size, len(all)), min((page+1)*size, len(all))
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"totalCount": len(all), "results": append([]map[string]any{}, all[lo:hi]...)})
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeJamfPro) set(serial string, managed bool, groups ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.managed[serial]; !ok {
		f.order = append(f.order, serial)
	}
	f.managed[serial], f.groups[serial] = managed, groups
}

// TestE2EJamfInventoryEnrollmentsFollow: a Mac Jamf Pro manages appears in
// the inventory at start, in the profile its group maps to, and enrolls
// there; it leaves the group (a webhook hints the sync) and its record
// moves to the default profile, so the old profile's URL is refused; it is
// unenrolled from Jamf and enrollment refuses it.
func TestE2EJamfInventoryEnrollmentsFollow(t *testing.T) {
	t.Parallel()
	const serial = "C02JAMFINV01"
	fj := newFakeJamfPro(t)
	fj.set(serial, true, "All Managed", "Engineering")
	in := startE2E(t, func(cfg *node.Config) {
		cfg.Profiles = []node.ProfileConfig{{Name: "default"}, {Name: "eng"}}
		cfg.MDM.Jamf = jamf.FileConfig{Username: e2eJamfUser, PasswordFile: writeSecret(t, "jamf.password", e2eJamfPassword),
			NoncompliantGroups: []string{"Noncompliant - FileVault off"},
			URL:                fj.srv.URL, APIClientID: "jamf-inv-client", APIClientSecretFile: writeSecret(t, "jamf.secret", "jamf-inv-secret"),
			Inventory: jamf.InventoryFileConfig{Enabled: true, MinGap: config.Duration(time.Second),
				DefaultProfile: "default", GroupProfiles: []jamf.GroupProfile{{Group: "Engineering", Profile: "eng"}}}}
	})
	ctx := e2eContext(t)
	hc := in.httpsClient(t)
	eventually(t, 30*time.Second, "the Mac in the inventory", func() bool {
		d, err := in.st.GetDevice(ctx, serial)
		return err == nil && d.Profile == "eng" && d.Source == "jamf" && d.Owner == "owner-"+serial+"@example.com"
	})
	auth, err := attesttest.Load(filepath.Join(in.cfg.DataDir, "dev-attest"))
	if err != nil {
		t.Fatal(err)
	}
	enroll := func(dir string) ([]*x509.Certificate, error) {
		ak, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		cl, err := acmetest.New(ctx, hc, "https://"+in.Addr("enroll-https")+dir, ak, jose.ES256)
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.Register(ctx); err != nil {
			t.Fatal(err)
		}
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
		return cl.Enroll(ctx, acme.TypePermanentIdentifier, serial, func(keyAuth string) ([]byte, error) {
			return auth.AppleWith(key.Public(), serial, "UDID-"+serial, keyAuth, attesttest.AppleOptions{MacOS: true})
		}, csr)
	}
	chain, err := enroll("/acme/directory")
	if err != nil {
		t.Fatalf("enrollment of the Jamf Mac: %v", err)
	}
	if rec, err := in.st.GetCert(ctx, chain[0]); err != nil || rec.Profile != "eng" {
		t.Fatalf("binding %+v %v, want profile eng", rec, err)
	}

	// It leaves the Engineering group; Jamf's webhook hints the sync.
	fj.set(serial, true, "All Managed")
	hint := func() {
		if status, body := postJamf(t, in, hc, e2eJamfUser, e2eJamfPassword, jamfGroupChange(7, []int{}, []int{})); status == http.StatusUnauthorized {
			t.Fatalf("jamf webhook: HTTP %d %s", status, body)
		}
	}
	hint()
	eventually(t, 30*time.Second, "the record in the default profile", func() bool {
		d, err := in.st.GetDevice(ctx, serial)
		return err == nil && d.Profile == "default"
	})
	var p *acmetest.Problem
	if _, err := enroll("/acme/profile/eng/directory"); !errors.As(err, &p) || p.Type != acme.ProblemUnauthorized {
		t.Fatalf("enrollment under the old profile's URL: %v, want unauthorized", err)
	}
	if chain, err = enroll("/acme/directory"); err != nil {
		t.Fatalf("enrollment in the new profile: %v", err)
	}
	if rec, _ := in.st.GetCert(ctx, chain[0]); rec.Profile != "default" {
		t.Fatalf("binding profile %q, want default", rec.Profile)
	}

	// Unenrolled from Jamf: no longer managed, so no longer inventory.
	fj.set(serial, false)
	hint()
	eventually(t, 30*time.Second, "the record removed from the inventory", func() bool {
		d, err := in.st.GetDevice(ctx, serial)
		return err == nil && !d.RemovedAt.IsZero()
	})
	if _, err := enroll("/acme/directory"); !errors.As(err, &p) || p.Type != acme.ProblemRejectedIdentifier {
		t.Fatalf("enrollment after unenrollment from Jamf: %v, want rejectedIdentifier", err)
	}
	in.waitAuditEvent(t, "inventory.remove", serial, "ok", "no longer listed by jamf")
}
