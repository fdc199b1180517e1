package jamf_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hardbound/posture/mdm"
	"hardbound/posture/mdm/jamf"
	"hardbound/store/badger/badgertest"
)

// fakeComputer is one computer as the fake Jamf Pro lists it.
type fakeComputer struct {
	id      int
	serial  string
	udid    string
	email   string
	managed bool
	groups  []string
}

// jamfServer follows the Jamf Pro API's documented shapes: an OAuth
// client-credentials token at /api/oauth/token (form fields), then
// /api/v1/computers-inventory and /api/v2/mobile-devices, paginated with
// page (from 0) and page-size, answering {totalCount, results}. The first
// inventory request is throttled with 429 and Retry-After.
type jamfServer struct {
	mu        sync.Mutex
	computers []fakeComputer
	mobiles   []map[string]any
	throttled atomic.Bool
	requests  atomic.Int32
}

func (j *jamfServer) set(cs []fakeComputer) { j.mu.Lock(); j.computers = cs; j.mu.Unlock() }

func (j *jamfServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/api/oauth/token" {
		if r.ParseForm() != nil || r.PostForm.Get("grant_type") != "client_credentials" || r.PostForm.Get("client_secret") != "csecret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"access_token":"jamf-inv-token","token_type":"Bearer","expires_in":1199,"scope":"api-role:1"}`))
		return
	}
	if r.Header.Get("Authorization") != "Bearer jamf-inv-token" {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	j.requests.Add(1)
	if !j.throttled.Swap(true) {
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
		return
	}
	q := r.URL.Query()
	page, _ := strconv.Atoi(q.Get("page"))
	size, _ := strconv.Atoi(q.Get("page-size"))
	if size <= 0 {
		http.Error(w, "page-size", http.StatusBadRequest)
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	var all []map[string]any
	switch r.URL.Path {
	case "/api/v1/computers-inventory":
		if len(q["section"]) != 4 {
			http.Error(w, "sections", http.StatusBadRequest)
			return
		}
		for _, c := range j.computers {
			var gm []map[string]any
			for i, g := range c.groups {
				gm = append(gm, map[string]any{"groupId": strconv.Itoa(i + 1), "groupName": g, "smartGroup": true})
			}
			all = append(all, map[string]any{
				"id": strconv.Itoa(c.id), "udid": c.udid,
				"general":          map[string]any{"name": "mac-" + c.serial, "platform": "Mac", "remoteManagement": map[string]any{"managed": c.managed}},
				"hardware":         map[string]any{"serialNumber": c.serial, "model": "MacBook Pro"},
				"userAndLocation":  map[string]any{"email": c.email},
				"groupMemberships": gm,
			})
		}
	case "/api/v2/mobile-devices":
		all = j.mobiles
	default:
		http.NotFound(w, r)
		return
	}
	lo, hi := min(page*size, len(all)), min((page+1)*size, len(all))
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"totalCount": len(all), "results": append([]map[string]any{}, all[lo:hi]...)})
}

func TestInventorySyncFromJamf(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	js := &jamfServer{mobiles: []map[string]any{
		{"id": "7", "name": "iPad", "serialNumber": "DMQVGC0DHLA0", "udid": "0dad565fb40b", "type": "ios", "username": "carol"},
	}}
	js.set([]fakeComputer{
		{id: 1, serial: "C02AAA", udid: "UDID-A", email: "alice@example.com", managed: true, groups: []string{"All Managed", "Engineering"}},
		{id: 2, serial: "C02BBB", udid: "UDID-B", email: "bob@example.com", managed: true},
		{id: 3, serial: "C02CCC", udid: "UDID-C", managed: true},
	})
	srv := httptest.NewServer(js)
	defer srv.Close()
	api, err := jamf.NewAPIClient(jamf.APIConfig{BaseURL: srv.URL, ClientID: "cid", ClientSecret: "csecret"})
	if err != nil {
		t.Fatal(err)
	}
	var slept []time.Duration
	lister := api.Lister(jamf.InventoryConfig{
		DefaultProfile: "corp", GroupProfiles: []jamf.GroupProfile{{Group: "Engineering", Profile: "eng"}},
		MobileDevices: true, PageSize: 2,
		Sleep: func(_ context.Context, d time.Duration) error { slept = append(slept, d); return nil },
	})
	st := badgertest.Memory(t)
	known := map[string]bool{"corp": true, "eng": true}
	sync, err := mdm.NewInventorySync(mdm.InventorySyncConfig{Source: "jamf", Lister: lister, Store: st, KnownProfile: func(p string) bool { return known[p] }})
	if err != nil {
		t.Fatal(err)
	}

	rep, err := sync.SyncOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Added != 4 || rep.Failed != 0 {
		t.Fatalf("first sync: %+v", rep)
	}
	if len(slept) != 1 || slept[0] != time.Second {
		t.Errorf("429 backoff waits %v, want one Retry-After of 1s", slept)
	}
	want := map[string]struct{ profile, platform, owner, jamfID string }{
		"C02AAA":       {"eng", "macos", "alice@example.com", "1"},
		"C02BBB":       {"corp", "macos", "bob@example.com", "2"},
		"C02CCC":       {"corp", "macos", "", "3"},
		"DMQVGC0DHLA0": {"corp", "ios", "carol", ""},
	}
	for id, w := range want {
		d, err := st.GetDevice(ctx, id)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if d.Profile != w.profile || d.Platform != w.platform || d.Owner != w.owner || d.Source != "jamf" || !d.InInventory() ||
			(w.jamfID != "" && d.Aliases[mdm.KindJamfComputerID] != w.jamfID) {
			t.Errorf("%s = %+v, want %+v", id, d, w)
		}
	}
	if d, err := st.FindDeviceByAlias(ctx, mdm.KindJamfMobileDeviceID, "7"); err != nil || d.ID != "DMQVGC0DHLA0" {
		t.Errorf("mobile device alias: %+v, %v", d, err)
	}

	// B is unenrolled (unmanaged), C deleted from Jamf, A leaves the
	// Engineering group.
	js.set([]fakeComputer{
		{id: 1, serial: "C02AAA", udid: "UDID-A", email: "alice@example.com", managed: true, groups: []string{"All Managed"}},
		{id: 2, serial: "C02BBB", udid: "UDID-B", email: "bob@example.com", managed: false},
	})
	rep, err = sync.SyncOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Removed != 2 || rep.Updated != 1 || rep.Unchanged != 1 {
		t.Fatalf("second sync: %+v", rep)
	}
	for id, in := range map[string]bool{"C02AAA": true, "C02BBB": false, "C02CCC": false, "DMQVGC0DHLA0": true} {
		d, _ := st.GetDevice(ctx, id)
		if d.InInventory() != in {
			t.Errorf("%s in inventory = %v, want %v", id, d.InInventory(), in)
		}
	}
	if d, _ := st.GetDevice(ctx, "C02AAA"); d.Profile != "corp" {
		t.Errorf("A's profile = %q, want corp after leaving Engineering", d.Profile)
	}
	evs, err := st.TailAudit(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if e.Actor != "mdm:jamf" || (e.Action != "inventory.update" && e.Action != "inventory.remove") {
			t.Errorf("audit %+v", e)
		}
	}

	// Re-enrolled: B comes back into inventory; a webhook hint makes Run
	// sync without waiting for the interval.
	js.set([]fakeComputer{
		{id: 1, serial: "C02AAA", udid: "UDID-A", managed: true},
		{id: 2, serial: "C02BBB", udid: "UDID-B", managed: true, groups: []string{"Engineering"}},
	})
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	hinted, err := mdm.NewInventorySync(mdm.InventorySyncConfig{Source: "jamf", Lister: lister, Store: st, Interval: time.Hour, MinGap: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	before := js.requests.Load()
	go func() { done <- hinted.Run(runCtx) }()
	// The first sync of Run (one page of computers, one of mobile
	// devices), then the hint's.
	waitFor(t, func() bool {
		d, err := st.GetDevice(ctx, "C02BBB")
		return err == nil && d.InInventory() && d.Profile == "eng"
	})
	waitFor(t, func() bool { return js.requests.Load() >= before+2 })
	js.set([]fakeComputer{{id: 1, serial: "C02AAA", udid: "UDID-A", managed: true}})
	hinted.Hint()
	waitFor(t, func() bool {
		d, err := st.GetDevice(ctx, "C02BBB")
		return err == nil && !d.InInventory()
	})
	cancel()
	if err := <-done; err != context.Canceled {
		t.Errorf("Run = %v", err)
	}
}

// waitFor polls cond for up to 10s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
