package scep_test

import (
	"crypto/x509/pkix"
	"errors"
	"strings"
	"testing"

	smscep "github.com/smallstep/scep"

	"hardbound/enroll/gate"
	"hardbound/enroll/scep"
	"hardbound/enroll/scep/sceptest"
	"hardbound/store"
	"hardbound/store/inventory"
)

// TestInventoryGate: with the issuance gate, a device without an inventory
// record is refused with badRequest and not_in_inventory, audited with the
// id it claimed; once added it enrolls; a record in another profile
// refuses the request (the record's profile is kept).
func TestInventoryGate(t *testing.T) {
	t.Parallel()
	var st store.Store
	e := newEnv(t, func(c *scep.Config) {
		st = c.Store.(store.Store)
		g, err := gate.New(st, []gate.Profile{{Name: "corp", RequireInventory: true}, {Name: "jamf", RequireInventory: true}, {Name: "strict", RequireInventory: true},
			{Name: "static"}, {Name: "attested"}, {Name: "apple-only"}}, "corp")
		if err != nil {
			t.Fatal(err)
		}
		c.Gate = g
	})
	enroll := func(device, profile string) error {
		ch := e.mint(scep.MintRequest{DeviceID: device, Profile: profile})
		_, err := e.client(profile).Enroll(t.Context(), sceptest.Request{Key: newKey(t), Challenge: ch, Subject: pkix.Name{CommonName: device}})
		return err
	}
	wantFail := func(err error, reason scep.Reason, device string) {
		t.Helper()
		var f *sceptest.Failure
		if !errors.As(err, &f) || f.FailInfo != smscep.BadRequest || !strings.HasPrefix(f.Text, string(reason)+": ") {
			t.Fatalf("enroll = %v, want badRequest %s", err, reason)
		}
		if ev := e.lastAudit(); ev.Result != "reject" || ev.Subject != device || !strings.HasPrefix(ev.Reason, string(reason)+": ") {
			t.Errorf("audit %+v", ev)
		}
	}
	wantFail(enroll("mac-out", "corp"), scep.ReasonNotInInventory, "mac-out")
	if _, err := st.GetDevice(t.Context(), "mac-out"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a refused enrollment wrote the device: %v", err)
	}
	add := func(r inventory.Record) {
		if rep, err := inventory.Apply(t.Context(), st, []inventory.Row{{Record: r}}, inventory.Options{Source: "admin"}); err != nil || rep.Failed > 0 {
			t.Fatal(rep, err)
		}
	}
	add(inventory.Record{ID: "mac-out", Platform: "macos", Profile: "corp"})
	if err := enroll("mac-out", "corp"); err != nil {
		t.Fatalf("after device add: %v", err)
	}
	add(inventory.Record{ID: "mac-jamf", Platform: "macos", Profile: "jamf"})
	wantFail(enroll("mac-jamf", "corp"), scep.ReasonProfileMismatch, "mac-jamf")
	if d, _ := st.GetDevice(t.Context(), "mac-jamf"); d.Profile != "jamf" {
		t.Errorf("record profile %q after the refused request, want jamf", d.Profile)
	}
}
