package intune_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"hardbound/posture/mdm"
	"hardbound/posture/mdm/intune"
	"hardbound/store"
	"hardbound/store/badger/badgertest"
)

// graphInventory follows Graph's documented managedDevices collection: an
// Entra token from /{tenant}/oauth2/v2.0/token (client credentials), then
// GET /v1.0/deviceManagement/managedDevices with $select and $top,
// answering {"value": [...], "@odata.nextLink": ...} pages; the first
// Graph request fails with 503 and Retry-After.
type graphInventory struct {
	t       *testing.T
	mu      sync.Mutex
	devices []map[string]any
	failed  bool
	url     string
}

func (g *graphInventory) set(ds []map[string]any) { g.mu.Lock(); g.devices = ds; g.mu.Unlock() }

func (g *graphInventory) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if strings.HasSuffix(r.URL.Path, "/oauth2/v2.0/token") {
		if r.ParseForm() != nil || r.PostForm.Get("client_secret") != "s3cret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"graph-inv-token"}`))
		return
	}
	if r.Header.Get("Authorization") != "Bearer graph-inv-token" || r.URL.Path != "/v1.0/deviceManagement/managedDevices" {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if !g.failed {
		g.failed = true
		w.Header().Set("Retry-After", "2")
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	q := r.URL.Query()
	if sel := q.Get("$select"); !strings.Contains(sel, "operatingSystem") || !strings.Contains(sel, "deviceCategoryDisplayName") {
		g.t.Errorf("$select = %q", sel)
	}
	top, _ := strconv.Atoi(q.Get("$top"))
	skip, _ := strconv.Atoi(q.Get("$skiptoken"))
	end := min(skip+top, len(g.devices))
	page := map[string]any{"@odata.context": g.url + "/v1.0/$metadata#deviceManagement/managedDevices", "value": append([]map[string]any{}, g.devices[skip:end]...)}
	if end < len(g.devices) {
		page["@odata.nextLink"] = g.url + "/v1.0/deviceManagement/managedDevices?$select=" + q.Get("$select") + "&$top=" + q.Get("$top") + "&$skiptoken=" + strconv.Itoa(end)
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(page)
}

func managed(id, os, serial, category, upn, state string) map[string]any {
	return map[string]any{"id": id, "azureADDeviceId": "aad-" + id, "serialNumber": serial, "operatingSystem": os,
		"deviceCategoryDisplayName": category, "userPrincipalName": upn, "managementState": state, "complianceState": "compliant"}
}

func TestInventorySyncFromIntune(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	g := &graphInventory{t: t}
	srv := httptest.NewServer(g)
	defer srv.Close()
	g.url = srv.URL
	g.set([]map[string]any{
		managed("i-1", "Windows", "PF3WIN01", "Engineering", "alice@example.com", "managed"),
		managed("i-2", "iOS", "F2LIPHONE", "", "bob@example.com", "managed"),
		managed("i-3", "Android", "R58N123ABC", "Kiosk", "", "managed"),
		managed("i-4", "macOS", "C02MACINT", "", "", "managed"),
		managed("i-5", "Windows", "PF3WIN05", "", "", "managed"),
	})
	var sleeps []time.Duration
	p, err := intune.New(intune.Config{
		TenantID: "tenant-1", ClientID: "app-1", ClientSecret: "s3cret", LoginURL: srv.URL, GraphURL: srv.URL, PageSize: 2,
		Updater: nopUpdater{},
		Sleep:   func(_ context.Context, d time.Duration) error { sleeps = append(sleeps, d); return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	lister := p.Lister(intune.InventoryConfig{DefaultProfile: "corp", CategoryProfiles: []intune.CategoryProfile{
		{Category: "Engineering", Profile: "eng"}, {Category: "Kiosk", Profile: "kiosk"},
	}})
	st := badgertest.Memory(t)
	sync, err := mdm.NewInventorySync(mdm.InventorySyncConfig{Source: "intune", Lister: lister, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := sync.SyncOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Added != 5 || rep.Failed != 0 {
		t.Fatalf("first sync: %+v", rep)
	}
	if len(sleeps) != 1 || sleeps[0] != 2*time.Second {
		t.Errorf("backoff waits %v, want the 2s Retry-After", sleeps)
	}
	for id, w := range map[string]struct{ platform, profile, owner, serial string }{
		"i-1": {"windows", "eng", "alice@example.com", "PF3WIN01"},
		"i-2": {"ios", "corp", "bob@example.com", "F2LIPHONE"},
		"i-3": {"android", "kiosk", "", "R58N123ABC"},
		"i-4": {"macos", "corp", "", "C02MACINT"},
	} {
		d, err := st.GetDevice(ctx, id)
		if err != nil || d.Platform != w.platform || d.Profile != w.profile || d.Owner != w.owner ||
			d.Aliases["serial"] != w.serial || d.Aliases[mdm.KindAzureADID] != "aad-"+id || d.Source != "intune" {
			t.Errorf("%s = %+v, %v; want %+v", id, d, err, w)
		}
	}

	// i-2 is being retired, i-5 deleted, i-3 moved out of the Kiosk
	// category, i-1 moved to Kiosk.
	g.set([]map[string]any{
		managed("i-1", "Windows", "PF3WIN01", "Kiosk", "alice@example.com", "managed"),
		managed("i-2", "iOS", "F2LIPHONE", "", "bob@example.com", "retirePending"),
		managed("i-3", "Android", "R58N123ABC", "", "", "managed"),
		managed("i-4", "macOS", "C02MACINT", "", "", "managed"),
	})
	rep, err = sync.SyncOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Removed != 2 || rep.Updated != 2 || rep.Unchanged != 1 {
		t.Fatalf("second sync: %+v", rep)
	}
	for id, w := range map[string]struct {
		in      bool
		profile string
	}{"i-1": {true, "kiosk"}, "i-2": {false, "corp"}, "i-3": {true, "corp"}, "i-4": {true, "corp"}, "i-5": {false, "corp"}} {
		d, err := st.GetDevice(ctx, id)
		if err != nil || d.InInventory() != w.in || d.Profile != w.profile {
			t.Errorf("%s = %+v, %v; want in=%v profile %s", id, d, err, w.in, w.profile)
		}
	}
}

type nopUpdater struct{}

func (nopUpdater) ResolveDevice(context.Context, string, string) (string, error) { return "", nil }
func (nopUpdater) SetCompliance(context.Context, string, store.Compliance, string, string) (*store.Device, error) {
	return nil, nil
}
