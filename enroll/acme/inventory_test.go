package acme_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hardbound/enroll/acme"
	"hardbound/enroll/attest"
	"hardbound/enroll/attest/attesttest"
	"hardbound/enroll/attest/statuslist"
	"hardbound/enroll/ca"
	"hardbound/store"
	"hardbound/store/inventory"
	"hardbound/store/policy"
)

// gatedProfiles: every profile requires inventory, as configuration does
// by default; "strict" also has OS minimums.
func gatedProfiles(t *testing.T) []acme.Profile {
	t.Helper()
	mins, err := policy.ParseMinimums(map[string]string{"ios": "17.4", "macos": "14.3", "android": "14"}, 202509)
	if err != nil {
		t.Fatal(err)
	}
	return []acme.Profile{
		{Name: "corp", Validity: 24 * time.Hour, RequireInventory: true},
		{Name: "guest", Validity: 24 * time.Hour, RequireInventory: true},
		{Name: "strict", Validity: 24 * time.Hour, RequireInventory: true, Minimums: mins},
		{Name: "open", Validity: 24 * time.Hour},
	}
}

// addDevice is what `hardbound device add` does through the admin API.
func addDevice(t *testing.T, e *env, r inventory.Record) {
	t.Helper()
	rep, err := inventory.Apply(t.Context(), e.store, []inventory.Row{{Line: 1, Record: r}}, inventory.Options{Source: inventory.SourceAdmin, Actor: "admin:test"})
	if err != nil || rep.Failed != 0 {
		t.Fatalf("add %+v: %+v, %v", r, rep, err)
	}
}

// enrollVia runs newOrder and the challenge at dirURL with an attestation
// made by mk; it returns the challenge response and, when that is valid,
// the finalized order's certificate.
func enrollVia(t *testing.T, e *env, dirURL, serial string, mk func(keyAuth string, key *ecdsaKey) []byte) (*response, *x509.Certificate) {
	t.Helper()
	c := newTestClient(t, e.srv.Client(), dirURL)
	c.register()
	o := c.newOrder(acme.TypePermanentIdentifier, serial)
	chURL, keyAuth := c.challenge(o)
	dev := p256(t)
	r := c.post(chURL, attPayload(mk(keyAuth, dev)))
	if r.status != http.StatusOK {
		return r, nil
	}
	var ord orderObj
	c.mustPost(o.Finalize, csrFor(t, dev, ""), http.StatusOK, &ord)
	chain := parsePEMChain(t, c.mustPost(ord.Certificate, nil, http.StatusOK, nil).body)
	return r, chain[0]
}

func TestInventoryGate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{profiles: gatedProfiles(t)})
	apple := func(serial string, o attesttest.AppleOptions) func(string, *ecdsaKey) []byte {
		return func(keyAuth string, k *ecdsaKey) []byte {
			b, err := e.auth.AppleWith(k.Public(), serial, "UDID-"+serial, keyAuth, o)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
	android := func(serial string, o attesttest.AndroidOptions) func(string, *ecdsaKey) []byte {
		return func(keyAuth string, k *ecdsaKey) []byte {
			b, err := e.auth.AndroidWith(k, serial, keyAuth, o)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
	dir := func(profile string) string {
		if profile == "" {
			return e.dirURL
		}
		return e.srv.URL + "/acme/profile/" + profile + "/directory"
	}

	t.Run("not_in_inventory_then_added_enrolls_in_its_profile", func(t *testing.T) {
		t.Parallel()
		r, _ := enrollVia(t, e, dir(""), "C02OUTSIDER", apple("C02OUTSIDER", attesttest.AppleOptions{MacOS: true}))
		detail := wantProblem(t, r, http.StatusForbidden, acme.ProblemRejectedIdentifier)
		if !strings.Contains(detail, "not in the inventory") {
			t.Errorf("detail %q", detail)
		}
		var p struct {
			Subproblems []struct {
				Type       string
				Identifier struct{ Value string }
			}
		}
		if err := json.Unmarshal(r.body, &p); err != nil {
			t.Fatal(err)
		}
		if len(p.Subproblems) != 1 || p.Subproblems[0].Type != acme.ProblemRejectedIdentifier || p.Subproblems[0].Identifier.Value != "C02OUTSIDER" {
			t.Errorf("subproblems %+v", p.Subproblems)
		}
		// The subtests share the server: the newest event about this device.
		ev := lastAuditFor(t, e, "C02OUTSIDER")
		if ev.Action != "enroll.acme" || ev.Result != "reject" || ev.Subject != "C02OUTSIDER" || !strings.HasPrefix(ev.Reason, "not_in_inventory: ") || !strings.Contains(ev.Reason, `"C02OUTSIDER"`) {
			t.Errorf("audit event %+v", ev)
		}
		if n := e.metrics.count("acme/apple/not_in_inventory"); n < 1 {
			t.Errorf("not_in_inventory metric = %d", n)
		}
		if _, err := e.store.GetDevice(context.Background(), "C02OUTSIDER"); err == nil {
			t.Error("a refused enrollment created a device")
		}

		addDevice(t, e, inventory.Record{Platform: "macos", Serial: "C02OUTSIDER", Profile: "guest", Owner: "alice"})
		// The default URL: the record's profile is taken.
		r, leaf := enrollVia(t, e, dir(""), "C02OUTSIDER", apple("C02OUTSIDER", attesttest.AppleOptions{MacOS: true}))
		if leaf == nil {
			t.Fatalf("enrollment after device add: %d %s", r.status, r.body)
		}
		b, err := e.store.GetCert(context.Background(), store.HashCert(leaf))
		if err != nil || b.Profile != "guest" || b.DeviceID != "C02OUTSIDER" {
			t.Fatalf("binding %+v, %v", b, err)
		}
		if id, _ := ca.DeviceID(leaf); id != "C02OUTSIDER" {
			t.Errorf("cert device id %q", id)
		}
		d, _ := e.store.GetDevice(context.Background(), "C02OUTSIDER")
		if d.Profile != "guest" || d.Platform != "macos" || d.Owner != "alice" || d.Source != "admin" || d.Aliases["udid"] != "UDID-C02OUTSIDER" {
			t.Errorf("record after issuance %+v", d)
		}
	})

	t.Run("other_profile_url_refused_record_unchanged", func(t *testing.T) {
		t.Parallel()
		addDevice(t, e, inventory.Record{Platform: "ios", Serial: "F2LGUEST", Profile: "guest"})
		r, _ := enrollVia(t, e, dir("corp"), "F2LGUEST", apple("F2LGUEST", attesttest.AppleOptions{}))
		detail := wantProblem(t, r, http.StatusForbidden, acme.ProblemUnauthorized)
		if !strings.Contains(detail, `belongs to profile "guest"`) {
			t.Errorf("detail %q", detail)
		}
		if ev := lastAuditFor(t, e, "F2LGUEST"); !strings.HasPrefix(ev.Reason, "profile_mismatch: ") {
			t.Errorf("audit %+v", ev)
		}
		// Even a profile without the inventory requirement is not adopted.
		r, _ = enrollVia(t, e, dir("open"), "F2LGUEST", apple("F2LGUEST", attesttest.AppleOptions{}))
		wantProblem(t, r, http.StatusForbidden, acme.ProblemUnauthorized)
		d, err := e.store.GetDevice(context.Background(), "F2LGUEST")
		if err != nil || d.Profile != "guest" {
			t.Fatalf("record profile %+v, %v", d, err)
		}
		// Its own profile's URL works.
		if _, leaf := enrollVia(t, e, dir("guest"), "F2LGUEST", apple("F2LGUEST", attesttest.AppleOptions{})); leaf == nil {
			t.Fatal("enrollment at the record's own profile URL refused")
		}
	})

	t.Run("android_naming_an_apple_serial_refused", func(t *testing.T) {
		t.Parallel()
		addDevice(t, e, inventory.Record{Platform: "macos", Serial: "C02MAC", Profile: "corp"})
		r, _ := enrollVia(t, e, dir(""), "C02MAC", android("C02MAC", attesttest.AndroidOptions{}))
		detail := wantProblem(t, r, http.StatusForbidden, acme.ProblemUnauthorized)
		if !strings.Contains(detail, "attests with apple, not android-key") {
			t.Errorf("detail %q", detail)
		}
		if ev := lastAuditFor(t, e, "C02MAC"); !strings.HasPrefix(ev.Reason, "platform_mismatch: ") {
			t.Errorf("audit %+v", ev)
		}
	})

	t.Run("bindings_fix_the_platform_of_a_record_without_one", func(t *testing.T) {
		t.Parallel()
		// A record from before inventory (no platform), under a profile
		// without the requirement, enrolled with Apple evidence.
		if _, leaf := enrollVia(t, e, dir("open"), "SN-LEGACY", apple("SN-LEGACY", attesttest.AppleOptions{})); leaf == nil {
			t.Fatal("open enrollment refused")
		}
		if _, err := e.store.UpdateDevice(context.Background(), "SN-LEGACY", func(d *store.Device) error { d.Platform = ""; return nil }, nil); err != nil {
			t.Fatal(err)
		}
		r, _ := enrollVia(t, e, dir("open"), "SN-LEGACY", android("SN-LEGACY", attesttest.AndroidOptions{}))
		detail := wantProblem(t, r, http.StatusForbidden, acme.ProblemUnauthorized)
		if !strings.Contains(detail, "attested with apple before") {
			t.Errorf("detail %q", detail)
		}
	})

	t.Run("os_minimum_refuses_older_attested_os", func(t *testing.T) {
		t.Parallel()
		addDevice(t, e, inventory.Record{Platform: "ios", Serial: "F2LOLD", Profile: "strict"})
		r, _ := enrollVia(t, e, dir(""), "F2LOLD", apple("F2LOLD", attesttest.AppleOptions{OSVersion: "17.3.1"}))
		detail := wantProblem(t, r, http.StatusForbidden, acme.ProblemUnauthorized)
		if !strings.Contains(detail, "ios 17.3.1 is below min_os 17.4.0") {
			t.Errorf("detail %q", detail)
		}
		if ev := lastAuditFor(t, e, "F2LOLD"); !strings.HasPrefix(ev.Reason, "below_minimum: ") {
			t.Errorf("audit %+v", ev)
		}
		_, leaf := enrollVia(t, e, dir(""), "F2LOLD", apple("F2LOLD", attesttest.AppleOptions{OSVersion: "17.4"}))
		if leaf == nil {
			t.Fatal("17.4 refused")
		}
		b, _ := e.store.GetCert(context.Background(), store.HashCert(leaf))
		a, err := e.store.GetAttestation(context.Background(), b.AttestationID)
		if err != nil || a.Facts["os"] != "ios" || a.Facts["os_source"] != "inventory" || a.Facts["os_version"] != "17.4" {
			t.Errorf("attestation facts %+v, %v", a, err)
		}

		addDevice(t, e, inventory.Record{Platform: "android", Serial: "R58OLDPATCH", Profile: "strict"})
		r, _ = enrollVia(t, e, dir(""), "R58OLDPATCH", android("R58OLDPATCH", attesttest.AndroidOptions{OSPatchLevel: 202508}))
		if d := wantProblem(t, r, http.StatusForbidden, acme.ProblemUnauthorized); !strings.Contains(d, "patch level 202508 is below min_patch_level 202509") {
			t.Errorf("detail %q", d)
		}
	})

	t.Run("removed_from_inventory_refused", func(t *testing.T) {
		t.Parallel()
		rep, err := inventory.Apply(t.Context(), e.store, []inventory.Row{{Record: inventory.Record{Platform: "ios", Serial: "F2LGONE", Profile: "corp"}}},
			inventory.Options{Source: "jamf-test"})
		if err != nil || rep.Added != 1 {
			t.Fatal(rep, err)
		}
		if _, err := inventory.Apply(t.Context(), e.store, nil, inventory.Options{Source: "jamf-test", Complete: true}); err != nil {
			t.Fatal(err)
		}
		r, _ := enrollVia(t, e, dir(""), "F2LGONE", apple("F2LGONE", attesttest.AppleOptions{}))
		if d := wantProblem(t, r, http.StatusForbidden, acme.ProblemRejectedIdentifier); !strings.Contains(d, "removed from the inventory by jamf-test") {
			t.Errorf("detail %q", d)
		}
	})

	t.Run("found_by_alias_issues_to_the_record", func(t *testing.T) {
		t.Parallel()
		addDevice(t, e, inventory.Record{ID: "mac-42", Platform: "macos", UDID: "UDID-C02ALIAS", Profile: "corp"})
		_, leaf := enrollVia(t, e, dir(""), "C02ALIAS", apple("C02ALIAS", attesttest.AppleOptions{MacOS: true}))
		if leaf == nil {
			t.Fatal("refused")
		}
		if id, _ := ca.DeviceID(leaf); id != "mac-42" {
			t.Errorf("cert device id %q, want the record's", id)
		}
		d, err := e.store.FindDeviceByAlias(context.Background(), "serial", "C02ALIAS")
		if err != nil || d.ID != "mac-42" {
			t.Errorf("serial alias -> %+v, %v", d, err)
		}
	})
}

// lastAuditFor is the newest audit event about subject.
func lastAuditFor(t *testing.T, e *env, subject string) *store.AuditEvent {
	t.Helper()
	evs, err := e.store.TailAudit(context.Background(), 200)
	if err != nil {
		t.Fatal(err)
	}
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Subject == subject {
			return evs[i]
		}
	}
	t.Fatalf("no audit event about %q", subject)
	return nil
}

// TestAndroidStatusListRefusesListedKey: an inventoried Android device
// whose attestation chain goes through an intermediate on the status list
// is refused with badAttestationStatement, audited; the same device with
// the list no longer naming it enrolls.
func TestAndroidStatusListRefusesListedKey(t *testing.T) {
	t.Parallel()
	a := authority(t)
	src := filepath.Join(t.TempDir(), "status.json")
	write := func(serial string) {
		doc := `{"entries":{"` + serial + `":{"status":"REVOKED","reason":"KEY_COMPROMISE"}}}`
		if err := os.WriteFile(src, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(a.AndroidIntermediate().SerialNumber.Text(16))
	list, err := statuslist.New(statuslist.Config{Source: src})
	if err != nil {
		t.Fatal(err)
	}
	if err := list.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envOpts{profiles: gatedProfiles(t), attest: []attest.Option{attest.WithAndroidStatus(list)}})
	addDevice(t, e, inventory.Record{Platform: "android", Serial: "R58LEAKED", Profile: "corp"})
	mk := func(keyAuth string, k *ecdsaKey) []byte {
		b, err := e.auth.Android(k, "R58LEAKED", keyAuth)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	r, _ := enrollVia(t, e, e.dirURL, "R58LEAKED", mk)
	if d := wantProblem(t, r, http.StatusBadRequest, acme.ProblemBadAttestationStatement); !strings.Contains(d, "attestation status list (REVOKED/KEY_COMPROMISE)") {
		t.Errorf("detail %q", d)
	}
	if ev := lastAuditFor(t, e, "R58LEAKED"); ev.Result != "reject" || !strings.Contains(ev.Reason, "status list") {
		t.Errorf("audit %+v", ev)
	}
	write("1234")
	if err := list.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, leaf := enrollVia(t, e, e.dirURL, "R58LEAKED", mk); leaf == nil {
		t.Fatal("refused once the list no longer names the intermediate")
	}
}
