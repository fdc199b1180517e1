package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"hardbound/cmd/hardbound/internal/node"
	"hardbound/enroll/devbind"
	"hardbound/enroll/scep/sceptest"
	"hardbound/posture/mdm"
	"hardbound/posture/mdm/intune"
	"hardbound/posture/mdm/jamf"
	"hardbound/store"
	"hardbound/store/config"
)

const (
	e2eWebhookSecret = "e2e-webhook-secret-0123456789abcdef"
	e2eJamfUser      = "jamf-webhook"
	e2eJamfPassword  = "jamf-webhook-password-e2e"
	e2eQuarVLAN      = "666"
)

// mdmProfiles: "default" rejects noncompliant devices, "quar" admits them
// into the quarantine VLAN.
func mdmProfiles(cfg *node.Config) {
	cfg.Profiles = []node.ProfileConfig{
		{Name: "default"},
		{Name: "quar", Noncompliant: "quarantine", QuarantineVLAN: e2eQuarVLAN},
	}
}

// postWebhook signs body at ts with secret and posts it to /mdm/webhook.
func postWebhook(t *testing.T, in *instance, hc *http.Client, secret string, ts time.Time, body []byte) (int, []byte) {
	t.Helper()
	tsv, sig := mdm.Sign([]byte(secret), ts, body)
	return postSigned(t, in, hc, tsv, sig, body)
}

func postSigned(t *testing.T, in *instance, hc *http.Client, ts, sig string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "https://"+in.Addr("enroll-https")+"/mdm/webhook", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(mdm.DefaultTimestampHeader, ts)
	req.Header.Set(mdm.DefaultSignatureHeader, sig)
	return httpDo(t, hc, req)
}

// jamfGroupChange is a SmartGroupComputerMembershipChange as Jamf Pro
// sends it (testdata/mdm/jamf-smartgroup-computer-membership-change.json).
func jamfGroupChange(groupID int, added, removed []int) []byte {
	b, _ := json.Marshal(map[string]any{
		"event": map[string]any{
			"computer": true, "groupAddedDevices": []any{}, "groupAddedDevicesIds": added,
			"groupRemovedDevices": []any{}, "groupRemovedDevicesIds": removed,
			"jssid": groupID, "name": "Noncompliant - FileVault off", "smartGroup": true,
		},
		"webhook": map[string]any{
			"eventTimestamp": time.Now().UnixMilli(), "id": 3, "name": "Noncompliant computers",
			"webhookEvent": "SmartGroupComputerMembershipChange",
		},
	})
	return b
}

func postJamf(t *testing.T, in *instance, hc *http.Client, user, pass string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "https://"+in.Addr("enroll-https")+"/mdm/jamf/webhook", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(user, pass)
	return httpDo(t, hc, req)
}

// fakeIntune serves Entra ID's token endpoint and Graph's managedDevices
// for one tenant; states maps managedDevice id to complianceState.
type fakeIntune struct {
	srv *httptest.Server

	mu     sync.Mutex
	states map[string]string
	serial map[string]string
	bad    []string
	// SCEP validation service (ScepRequestValidationFEService).
	validated, succeeded, failed []string // transaction ids
}

const (
	e2eTenant       = "contoso-e2e-tenant"
	e2eClientID     = "11111111-aaaa-bbbb-cccc-222222222222"
	e2eClientSecret = "intune-client-secret-e2e"
	e2eAccessToken  = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.e2e-token.sig"
)

func newFakeIntune(t *testing.T) *fakeIntune {
	t.Helper()
	f := &fakeIntune{states: map[string]string{}, serial: map[string]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /"+e2eTenant+"/oauth2/v2.0/token", func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "client_credentials" ||
			r.PostForm.Get("client_id") != e2eClientID || r.PostForm.Get("client_secret") != e2eClientSecret {
			f.fail(fmt.Sprintf("token request %v", r.PostForm))
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"invalid_client"}`))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":%q}`, e2eAccessToken)
	})
	mux.HandleFunc("GET /v1.0/deviceManagement/managedDevices", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+e2eAccessToken {
			f.fail("graph call without the bearer token")
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		f.mu.Lock()
		var page struct {
			Value []map[string]string `json:"value"`
		}
		for id, st := range f.states {
			page.Value = append(page.Value, map[string]string{"id": id, "azureADDeviceId": "aad-" + id, "serialNumber": f.serial[id], "complianceState": st,
				"operatingSystem": "Windows", "managementState": "managed", "deviceCategoryDisplayName": "Kiosk"})
		}
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(page)
	})
	// Service discovery and the SCEP validation service Intune's SCEP
	// challenges are checked with.
	mux.HandleFunc("GET /v1.0/servicePrincipals/appId=0000000a-0000-0000-c000-000000000000/endpoints", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+e2eAccessToken {
			f.fail("discovery without the bearer token")
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"value": [{"capability": "ScepRequestValidation", "providerName": "ScepRequestValidationFEService", "uri": %q}]}`, f.srv.URL+"/scepfe")
	})
	mux.HandleFunc("POST /scepfe/ScepActions/{action}", func(w http.ResponseWriter, r *http.Request) {
		var body map[string]struct {
			TransactionID      string `json:"transactionId"`
			CertificateRequest string `json:"certificateRequest"`
		}
		if r.Header.Get("Authorization") != "Bearer "+e2eAccessToken || json.NewDecoder(r.Body).Decode(&body) != nil {
			f.fail("bad SCEP validation call")
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		f.mu.Lock()
		defer f.mu.Unlock()
		switch r.PathValue("action") {
		case "validateRequest":
			req := body["request"]
			der, err := base64.StdEncoding.DecodeString(req.CertificateRequest)
			csr, perr := x509.ParseCertificateRequest(der)
			if err != nil || perr != nil || req.TransactionID == "" {
				f.bad = append(f.bad, "validateRequest without a CSR or transaction id")
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			// Intune knows the devices it handed a challenge to.
			for _, u := range csr.URIs {
				// url.Parse lower-cases the scheme.
				if id, ok := strings.CutPrefix(u.String(), "intunedeviceid://"); ok && f.states[id] != "" {
					f.validated = append(f.validated, req.TransactionID)
					_, _ = w.Write([]byte(`{"code": "Success", "errorDescription": ""}`))
					return
				}
			}
			_, _ = w.Write([]byte(`{"code": "ChallengeValidationFailed", "errorDescription": "unknown device"}`))
		case "successNotification":
			f.succeeded = append(f.succeeded, body["notification"].TransactionID)
			_, _ = w.Write([]byte(`{"code": "Success", "errorDescription": ""}`))
		case "failureNotification":
			f.failed = append(f.failed, body["notification"].TransactionID)
			_, _ = w.Write([]byte(`{"code": "Success", "errorDescription": ""}`))
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		f.srv.Close()
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, b := range f.bad {
			t.Errorf("fake Intune: %s", b)
		}
	})
	return f
}

func (f *fakeIntune) fail(s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.bad) < 10 {
		f.bad = append(f.bad, s)
	}
}

func (f *fakeIntune) set(id, serial, state string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.states[id] = state
	f.serial[id] = serial
}

// TestE2EMDMNoncompliance: for each connector, a device in good standing
// authenticates; the MDM reports it noncompliant; the next authentication
// is rejected as noncompliant under the default profile and admitted into
// the quarantine VLAN under a quarantining profile. Devices are found
// through their MDM aliases.
func TestE2EMDMNoncompliance(t *testing.T) {
	t.Parallel()
	type connector struct {
		name      string
		configure func(t *testing.T, cfg *node.Config) any
		// aliases returns the MDM identities of device i (0: reject, 1: quar).
		aliases func(i int) map[string]string
		// report makes the MDM say devices are compliant or noncompliant.
		report func(t *testing.T, in *instance, state any, ids []string, compliant bool)
	}
	connectors := []connector{
		{
			name: "signed_webhook",
			configure: func(t *testing.T, cfg *node.Config) any {
				cfg.MDM.Webhook.SecretFile = writeSecret(t, "webhook.secret", e2eWebhookSecret)
				return nil
			},
			aliases: func(i int) map[string]string {
				return map[string]string{mdm.KindSerial: fmt.Sprintf("C02WEBHOOK%d", i)}
			},
			report: func(t *testing.T, in *instance, _ any, ids []string, compliant bool) {
				hc := in.httpsClient(t)
				word := map[bool]string{true: "compliant", false: "noncompliant"}[compliant]
				for i := range ids {
					body := fmt.Appendf(nil, `{"serial": "C02WEBHOOK%d", "state": %q, "reason": "FileVault"}`, i, word)
					if status, b := postWebhook(t, in, hc, e2eWebhookSecret, time.Now(), body); status != http.StatusOK {
						t.Fatalf("webhook: HTTP %d %s", status, b)
					}
				}
			},
		},
		{
			name: "jamf_pro_webhook",
			configure: func(t *testing.T, cfg *node.Config) any {
				cfg.MDM.Jamf = jamf.FileConfig{Username: e2eJamfUser, PasswordFile: writeSecret(t, "jamf.password", e2eJamfPassword),
					NoncompliantGroups: []string{"42"}}
				return nil
			},
			aliases: func(i int) map[string]string {
				return map[string]string{mdm.KindJamfComputerID: fmt.Sprint(13 + i), mdm.KindSerial: fmt.Sprintf("C02JAMF%d", i)}
			},
			report: func(t *testing.T, in *instance, _ any, ids []string, compliant bool) {
				// Joining smart group 42 is noncompliance; leaving it, recovery.
				change := jamfGroupChange(42, []int{13, 14}, nil)
				if compliant {
					change = jamfGroupChange(42, nil, []int{13, 14})
				}
				status, b := postJamf(t, in, in.httpsClient(t), e2eJamfUser, e2eJamfPassword, change)
				if status != http.StatusOK {
					t.Fatalf("jamf webhook: HTTP %d %s", status, b)
				}
				var res struct{ Applied, Unknown int }
				if err := json.Unmarshal(b, &res); err != nil || res.Applied != len(ids) || res.Unknown != 0 {
					t.Fatalf("jamf webhook answered %s", b)
				}
			},
		},
		{
			name: "intune_poller",
			configure: func(t *testing.T, cfg *node.Config) any {
				f := newFakeIntune(t)
				for i := range 2 {
					f.set(fmt.Sprintf("intune-e2e-%d", i), fmt.Sprintf("PF3INTUNE%d", i), "compliant")
				}
				cfg.MDM.Intune = intune.FileConfig{TenantID: e2eTenant, ClientID: e2eClientID,
					ClientSecretFile: writeSecret(t, "intune.secret", e2eClientSecret),
					PollInterval:     config.Duration(200 * time.Millisecond), LoginURL: f.srv.URL, GraphURL: f.srv.URL}
				return f
			},
			aliases: func(i int) map[string]string {
				return map[string]string{mdm.KindIntuneID: fmt.Sprintf("intune-e2e-%d", i)}
			},
			report: func(t *testing.T, in *instance, state any, ids []string, compliant bool) {
				f := state.(*fakeIntune)
				word := map[bool]string{true: "compliant", false: "noncompliant"}[compliant]
				for i := range ids {
					f.set(fmt.Sprintf("intune-e2e-%d", i), fmt.Sprintf("PF3INTUNE%d", i), word)
				}
			},
		},
	}
	for _, c := range connectors {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var state any
			in := startE2E(t, func(cfg *node.Config) {
				mdmProfiles(cfg)
				state = c.configure(t, cfg)
			})
			devs := []*devbind.Device{
				in.bind(t, devbind.Request{DeviceID: c.name + "-reject", Posture: store.ComplianceCompliant, Aliases: c.aliases(0)}),
				in.bind(t, devbind.Request{DeviceID: c.name + "-quar", Profile: "quar", Posture: store.ComplianceCompliant, Aliases: c.aliases(1)}),
			}
			var ids []string
			for _, d := range devs {
				ids = append(ids, d.ID)
			}
			nas := in.nasClient(t, "", nil)
			for _, d := range devs {
				if res := in.mustAccept(t, nas, d.Certificate); res.VLAN != "" {
					t.Fatalf("%s in good standing got VLAN %q", d.ID, res.VLAN)
				}
			}

			c.report(t, in, state, ids, false)
			for _, id := range ids {
				eventually(t, 15*time.Second, id+" to be noncompliant", func() bool {
					return in.device(t, id).Posture.State == store.ComplianceNoncompliant
				})
				in.waitAuditEvent(t, "posture.set", id, "ok", "noncompliant")
			}
			source := strings.SplitN(c.name, "_", 2)[0] // webhook, jamf, intune
			if c.name == "signed_webhook" {
				source = "webhook"
			}
			if got := metricSum(t, in.scrape(t), "hardbound_posture_mdm_reports_total", `source="`+source+`"`, `state="noncompliant"`); got < 2 {
				t.Errorf("hardbound_posture_mdm_reports_total{source=%q,state=noncompliant} = %v, want >= 2", source, got)
			}
			in.mustReject(t, nas, devs[0].Certificate, devs[0].ID, "noncompliant")
			res := in.mustAccept(t, nas, devs[1].Certificate)
			if res.VLAN != e2eQuarVLAN {
				t.Fatalf("quarantining profile: VLAN %q, want %q", res.VLAN, e2eQuarVLAN)
			}

			// Recovery: the MDM reports compliance again; both are back in
			// good standing.
			c.report(t, in, state, ids, true)
			for _, id := range ids {
				eventually(t, 15*time.Second, id+" to be compliant again", func() bool {
					return in.device(t, id).Posture.State == store.ComplianceCompliant
				})
			}
			for _, d := range devs {
				if res := in.mustAccept(t, nas, d.Certificate); res.VLAN != "" {
					t.Fatalf("%s recovered but got VLAN %q", d.ID, res.VLAN)
				}
			}
		})
	}
}

// TestE2EMDMIntuneRefreshKeepsPostureFresh: with a posture max age, the
// Intune poller re-reports unchanged states often enough that a compliant
// device never turns posture_stale.
func TestE2EMDMIntuneRefreshKeepsPostureFresh(t *testing.T) {
	t.Parallel()
	const maxAge = 2 * time.Second
	f := newFakeIntune(t)
	f.set("intune-fresh-1", "PF3FRESH1", "compliant")
	in := startE2E(t, func(cfg *node.Config) {
		cfg.Profiles = []node.ProfileConfig{{Name: "default"}, {Name: "fresh", PostureMaxAge: config.Duration(maxAge)}}
		cfg.MDM.Intune = intune.FileConfig{TenantID: e2eTenant, ClientID: e2eClientID,
			ClientSecretFile: writeSecret(t, "intune.secret", e2eClientSecret),
			PollInterval:     config.Duration(200 * time.Millisecond), LoginURL: f.srv.URL, GraphURL: f.srv.URL}
	})
	dev := in.bind(t, devbind.Request{DeviceID: "intune-fresh-1", Profile: "fresh", Aliases: map[string]string{mdm.KindSerial: "PF3FRESH1"}})
	eventually(t, 15*time.Second, "Intune to report the device compliant", func() bool {
		d := in.device(t, dev.ID)
		return d.Posture.State == store.ComplianceCompliant && d.Posture.Source == "intune"
	})
	nas := in.nasClient(t, "", nil)
	in.mustAccept(t, nas, dev.Certificate)
	first := in.device(t, dev.ID).Posture.UpdatedAt
	time.Sleep(maxAge + 500*time.Millisecond)
	if d := in.device(t, dev.ID); !d.Posture.UpdatedAt.After(first) {
		t.Fatalf("Intune did not refresh the unchanged report within the max age (updated %v, then %v)", first, d.Posture.UpdatedAt)
	}
	in.mustAccept(t, nas, dev.Certificate)
}

// TestE2EMDMPostureStale: a profile with a posture max age admits a device
// just reported compliant (capping Session-Timeout at the max age) and
// rejects it as posture_stale once the report is older.
func TestE2EMDMPostureStale(t *testing.T) {
	t.Parallel()
	const maxAge = 2 * time.Second
	in := startE2E(t, func(cfg *node.Config) {
		cfg.MDM.Webhook.SecretFile = writeSecret(t, "webhook.secret", e2eWebhookSecret)
		cfg.Profiles = []node.ProfileConfig{{Name: "default"}, {Name: "fresh", PostureMaxAge: config.Duration(maxAge)}}
	})
	dev := in.bind(t, devbind.Request{DeviceID: "stale-1", Profile: "fresh", Aliases: map[string]string{mdm.KindUDID: "00008030-STALE1"}})
	nas := in.nasClient(t, "", nil)
	in.mustReject(t, nas, dev.Certificate, dev.ID, "posture_unknown")

	body := []byte(`{"udid": "00008030-STALE1", "state": "compliant"}`)
	if status, b := postWebhook(t, in, in.httpsClient(t), e2eWebhookSecret, time.Now(), body); status != http.StatusOK {
		t.Fatalf("webhook: HTTP %d %s", status, b)
	}
	reported := in.device(t, dev.ID).Posture.UpdatedAt
	res := in.authenticate(t, nas, dev.Certificate)
	if time.Since(reported) < maxAge {
		// Only meaningful while the report is fresh; a very slow box may
		// already be past it, which the stale check below covers.
		if !res.Accepted || res.SessionTimeout <= 0 || res.SessionTimeout > maxAge {
			t.Fatalf("fresh posture: accepted %v, Session-Timeout %v (want ≤ %v)", res.Accepted, res.SessionTimeout, maxAge)
		}
	}
	// Wait out the max age, then the same device is stale.
	time.Sleep(time.Until(reported.Add(maxAge + 100*time.Millisecond)))
	in.mustReject(t, nas, dev.Certificate, dev.ID, "posture_stale")
}

// TestE2EMDMBadInput: refused webhook requests are 4xx, change nothing and
// are audited with their reason.
func TestE2EMDMBadInput(t *testing.T) {
	t.Parallel()
	in := startE2E(t, func(cfg *node.Config) {
		cfg.MDM.Webhook.SecretFile = writeSecret(t, "webhook.secret", e2eWebhookSecret)
		cfg.MDM.Jamf = jamf.FileConfig{Username: e2eJamfUser, PasswordFile: writeSecret(t, "jamf.password", e2eJamfPassword),
			NoncompliantGroups: []string{"42"}}
	})
	dev := in.bind(t, devbind.Request{DeviceID: "bad-input-1", Posture: store.ComplianceCompliant,
		Aliases: map[string]string{mdm.KindSerial: "C02BADINPUT", mdm.KindJamfComputerID: "77"}})
	hc := in.httpsClient(t)
	good := []byte(`{"serial": "C02BADINPUT", "state": "noncompliant"}`)

	// A valid report first, so that its replay can be tried.
	replayTS, replaySig := mdm.Sign([]byte(e2eWebhookSecret), time.Now(), []byte(`{"serial": "C02BADINPUT", "state": "compliant"}`))
	if status, b := postSigned(t, in, hc, replayTS, replaySig, []byte(`{"serial": "C02BADINPUT", "state": "compliant"}`)); status != http.StatusOK {
		t.Fatalf("valid report: HTTP %d %s", status, b)
	}

	tests := []struct {
		name       string
		send       func() (int, []byte)
		wantStatus int
		wantReason string
		wantResult string
	}{
		{"bad_signature", func() (int, []byte) {
			return postWebhook(t, in, hc, "not-the-webhook-secret-at-all-0000", time.Now(), good)
		}, http.StatusUnauthorized, mdm.RejectBadSignature, "denied"},
		{"old_timestamp", func() (int, []byte) {
			return postWebhook(t, in, hc, e2eWebhookSecret, time.Now().Add(-time.Hour), good)
		}, http.StatusUnauthorized, mdm.RejectStale, "denied"},
		{"replayed", func() (int, []byte) {
			return postSigned(t, in, hc, replayTS, replaySig, []byte(`{"serial": "C02BADINPUT", "state": "compliant"}`))
		}, http.StatusConflict, mdm.RejectReplayed, "denied"},
		{"unknown_device", func() (int, []byte) {
			return postWebhook(t, in, hc, e2eWebhookSecret, time.Now(), []byte(`{"serial": "NO-SUCH-SERIAL", "state": "noncompliant"}`))
		}, http.StatusNotFound, mdm.RejectUnknownDevice, "reject"},
		{"malformed_json", func() (int, []byte) {
			return postWebhook(t, in, hc, e2eWebhookSecret, time.Now(), []byte(`{"serial": "C02BADINPUT", "state": `))
		}, http.StatusBadRequest, mdm.RejectMalformed, "reject"},
		{"bad_state", func() (int, []byte) {
			return postWebhook(t, in, hc, e2eWebhookSecret, time.Now(), []byte(`{"serial": "C02BADINPUT", "state": "fine"}`))
		}, http.StatusBadRequest, mdm.RejectBadState, "reject"},
		{"unsigned", func() (int, []byte) { return postSigned(t, in, hc, "", "", good) }, http.StatusUnauthorized, mdm.RejectUnauthorized, "denied"},
		{"jamf_wrong_password", func() (int, []byte) {
			return postJamf(t, in, hc, e2eJamfUser, "wrong-password-123", jamfGroupChange(42, []int{77}, nil))
		}, http.StatusUnauthorized, mdm.RejectUnauthorized, "denied"},
		{"jamf_malformed", func() (int, []byte) {
			return postJamf(t, in, hc, e2eJamfUser, e2eJamfPassword, []byte(`{"webhook": {"webhookEvent": "SmartGroupComputerMembershipChange"}, "event": [`))
		}, http.StatusBadRequest, mdm.RejectMalformed, "reject"},
		{"jamf_unknown_device", func() (int, []byte) {
			return postJamf(t, in, hc, e2eJamfUser, e2eJamfPassword, jamfGroupChange(42, []int{9999}, nil))
		}, http.StatusNotFound, mdm.RejectUnknownDevice, "reject"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := in.device(t, dev.ID)
			n := in.countAudit(t, "posture.webhook", "", tt.wantResult, tt.wantReason)
			status, b := tt.send()
			if status != tt.wantStatus {
				t.Fatalf("HTTP %d %s, want %d", status, b, tt.wantStatus)
			}
			var eb mdm.ErrorBody
			if err := json.Unmarshal(b, &eb); err != nil || eb.Error != tt.wantReason {
				t.Fatalf("error body %s, want error %q", b, tt.wantReason)
			}
			after := in.device(t, dev.ID)
			if after.Posture.State != before.Posture.State || after.Posture.Source != before.Posture.Source ||
				!after.Posture.UpdatedAt.Equal(before.Posture.UpdatedAt) || after.Status != before.Status {
				t.Fatalf("device changed: %+v -> %+v", before.Posture, after.Posture)
			}
			in.waitAudit(t, "posture.webhook "+tt.wantResult+" "+tt.wantReason, func() bool {
				return in.countAudit(t, "posture.webhook", "", tt.wantResult, tt.wantReason) > n
			})
			source := "webhook"
			if strings.HasPrefix(tt.name, "jamf") {
				source = "jamf"
			}
			if got := metricSum(t, in.scrape(t), "hardbound_posture_mdm_rejects_total", `source="`+source+`"`, `reason="`+tt.wantReason+`"`); got < 1 {
				t.Errorf("hardbound_posture_mdm_rejects_total{source=%q,reason=%q} = %v, want >= 1", source, tt.wantReason, got)
			}
		})
	}
	if d := in.device(t, dev.ID); d.Posture.State != store.ComplianceCompliant {
		t.Fatalf("posture %s after refused requests, want compliant", d.Posture.State)
	}
}

// TestE2EJamfEndToEnd: a Jamf-managed Mac as it really arrives. Jamf
// fetches a dynamic SCEP challenge (Basic auth), the device enrolls over
// SCEP with its serial as CN (bound at redemption, alias serial), joins the
// network under a profile that admits unattested certificates, and a smart
// group membership change naming its serial makes it noncompliant.
func TestE2EJamfEndToEnd(t *testing.T) {
	t.Parallel()
	const serial = "C02JAMFE2E01"
	const group = "Noncompliant - FileVault off"
	in := startE2E(t, func(cfg *node.Config) {
		cfg.Profiles = []node.ProfileConfig{
			{Name: "default"},
			{Name: "jamf", Formats: []string{"apple", "none"}, SCEP: node.SCEPProfileConfig{Identity: "cn", Alias: mdm.KindSerial, Platform: "apple"}},
		}
		cfg.MDM.Jamf = jamf.FileConfig{Username: e2eJamfUser, PasswordFile: writeSecret(t, "jamf.password", e2eJamfPassword),
			NoncompliantGroups: []string{group}, ChallengeProfile: "jamf"}
	})
	ctx := e2eContext(t)
	hc := in.httpsClient(t)

	// Jamf's SCEPChallenge webhook: wrong credentials first, then right.
	challengeReq := func(pass string) *http.Request {
		body := `{"webhook": {"id": 1, "name": "hardbound", "webhookEvent": "SCEPChallenge"}, "event": {"payloadIdentifier": "com.example.wifi.scep"}}`
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+in.Addr("enroll-https")+"/mdm/jamf/challenge", bytes.NewReader([]byte(body)))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth(e2eJamfUser, pass)
		return req
	}
	if status, _ := httpDo(t, hc, challengeReq("wrong-password-xyz")); status != http.StatusUnauthorized {
		t.Fatalf("challenge with a wrong password: HTTP %d, want 401", status)
	}
	status, challenge := httpDo(t, hc, challengeReq(e2eJamfPassword))
	if status != http.StatusOK || len(challenge) < 32 {
		t.Fatalf("challenge: HTTP %d %q", status, challenge)
	}

	// Jamf's challenge binds the device at redemption; the inventory says
	// the Mac is ours and in the jamf profile.
	in.cliOK(t, "device", "add", "--platform", "macos", "--serial", serial, "--profile", "jamf")
	key, err := sceptest.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	sc := &sceptest.Client{URL: "http://" + in.Addr("enroll-http") + "/scep/jamf", HTTP: &http.Client{Timeout: 20 * time.Second}}
	leaf, err := sc.Enroll(ctx, sceptest.Request{Key: key, Challenge: string(challenge), Subject: pkix.Name{CommonName: serial}})
	if err != nil {
		t.Fatalf("SCEP with the Jamf challenge: %v", err)
	}
	d := in.device(t, serial)
	if d.Profile != "jamf" || d.Aliases[mdm.KindSerial] != serial {
		t.Fatalf("device after SCEP = profile %q aliases %v", d.Profile, d.Aliases)
	}
	cert := tls.Certificate{Certificate: [][]byte{leaf.Raw, in.ca.Issuing().Raw}, PrivateKey: key, Leaf: leaf}
	nas := in.nasClient(t, "", nil)
	in.mustAccept(t, nas, cert)

	change, _ := json.Marshal(map[string]any{
		"event": map[string]any{
			"computer": true, "groupAddedDevices": []any{map[string]any{"id": 101, "serialNumber": serial, "name": "Jane's MacBook"}},
			"groupAddedDevicesIds": []int{101}, "groupRemovedDevices": []any{}, "groupRemovedDevicesIds": []int{},
			"jssid": 7, "name": group, "smartGroup": true,
		},
		"webhook": map[string]any{"eventTimestamp": time.Now().UnixMilli(), "id": 4, "name": "FileVault", "webhookEvent": "SmartGroupComputerMembershipChange"},
	})
	if status, b := postJamf(t, in, hc, e2eJamfUser, e2eJamfPassword, change); status != http.StatusOK {
		t.Fatalf("jamf smart group webhook: HTTP %d %s", status, b)
	}
	if d := in.device(t, serial); d.Posture.State != store.ComplianceNoncompliant || d.Posture.Source != "jamf" {
		t.Fatalf("posture after the smart group change = %+v", d.Posture)
	}
	in.mustReject(t, nas, cert, serial, "noncompliant")
}

// TestE2EIntuneEndToEnd: an Intune-managed device as it really arrives.
// Intune's SCEP challenge is validated with Intune (validateRequest, then
// successNotification), the device is bound from its IntuneDeviceId SAN
// URI, the Graph poller reports its compliance under that id, and a change
// to noncompliant refuses it. An unknown device's request is refused by
// Intune and nothing is issued.
func TestE2EIntuneEndToEnd(t *testing.T) {
	t.Parallel()
	const intuneID = "8d7e6f5a-4b3c-2d1e-0f9a-8b7c6d5e4f3a"
	f := newFakeIntune(t)
	f.set(intuneID, "PF3E2EINTUNE", "compliant")
	in := startE2E(t, func(cfg *node.Config) {
		cfg.Profiles = []node.ProfileConfig{
			{Name: "default"},
			{Name: "intune", Formats: []string{"tpm", "none"}, SCEP: node.SCEPProfileConfig{Identity: "san_uri", URIPrefix: "IntuneDeviceId://",
				Alias: mdm.KindIntuneID, Intune: true, Platform: "windows"}},
		}
		cfg.MDM.Intune = intune.FileConfig{TenantID: e2eTenant, ClientID: e2eClientID,
			ClientSecretFile: writeSecret(t, "intune.secret", e2eClientSecret),
			PollInterval:     config.Duration(200 * time.Millisecond), LoginURL: f.srv.URL, GraphURL: f.srv.URL,
			// Intune's managed devices are the inventory: the device is
			// ours, in the profile its category maps to.
			Inventory: intune.InventoryFileConfig{Enabled: true, CategoryProfiles: []intune.CategoryProfile{{Category: "Kiosk", Profile: "intune"}}}}
	})
	ctx := e2eContext(t)
	eventually(t, 30*time.Second, "the Intune device in the inventory", func() bool {
		d, err := in.st.GetDevice(ctx, intuneID)
		return err == nil && d.Profile == "intune" && d.Source == "intune" && d.Platform == "windows"
	})
	sc := &sceptest.Client{URL: "http://" + in.Addr("enroll-http") + "/scep/intune", HTTP: &http.Client{Timeout: 20 * time.Second}}
	enroll := func(id string) (*x509.Certificate, *tls.Certificate, error) {
		key, err := sceptest.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse("IntuneDeviceId://" + id)
		leaf, err := sc.Enroll(ctx, sceptest.Request{Key: key, Challenge: "intune-opaque-challenge-" + id,
			Subject: pkix.Name{CommonName: "DESKTOP-E2E"}, URIs: []*url.URL{u}})
		if err != nil {
			return nil, nil, err
		}
		return leaf, &tls.Certificate{Certificate: [][]byte{leaf.Raw, in.ca.Issuing().Raw}, PrivateKey: key, Leaf: leaf}, nil
	}

	const unknown = "00000000-0000-0000-0000-00000000dead"
	if _, _, err := enroll(unknown); err == nil {
		t.Fatal("a request Intune refused was issued")
	}
	if _, err := in.st.GetDevice(ctx, unknown); !notFound(err) {
		t.Fatalf("a refused request left a device record: %v", err)
	}
	leaf, cert, err := enroll(intuneID)
	if err != nil {
		t.Fatalf("Intune-validated SCEP: %v", err)
	}
	f.mu.Lock()
	validated, succeeded := append([]string(nil), f.validated...), append([]string(nil), f.succeeded...)
	f.mu.Unlock()
	if len(validated) != 1 || len(succeeded) != 1 || validated[0] != succeeded[0] {
		t.Fatalf("Intune saw validateRequest %v and successNotification %v, want one each for the same transaction", validated, succeeded)
	}
	rec, err := in.st.GetCert(ctx, leaf)
	if err != nil || rec.DeviceID != intuneID || rec.Attested {
		t.Fatalf("binding = %+v, %v", rec, err)
	}
	if d := in.device(t, intuneID); d.Aliases[mdm.KindIntuneID] != intuneID || d.Profile != "intune" {
		t.Fatalf("device = profile %q aliases %v", d.Profile, d.Aliases)
	}

	eventually(t, 15*time.Second, "the poller to report the enrolled device compliant", func() bool {
		d := in.device(t, intuneID)
		return d.Posture.State == store.ComplianceCompliant && d.Posture.Source == "intune"
	})
	nas := in.nasClient(t, "", nil)
	in.mustAccept(t, nas, *cert)
	f.set(intuneID, "PF3E2EINTUNE", "noncompliant")
	eventually(t, 15*time.Second, "the poller to report the device noncompliant", func() bool {
		return in.device(t, intuneID).Posture.State == store.ComplianceNoncompliant
	})
	in.mustReject(t, nas, *cert, intuneID, "noncompliant")
}
