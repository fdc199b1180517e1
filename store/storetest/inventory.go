package storetest

import (
	"testing"
	"time"

	"hardbound/store"
)

// testInventoryFields: the inventory fields of a device (owner, source,
// removed_at) round-trip through every write, and an issuance that merges
// into an inventory record keeps them: enrollment never decides who owns a
// device or whether it is inventory (docs/inventory.md).
func testInventoryFields(t *testing.T, open func(t *testing.T) store.Store) {
	s := newStore(t, open)
	ctx := t.Context()

	d := device("inv-1")
	d.Owner = "alice@example.com"
	d.Source = "jamf"
	d.Aliases = map[string]string{"serial": "C02INV1", "jamf_computer_id": "17"}
	noErr(t, "PutDevice", s.PutDevice(ctx, d))
	got, err := s.GetDevice(ctx, "inv-1")
	noErr(t, "GetDevice", err)
	sameJSON(t, "GetDevice", got, d)
	if !got.InInventory() {
		t.Fatal("a fresh record is not in inventory")
	}

	removed := base.Add(time.Hour).UTC()
	upd, err := s.UpdateDevice(ctx, "inv-1", func(d *store.Device) error {
		d.RemovedAt = removed
		return nil
	}, auditEv("inventory.remove", "inv-1"))
	noErr(t, "UpdateDevice(removed)", err)
	if !upd.RemovedAt.Equal(removed) || upd.InInventory() {
		t.Fatalf("UpdateDevice: removed_at %v, want %v", upd.RemovedAt, removed)
	}

	// An issuance merging into the record changes neither owner, source
	// nor removal.
	in := &store.Device{ID: "inv-1", Platform: "macos", Profile: "corp", Aliases: map[string]string{"udid": "U-INV-1"}, Source: "enroll"}
	noErr(t, "RecordIssuance", s.RecordIssuance(ctx, store.Issuance{Device: in, Cert: cert("inv-1", 1), Audit: auditEv("enroll.issue", "inv-1")}))
	got, err = s.GetDevice(ctx, "inv-1")
	noErr(t, "GetDevice after issuance", err)
	if got.Owner != "alice@example.com" || got.Source != "jamf" || !got.RemovedAt.Equal(removed) ||
		got.Aliases["serial"] != "C02INV1" || got.Aliases["udid"] != "U-INV-1" {
		t.Fatalf("issuance changed inventory fields: %+v", got)
	}

	// Readmitted by its source.
	upd, err = s.UpdateDevice(ctx, "inv-1", func(d *store.Device) error {
		d.RemovedAt = time.Time{}
		d.Owner = "bob@example.com"
		return nil
	}, nil)
	noErr(t, "UpdateDevice(readmit)", err)
	if !upd.InInventory() || upd.Owner != "bob@example.com" {
		t.Fatalf("readmit: %+v", upd)
	}
	byAlias, err := s.FindDeviceByAlias(ctx, "jamf_computer_id", "17")
	noErr(t, "FindDeviceByAlias", err)
	sameJSON(t, "FindDeviceByAlias", byAlias, upd)
}
