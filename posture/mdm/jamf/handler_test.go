package jamf

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"

	"hardbound/posture/mdm"
	"hardbound/posture/mdm/mdmtest"
)

const (
	user = "jamf-webhook"
	pass = "correct horse battery"
)

func sample(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile("../../../testdata/mdm/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// staticLookup answers group membership from a table.
type staticLookup map[int][]Group

func (s staticLookup) Groups(_ context.Context, _ DeviceType, id int) ([]Group, error) {
	if id == 999 {
		return nil, errors.New("jamf api down")
	}
	return s[id], nil
}

func newHandler(t *testing.T, lookup GroupLookup) (*Handler, *mdmtest.Updater, *mdmtest.Auditor, *mdmtest.Metrics) {
	t.Helper()
	u := mdmtest.NewUpdater(map[string]string{
		"serial:C02M23PJFH00":                       "mac-13",
		"jamf_computer_id:14":                       "mac-14",
		"serial:C02M23PJFH15":                       "mac-15",
		"jamf_computer_id:15":                       "mac-15",
		"udid:00008030-001A2B3C4D5E802E":            "ipad-77",
		"serial:DMPXK2ZZQ1GC":                       "iphone-78",
		"udid:EBBFF74D-C6B7-5599-93A9-19E8BDDEFE32": "mac-13",
	})
	a, m := &mdmtest.Auditor{}, &mdmtest.Metrics{}
	h, err := New(Config{
		Username: user, Password: pass, TokenHeader: "X-Hardbound-Token", Token: "0123456789abcdef0123",
		NoncompliantGroups: []string{"42", "Noncompliant iOS"}, Lookup: lookup,
		Updater: u, Auditor: a, Metrics: m,
	})
	if err != nil {
		t.Fatal(err)
	}
	return h, u, a, m
}

func post(body string, auth func(*http.Request)) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/posture/jamf", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	if auth != nil {
		auth(r)
	}
	return r
}

func basic(r *http.Request) { r.SetBasicAuth(user, pass) }

func TestHandler(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		req     *http.Request
		lookup  GroupLookup
		status  int
		reports []string
		reason  string // reject reason
		result  Result
	}{
		{name: "ok/computer_group_added_and_removed", req: post(sample(t, "jamf-smartgroup-computer-membership-change.json"), basic),
			status: 200, reports: []string{"mac-14 noncompliant jamf mdm:jamf", "mac-15 compliant jamf mdm:jamf"},
			result: Result{Event: EventSmartGroupComputerChange, Applied: 2, Unknown: 1}},
		{name: "ok/mobile_group_by_name_display_fields", req: post(sample(t, "jamf-smartgroup-mobile-membership-change.json"), func(r *http.Request) {
			r.Header.Set("X-Hardbound-Token", "0123456789abcdef0123")
		}), status: 200, reports: []string{"ipad-77 noncompliant jamf mdm:jamf", "iphone-78 compliant jamf mdm:jamf"},
			result: Result{Event: EventSmartGroupMobileDeviceChange, Applied: 2}},
		{name: "ok/group_change_confirmed_by_lookup", lookup: staticLookup{13: nil, 14: nil, 15: {{ID: 42}}},
			req: post(sample(t, "jamf-smartgroup-computer-membership-change.json"), basic), status: 200,
			reports: []string{"mac-14 compliant jamf mdm:jamf", "mac-15 noncompliant jamf mdm:jamf"},
			result:  Result{Event: EventSmartGroupComputerChange, Applied: 2, Unknown: 1}},
		{name: "ok/inventory_with_lookup", lookup: staticLookup{13: {{ID: 1, Name: "All"}, {ID: 9, Name: "Noncompliant iOS"}}},
			req: post(sample(t, "jamf-computer-inventory-completed.json"), basic), status: 200,
			reports: []string{"mac-13 noncompliant jamf mdm:jamf"}, result: Result{Event: EventComputerInventoryCompleted, Applied: 1}},
		{name: "ok/checkin_with_lookup_compliant", lookup: staticLookup{13: {{ID: 1, Name: "All"}}},
			req: post(sample(t, "jamf-computer-checkin.json"), basic), status: 200,
			reports: []string{"mac-13 compliant jamf mdm:jamf"}, result: Result{Event: EventComputerCheckIn, Applied: 1}},
		{name: "ok/unenrolled_is_unknown", req: post(sample(t, "jamf-mobile-unenrolled.json"), basic), status: 200,
			reports: []string{"ipad-77 unknown jamf mdm:jamf"}, result: Result{Event: EventMobileDeviceUnEnrolled, Applied: 1}},
		{name: "ignored/inventory_without_lookup", req: post(sample(t, "jamf-computer-inventory-completed.json"), basic), status: 202,
			result: Result{Event: EventComputerInventoryCompleted, Ignored: "inventory event carries no group membership and no Jamf API lookup is configured"}},
		{name: "ignored/unwatched_group", req: post(strings.Replace(sample(t, "jamf-smartgroup-computer-membership-change.json"), `"jssid": 42`, `"jssid": 43`, 1), basic),
			status: 202, result: Result{Event: EventSmartGroupComputerChange, Ignored: "smart group is not a noncompliant group"}},
		{name: "ignored/other_event", req: post(sample(t, "jamf-jss-startup.json"), basic), status: 202,
			result: Result{Event: "JSSStartup", Ignored: "event not used for posture"}},
		{name: "reject/no_auth", req: post(sample(t, "jamf-mobile-unenrolled.json"), nil), status: 401, reason: mdm.RejectUnauthorized},
		{name: "reject/wrong_password", req: post(sample(t, "jamf-mobile-unenrolled.json"), func(r *http.Request) { r.SetBasicAuth(user, pass+"x") }),
			status: 401, reason: mdm.RejectUnauthorized},
		{name: "reject/wrong_token", req: post(sample(t, "jamf-mobile-unenrolled.json"), func(r *http.Request) { r.Header.Set("X-Hardbound-Token", "nope") }),
			status: 401, reason: mdm.RejectUnauthorized},
		{name: "reject/xml", req: func() *http.Request {
			r := post("<webhook/>", basic)
			r.Header.Set("Content-Type", "text/xml")
			return r
		}(), status: 415, reason: mdm.RejectMalformed},
		{name: "reject/malformed", req: post(`{"webhook":`, basic), status: 400, reason: mdm.RejectMalformed},
		{name: "reject/no_event_name", req: post(`{"webhook":{"id":1},"event":{}}`, basic), status: 400, reason: mdm.RejectMalformed},
		{name: "reject/too_large", req: post(`{"x":"`+strings.Repeat("a", DefaultMaxBody)+`"}`, basic), status: 413, reason: mdm.RejectTooLarge},
		{name: "reject/unknown_device", req: post(strings.ReplaceAll(strings.ReplaceAll(sample(t, "jamf-mobile-unenrolled.json"), "F9FXK1ZZHG7F", "NOPE"), "00008030-001A2B3C4D5E802E", "NOPE"), basic),
			status: 404, reason: mdm.RejectUnknownDevice},
		{name: "reject/lookup_failure", lookup: staticLookup{}, req: post(strings.Replace(sample(t, "jamf-computer-inventory-completed.json"), `"jssID": 13`, `"jssID": 999`, 1), basic),
			status: 502, reason: mdm.RejectInternal},
		{name: "reject/method", req: httptest.NewRequest(http.MethodGet, "/", nil), status: 405, reason: mdm.RejectMethod},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, u, a, m := newHandler(t, tc.lookup)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, tc.req)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			got := u.Reports()
			slices.Sort(got)
			if !slices.Equal(got, tc.reports) {
				t.Fatalf("reports %q, want %q", got, tc.reports)
			}
			if tc.reason != "" {
				var eb mdm.ErrorBody
				if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil || eb.Error != tc.reason {
					t.Fatalf("body %s, want error %q", rec.Body, tc.reason)
				}
				if r := a.Reasons(); len(r) != 1 || !strings.HasSuffix(r[0], ":"+tc.reason) {
					t.Fatalf("audit %q", r)
				}
				if r := m.Rejects(); !slices.Equal(r, []string{"jamf:" + tc.reason}) {
					t.Fatalf("reject metrics %q", r)
				}
				return
			}
			var res Result
			if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil || res != tc.result {
				t.Fatalf("result %s, want %+v", rec.Body, tc.result)
			}
			if n := len(m.Changes()); n != len(tc.reports) {
				t.Fatalf("%d posture change metrics, want %d", n, len(tc.reports))
			}
		})
	}
}

func TestNewRejectsWeakConfig(t *testing.T) {
	t.Parallel()
	u := mdmtest.NewUpdater(nil)
	for name, cfg := range map[string]Config{
		"no_auth":        {NoncompliantGroups: []string{"1"}, Updater: u},
		"short_password": {Username: "u", Password: "short", NoncompliantGroups: []string{"1"}, Updater: u},
		"short_token":    {TokenHeader: "X-T", Token: "short", NoncompliantGroups: []string{"1"}, Updater: u},
		"no_groups":      {Username: "u", Password: pass, Updater: u},
		"no_updater":     {Username: "u", Password: pass, NoncompliantGroups: []string{"1"}},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzParsePayload(f *testing.F) {
	for _, n := range []string{
		"jamf-computer-inventory-completed.json", "jamf-computer-checkin.json",
		"jamf-smartgroup-computer-membership-change.json", "jamf-smartgroup-mobile-membership-change.json",
		"jamf-mobile-unenrolled.json", "jamf-jss-startup.json",
	} {
		f.Add([]byte(sample(f, n)))
	}
	f.Add([]byte(`{"webhook":{"webhookEvent":"SmartGroupComputerMembershipChange","id":"7"},"event":{"jssid":"42","groupAddedDevicesIds":["1"],"groupAddedDevices":[1,null,{"id":2}]}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := ParsePayload(body)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error not ErrMalformed: %v", err)
			}
			return
		}
		if p.Event == "" || (p.Device != nil && p.Group != nil) {
			t.Fatalf("inconsistent payload %+v", p)
		}
		if p.Group != nil && len(p.Group.Added)+len(p.Group.Removed) > maxDevicesPerEvent {
			t.Fatal("device bound exceeded")
		}
	})
}
