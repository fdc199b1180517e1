package intune

import (
	"context"
	"errors"
	"net/url"
	"strconv"

	"hardbound/posture/mdm"
	"hardbound/store/inventory"
	"hardbound/store/policy"
)

// CategoryProfile maps an Intune device category (deviceCategoryDisplayName)
// to a hardbound profile.
type CategoryProfile struct {
	Category string `yaml:"category"`
	Profile  string `yaml:"profile"`
}

// InventoryConfig says how Intune's managed devices become inventory
// records.
type InventoryConfig struct {
	// DefaultProfile is the profile of a device whose category no
	// CategoryProfiles entry names; empty: the default profile.
	DefaultProfile   string
	CategoryProfiles []CategoryProfile
}

// Lister lists Intune's managed devices as inventory records (mdm.Lister)
// through the poller's Graph client: GET
// /v1.0/deviceManagement/managedDevices, following @odata.nextLink, with
// the poller's token handling and backoff. A device being retired or wiped
// (managementState retire*/wipe*) is not listed: it is leaving.
type Lister struct {
	p   *Poller
	cfg InventoryConfig
}

// Lister returns the inventory lister over p's Graph client.
func (p *Poller) Lister(cfg InventoryConfig) *Lister { return &Lister{p: p, cfg: cfg} }

// ListInventory implements mdm.Lister.
func (l *Lister) ListInventory(ctx context.Context) ([]inventory.Record, error) {
	q := url.Values{}
	q.Set("$select", "id,azureADDeviceId,serialNumber,operatingSystem,managementState,deviceCategoryDisplayName,userPrincipalName")
	q.Set("$top", strconv.Itoa(l.p.cfg.PageSize))
	next := l.p.app.GraphURL() + "/v1.0/deviceManagement/managedDevices?" + q.Encode()
	var out []inventory.Record
	for pages := 0; next != ""; pages++ {
		if pages >= 100_000 {
			return nil, errors.New("intune: too many pages")
		}
		page, err := l.p.fetchPage(ctx, next)
		if err != nil {
			return nil, err
		}
		for _, d := range page.Value {
			if r, ok := l.record(d); ok {
				out = append(out, r)
			}
		}
		next = page.NextLink
	}
	return out, nil
}

func (l *Lister) record(d ManagedDevice) (inventory.Record, bool) {
	if d.ID == "" || leaving(d.ManagementState) {
		return inventory.Record{}, false
	}
	platform, err := policy.NormalizePlatform(d.OperatingSystem)
	if err != nil {
		// Kept so the sync reports it; Normalize refuses it by name.
		platform = d.OperatingSystem
	}
	// The record's id is the managed device id: Intune's SCEP profiles
	// name the device by it (IntuneDeviceId://), and an attestation that
	// proves the serial finds the record by its serial alias.
	r := inventory.Record{ID: d.ID, Platform: platform, Serial: d.SerialNumber, IntuneID: d.ID, Owner: d.UserPrincipalName, Profile: l.cfg.DefaultProfile}
	if d.AzureADDeviceID != "" && d.AzureADDeviceID != "00000000-0000-0000-0000-000000000000" {
		r.Aliases = map[string]string{mdm.KindAzureADID: d.AzureADDeviceID}
	}
	for _, cp := range l.cfg.CategoryProfiles {
		if cp.Category == d.DeviceCategoryDisplayName {
			r.Profile = cp.Profile
			break
		}
	}
	return r, true
}

// leaving reports the managementState values of a device Intune is
// retiring or wiping.
func leaving(state string) bool {
	switch state {
	case "retirePending", "retireFailed", "wipePending", "wipeFailed", "retireIssued", "wipeIssued", "retireCanceled":
		return true
	}
	return false
}
