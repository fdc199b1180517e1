package admin_test

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"hardbound/admin"
	"hardbound/store"
)

// generic decodes JSON into maps and slices, so two answers compare by
// field names and values alone.
func generic(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%v in %s", err, b)
	}
	return v
}

func recordJSON(t *testing.T, v any, drop ...string) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	g := generic(t, b)
	for _, k := range drop {
		delete(g.(map[string]any), k)
	}
	return g
}

// TestAnswersKeepTheRecordsShape: every answer made of a record has the
// record's JSON field names and values (a listed certificate without its
// DER), so API clients see what they saw when the records were served
// as they are.
func TestAnswersKeepTheRecordsShape(t *testing.T) {
	t.Parallel()
	e, d := newEnv(t, nil)
	now := time.Now().UTC().Truncate(time.Second)
	dev := &store.Device{V: store.RecordVersion, ID: "dev-full", Platform: "apple", Profile: "corp", Status: store.DeviceQuarantined,
		Posture: store.Posture{State: store.ComplianceNoncompliant, Source: "jamf", UpdatedAt: now},
		Groups:  []string{"a", "b"}, Aliases: map[string]string{"serial": "C02X"}, CreatedAt: now, UpdatedAt: now}
	if err := e.st.PutDevice(e.ctx, dev); err != nil {
		t.Fatal(err)
	}
	sess := &store.Session{V: store.RecordVersion, NAS: "sw1", NASAddr: "192.0.2.1", AcctSessionID: "s-1", DeviceID: "dev-1",
		CertSHA256: store.HashChallenge("cert"), UserName: "u", CallingStationID: "aa-bb", CalledStationID: "cc-dd",
		NASIdentifier: "sw1", NASIPAddress: "192.0.2.1", NASPort: 7, FramedIP: "10.0.0.7", StartedAt: now, UpdatedAt: now,
		StoppedAt: now, InputOctets: 1, OutputOctets: 2, TerminateCause: 3}
	if err := e.st.PutSession(e.ctx, sess); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.RevokeCert(e.ctx, d.Binding.Serial, 1, "admin:ops"); err != nil {
		t.Fatal(err)
	}
	cert, err := e.st.GetCertBySerial(e.ctx, d.Binding.Serial)
	if err != nil || len(cert.DER) == 0 || cert.Revoked == nil {
		t.Fatalf("stored cert %+v, %v", cert, err)
	}
	att, err := e.st.GetAttestation(e.ctx, cert.AttestationID)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := e.st.TailAudit(e.ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	vr, err := e.st.VerifyAudit(e.ctx)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, path string
		answer     func(any) any // the record(s) within the answer
		want       any
	}{
		{"device_in_list", "/api/v1/devices?status=quarantined", item0, recordJSON(t, dev)},
		{"device_show", "/api/v1/devices/dev-full", field("device"), recordJSON(t, dev)},
		{"cert_in_list_without_der", "/api/v1/certs?device=dev-1", item0, recordJSON(t, cert, "der")},
		{"cert_show_with_der", "/api/v1/certs/" + d.Binding.Serial, same, recordJSON(t, cert)},
		{"attestation_show", "/api/v1/attestations/" + cert.AttestationID, same, recordJSON(t, att)},
		{"session_in_list", "/api/v1/sessions?all=true", item0, recordJSON(t, sess)},
		{"audit_tail", "/api/v1/audit?n=1", item0, recordJSON(t, evs[len(evs)-1])},
		{"audit_verify", "/api/v1/audit/verify", same, recordJSON(t, vr)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := e.call(t, "GET", tc.path, token, "")
			if code != 200 {
				t.Fatalf("GET %s: HTTP %d %s", tc.path, code, body)
			}
			if got := tc.answer(generic(t, []byte(body))); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("GET %s:\n got  %v\n want %v", tc.path, got, tc.want)
			}
		})
	}

	// And the answers decode into the API types.
	var list admin.List[admin.Cert]
	if code, body := e.call(t, "GET", "/api/v1/certs?revoked=true", token, ""); code != 200 || json.Unmarshal([]byte(body), &list) != nil {
		t.Fatalf("cert list: HTTP %d %s", code, body)
	}
	if len(list.Items) != 1 || list.Items[0].Serial != d.Binding.Serial || list.Items[0].Revoked == nil ||
		list.Items[0].Revoked.Reason != 1 || list.Items[0].SHA256 != cert.SHA256 {
		t.Errorf("cert list = %+v", list)
	}
}

func item0(v any) any {
	items, _ := v.(map[string]any)["items"].([]any)
	if len(items) == 0 {
		return nil
	}
	return items[0]
}

func field(name string) func(any) any {
	return func(v any) any { return v.(map[string]any)[name] }
}

func same(v any) any { return v }
