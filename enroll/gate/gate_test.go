package gate_test

import (
	"errors"
	"testing"
	"time"

	"hardbound/enroll/gate"
	"hardbound/store"
	"hardbound/store/badger/badgertest"
	"hardbound/store/inventory"
	"hardbound/store/policy"
)

func TestAdmit(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := badgertest.Memory(t)
	add := func(source string, recs ...inventory.Record) {
		rows := make([]inventory.Row, len(recs))
		for i, r := range recs {
			rows[i] = inventory.Row{Record: r}
		}
		if rep, err := inventory.Apply(ctx, st, rows, inventory.Options{Source: source}); err != nil || rep.Failed > 0 {
			t.Fatal(rep, err)
		}
	}
	add("admin",
		inventory.Record{Platform: "macos", Serial: "C02MAC", Profile: "corp"},
		inventory.Record{Platform: "ios", Serial: "F2LPHONE", Profile: "strict"},
		inventory.Record{ID: "mac-7", Platform: "macos", UDID: "UDID-7"},
		inventory.Record{Platform: "android", Serial: "R58REV"},
	)
	add("jamf", inventory.Record{Platform: "ios", Serial: "F2LGONE"})
	if _, err := inventory.Apply(ctx, st, nil, inventory.Options{Source: "jamf", Complete: true}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.RevokeDevice(ctx, "R58REV", store.Revocation{At: time.Now(), Reason: 1, Actor: "test"}, nil); err != nil {
		t.Fatal(err)
	}
	mins, _ := policy.ParseMinimums(map[string]string{"ios": "17.4"}, 0)
	g, err := gate.New(st, []gate.Profile{
		{Name: "default", RequireInventory: true}, {Name: "corp", RequireInventory: true},
		{Name: "strict", RequireInventory: true, Minimums: mins}, {Name: "open"},
	}, "default")
	if err != nil {
		t.Fatal(err)
	}
	apple := func(serial string, facts map[string]string) gate.Request {
		return gate.Request{DeviceID: serial, Identities: map[string]string{"serial": serial, "udid": "UDID-" + serial}, Format: "apple", Facts: facts}
	}
	tests := []struct {
		name        string
		req         gate.Request
		want        error
		wantProfile string
		wantDevice  string
	}{
		{"ok/record-profile-taken", apple("C02MAC", nil), nil, "corp", "C02MAC"},
		{"ok/named-own-profile", func() gate.Request { r := apple("C02MAC", nil); r.Profile, r.Named = "corp", true; return r }(), nil, "corp", "C02MAC"},
		{"fail/named-other-profile", func() gate.Request { r := apple("C02MAC", nil); r.Profile, r.Named = "open", true; return r }(), gate.ErrProfileMismatch, "", ""},
		{"fail/not-in-inventory", apple("C02STRANGER", nil), gate.ErrNotInInventory, "", ""},
		{"ok/no-record-open-profile", func() gate.Request { r := apple("C02STRANGER", nil); r.Profile, r.Named = "open", true; return r }(), nil, "open", "C02STRANGER"},
		{"fail/removed", apple("F2LGONE", nil), gate.ErrNotInInventory, "", ""},
		{"fail/revoked", gate.Request{DeviceID: "R58REV", Format: "android-key"}, gate.ErrRevoked, "", ""},
		{"fail/android-naming-a-mac", gate.Request{DeviceID: "C02MAC", Identities: map[string]string{"serial": "C02MAC"}, Format: "android-key"}, gate.ErrPlatformMismatch, "", ""},
		{"ok/found-by-alias", gate.Request{DeviceID: "C02NEW", Identities: map[string]string{"udid": "UDID-7"}, Format: "apple"}, nil, "default", "mac-7"},
		{"fail/below-min-os", apple("F2LPHONE", map[string]string{"os_version": "17.3"}), gate.ErrBelowMinimum, "", ""},
		{"ok/min-os-family-from-record", apple("F2LPHONE", map[string]string{"os_version": "17.4"}), nil, "strict", "F2LPHONE"},
		{"ok/unattested-skips-format-checks", gate.Request{DeviceID: "C02MAC", Format: policy.FormatNone}, nil, "corp", "C02MAC"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := g.Admit(ctx, tc.req)
			if tc.want != nil {
				if !errors.Is(err, tc.want) {
					t.Fatalf("Admit = %v, want %v", err, tc.want)
				}
				if gate.Reason(err) == "error" {
					t.Errorf("Reason(%v) = error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.Profile.Name != tc.wantProfile || d.DeviceID(tc.req.DeviceID) != tc.wantDevice {
				t.Errorf("decision profile %q device %q, want %q %q", d.Profile.Name, d.DeviceID(tc.req.DeviceID), tc.wantProfile, tc.wantDevice)
			}
		})
	}
	d, err := g.Admit(ctx, apple("F2LPHONE", map[string]string{"os_version": "17.5"}))
	if err != nil || d.Facts["os"] != "ios" || d.Facts["os_source"] != "inventory" {
		t.Errorf("facts %v, %v", d, err)
	}
	if _, err := gate.New(st, nil, "default"); err == nil {
		t.Error("New without the default profile succeeded")
	}
}

// TestSetProfiles: a reload raises a minimum and drops require_inventory
// on a running gate; the next Admit applies both; a refused set keeps the
// gate as it was.
func TestSetProfiles(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := badgertest.Memory(t)
	if rep, err := inventory.Apply(ctx, st, []inventory.Row{{Record: inventory.Record{Platform: "ios", Serial: "F2LPHONE", Profile: "phones"}}}, inventory.Options{Source: "admin"}); err != nil || rep.Failed > 0 {
		t.Fatal(rep, err)
	}
	low, _ := policy.ParseMinimums(map[string]string{"ios": "17.0"}, 0)
	high, _ := policy.ParseMinimums(map[string]string{"ios": "17.4"}, 0)
	g, err := gate.New(st, []gate.Profile{{Name: "default", RequireInventory: true}, {Name: "phones", RequireInventory: true, Minimums: low}}, "default")
	if err != nil {
		t.Fatal(err)
	}
	phone := gate.Request{DeviceID: "F2LPHONE", Format: "apple", Facts: map[string]string{"os_version": "17.2"}}
	stranger := gate.Request{DeviceID: "F2LSTRANGER", Format: "apple", Facts: map[string]string{"os": "ios", "os_version": "18.0"}}
	if _, err := g.Admit(ctx, phone); err != nil {
		t.Fatalf("17.2 under min 17.0: %v", err)
	}
	if _, err := g.Admit(ctx, stranger); !errors.Is(err, gate.ErrNotInInventory) {
		t.Fatalf("stranger: %v", err)
	}
	if err := g.SetProfiles([]gate.Profile{{Name: "default"}, {Name: "phones", RequireInventory: true, Minimums: high}}, "default"); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Admit(ctx, phone); !errors.Is(err, gate.ErrBelowMinimum) {
		t.Fatalf("17.2 after raising to 17.4: %v, want below minimum", err)
	}
	if _, err := g.Admit(ctx, stranger); err != nil {
		t.Fatalf("stranger once default no longer requires inventory: %v", err)
	}
	if err := g.SetProfiles([]gate.Profile{{Name: "phones"}}, "default"); err == nil {
		t.Fatal("a set without its default profile was accepted")
	}
	if _, err := g.Admit(ctx, phone); !errors.Is(err, gate.ErrBelowMinimum) {
		t.Fatalf("a refused SetProfiles changed the gate: %v", err)
	}
}
