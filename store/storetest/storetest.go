// Package storetest is the conformance suite every store.Store
// implementation must pass: the Badger backend runs it in memory and on
// disk, and any fake store used by other packages' tests should run it too.
package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hardbound/store"
)

// Run runs the whole suite. open must return a new, empty store for each
// call; the suite closes it.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	t.Helper()
	suite := []struct {
		name string
		fn   func(t *testing.T, open func(t *testing.T) store.Store)
	}{
		{"devices", testDevices},
		{"aliases", testAliases},
		{"inventory_fields", testInventoryFields},
		{"device_paging_and_filters", testDevicePaging},
		{"issuance", testIssuance},
		{"issuance_atomicity", testIssuanceAtomicity},
		{"certs_listing", testCertListing},
		{"revocation", testRevocation},
		{"attestations", testAttestations},
		{"challenges", testChallenges},
		{"challenge_consumed_once_under_concurrency", testChallengeConcurrency},
		{"sessions", testSessions},
		{"close_nas_sessions", testCloseNASSessions},
		{"close_nas_sessions_in_batches", testCloseNASSessionsBatches},
		{"close_nas_sessions_of_one_nas_in_a_client", testCloseNASSessionsScope},
		{"nonces_are_claimed_once_until_they_expire", testNonces},
		{"nonces_claimed_once_under_concurrency", testNonceConcurrency},
		{"acme_accounts", testACMEAccounts},
		{"acme_account_thumbprint_claimed_once_under_concurrency", testACMEAccountConcurrency},
		{"acme_orders", testACMEOrders},
		{"acme_orders_bounded_per_account_and_pruned", testACMEOrderBounds},
		{"acme_orders_one_winner_under_concurrency", testACMEOrderConcurrency},
		{"acme_order_finalized_with_its_issuance", testACMEOrderIssuance},
		{"audit_chain", testAudit},
		{"audit_concurrent_appends_form_one_chain", testAuditConcurrency},
		{"audit_64_concurrent_callers_each_get_their_own_stored_event", testAuditCallersGetTheirEvents},
		{"audit_groups_are_appended_in_order_and_filled", testAuditGroups},
		{"audit_checkpoints", testAuditCheckpoints},
		{"audit_cursors", testAuditCursors},
		{"audit_prune", testAuditPrune},
		{"ticket_keys", testTicketKeys},
		{"ticket_keys_one_winner_under_concurrency", testTicketKeysConcurrency},
		{"documents", testDocuments},
		{"documents_newest_fetch_stays_under_concurrency", testDocumentsConcurrency},
		{"backup_restore", testBackupRestore},
		{"canceled_context", testCanceled},
		{"changes/devices", testChangesDevices},
		{"changes/issuance", testChangesIssuance},
		{"changes/revocation", testChangesRevocation},
		{"changes/attestation", testChangesAttestation},
		{"changes/quiet_writes_announce_nothing", testChangesQuietWrites},
		{"changes/commit_order_under_concurrency", testChangesOrder},
		{"changes/stop", testChangesStop},
		{"changes/restore_resets", testChangesRestore},
	}
	for _, tc := range suite {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open)
		})
	}
}

// newStore opens a store and closes it at the end of the test.
func newStore(t *testing.T, open func(t *testing.T) store.Store) store.Store {
	t.Helper()
	s := open(t)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

// base is a fixed, second-aligned instant so JSON round trips compare equal.
var base = time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)

func hashOf(s string) store.Hash { return sha256.Sum256([]byte(s)) }

// serialOf is a unique lower-case hex serial without leading zeros.
func serialOf(deviceID string, n int) string {
	h := hashOf(fmt.Sprintf("serial-%s-%d", deviceID, n))
	return "1" + h.String()[:16]
}

func device(id string) *store.Device {
	return &store.Device{
		ID:       id,
		Platform: "linux",
		Profile:  "corp",
		Status:   store.DeviceActive,
		Posture:  store.Posture{State: store.ComplianceCompliant, Source: "admin", UpdatedAt: base},
		Groups:   []string{"eng"},
	}
}

func cert(deviceID string, n int) *store.Cert {
	return &store.Cert{
		SHA256:    hashOf(fmt.Sprintf("cert-%s-%d", deviceID, n)),
		Serial:    serialOf(deviceID, n),
		DeviceID:  deviceID,
		KeySHA256: hashOf(fmt.Sprintf("key-%s-%d", deviceID, n)),
		NotBefore: base,
		NotAfter:  base.Add(90 * 24 * time.Hour),
		Profile:   "corp",
		Protocol:  "scep",
		DER:       []byte{0x30, 0x03, 0x02, 0x01, byte(n)},
	}
}

func auditEv(action, subject string) *store.AuditEvent {
	return &store.AuditEvent{Actor: "system", Action: action, Subject: subject, Result: "ok"}
}

// issue records one issuance for deviceID (creating the device) and returns its cert.
func issue(t *testing.T, s store.Store, deviceID string, n int) *store.Cert {
	t.Helper()
	c := cert(deviceID, n)
	if err := s.RecordIssuance(t.Context(), store.Issuance{Device: device(deviceID), Cert: c, Audit: auditEv("enroll.issue", deviceID)}); err != nil {
		t.Fatalf("RecordIssuance(%s, %d): %v", deviceID, n, err)
	}
	return c
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want %v", what, err, target)
	}
}

func noErr(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// sameJSON compares records by their JSON form, which is what the store
// persists (time zones and monotonic readings don't survive and don't matter).
func sameJSON(t *testing.T, what string, got, want any) {
	t.Helper()
	g, err := json.Marshal(got)
	noErr(t, what+": marshal got", err)
	w, err := json.Marshal(want)
	noErr(t, what+": marshal want", err)
	if !bytes.Equal(g, w) {
		t.Fatalf("%s:\n got %s\nwant %s", what, g, w)
	}
}

func auditCount(t *testing.T, s store.Store) int {
	t.Helper()
	n := 0
	noErr(t, "ScanAudit", s.ScanAudit(t.Context(), 1, func(*store.AuditEvent) error { n++; return nil }))
	return n
}

func verifyOK(t *testing.T, s store.Store, wantEvents uint64) {
	t.Helper()
	res, err := s.VerifyAudit(t.Context())
	noErr(t, "VerifyAudit", err)
	if !res.OK || res.Events != wantEvents {
		t.Fatalf("VerifyAudit = %+v, want OK with %d events", res, wantEvents)
	}
}

func testDevices(t *testing.T, open func(t *testing.T) store.Store) {
	s := newStore(t, open)
	ctx := t.Context()

	_, err := s.GetDevice(ctx, "missing")
	wantErr(t, "GetDevice(missing)", err, store.ErrNotFound)
	_, err = s.UpdateDevice(ctx, "missing", func(*store.Device) error { return nil }, nil)
	wantErr(t, "UpdateDevice(missing)", err, store.ErrNotFound)

	d := device("d1")
	noErr(t, "PutDevice", s.PutDevice(ctx, d))
	if d.V != store.RecordVersion || d.CreatedAt.IsZero() || d.UpdatedAt.IsZero() {
		t.Fatalf("PutDevice did not stamp V/CreatedAt/UpdatedAt: %+v", d)
	}
	got, err := s.GetDevice(ctx, "d1")
	noErr(t, "GetDevice", err)
	sameJSON(t, "GetDevice", got, d)

	// A replacing put keeps the original creation time.
	d2 := device("d1")
	d2.Platform = "windows"
	noErr(t, "PutDevice(replace)", s.PutDevice(ctx, d2))
	if !d2.CreatedAt.Equal(d.CreatedAt) || d2.Platform != "windows" {
		t.Fatalf("replace: got %+v, want CreatedAt %v kept and platform windows", d2, d.CreatedAt)
	}

	ev := auditEv("device.quarantine", "d1")
	upd, err := s.UpdateDevice(ctx, "d1", func(d *store.Device) error {
		d.Status = store.DeviceQuarantined
		return nil
	}, ev)
	noErr(t, "UpdateDevice", err)
	if upd.Status != store.DeviceQuarantined || ev.Seq != 1 || ev.Hash.IsZero() {
		t.Fatalf("UpdateDevice: status %q, event %+v", upd.Status, ev)
	}
	got, err = s.GetDevice(ctx, "d1")
	noErr(t, "GetDevice after update", err)
	if got.Status != store.DeviceQuarantined {
		t.Fatalf("stored status %q, want quarantined", got.Status)
	}

	// fn's error aborts everything: no device change, no audit event.
	boom := errors.New("boom")
	_, err = s.UpdateDevice(ctx, "d1", func(d *store.Device) error {
		d.Status = store.DeviceRevoked
		return boom
	}, auditEv("device.revoke", "d1"))
	wantErr(t, "UpdateDevice(fn error)", err, boom)
	got, err = s.GetDevice(ctx, "d1")
	noErr(t, "GetDevice after aborted update", err)
	if got.Status != store.DeviceQuarantined {
		t.Fatalf("aborted update leaked: status %q", got.Status)
	}
	if n := auditCount(t, s); n != 1 {
		t.Fatalf("audit events after aborted update = %d, want 1", n)
	}

	// Changing the ID inside fn is refused.
	_, err = s.UpdateDevice(ctx, "d1", func(d *store.Device) error { d.ID = "other"; return nil }, nil)
	if err == nil {
		t.Fatal("UpdateDevice changing the id succeeded")
	}
}

func testAliases(t *testing.T, open func(t *testing.T) store.Store) {
	s := newStore(t, open)
	ctx := t.Context()

	d := device("d1")
	d.Aliases = map[string]string{"serial": "C02X", "udid": "U-1"}
	noErr(t, "PutDevice", s.PutDevice(ctx, d))
	got, err := s.FindDeviceByAlias(ctx, "serial", "C02X")
	noErr(t, "FindDeviceByAlias(serial)", err)
	if got.ID != "d1" {
		t.Fatalf("alias resolved to %q", got.ID)
	}
	_, err = s.FindDeviceByAlias(ctx, "udid", "C02X")
	wantErr(t, "FindDeviceByAlias(wrong kind)", err, store.ErrNotFound)

	// Another device may not claim an owned alias, and the failed put writes nothing.
	other := device("d2")
	other.Aliases = map[string]string{"serial": "C02X"}
	wantErr(t, "PutDevice(stolen alias)", s.PutDevice(ctx, other), store.ErrExists)
	_, err = s.GetDevice(ctx, "d2")
	wantErr(t, "GetDevice(d2 after failed put)", err, store.ErrNotFound)

	// Dropping or changing aliases in an update updates the index.
	_, err = s.UpdateDevice(ctx, "d1", func(d *store.Device) error {
		delete(d.Aliases, "udid")
		d.Aliases["serial"] = "C02Y"
		d.Aliases["intune_id"] = "I-9"
		return nil
	}, nil)
	noErr(t, "UpdateDevice(aliases)", err)
	for _, tc := range []struct {
		kind, value string
		want        error
	}{
		{"udid", "U-1", store.ErrNotFound},
		{"serial", "C02X", store.ErrNotFound},
		{"serial", "C02Y", nil},
		{"intune_id", "I-9", nil},
	} {
		got, err := s.FindDeviceByAlias(ctx, tc.kind, tc.value)
		if tc.want != nil {
			wantErr(t, "FindDeviceByAlias("+tc.kind+"="+tc.value+")", err, tc.want)
			continue
		}
		noErr(t, "FindDeviceByAlias("+tc.kind+"="+tc.value+")", err)
		if got.ID != "d1" {
			t.Fatalf("%s=%s resolved to %q", tc.kind, tc.value, got.ID)
		}
	}
	// The freed alias can now be claimed.
	noErr(t, "PutDevice(freed alias)", s.PutDevice(ctx, other))

	// An issuance adds aliases to the device it creates.
	nd := device("d3")
	nd.Aliases = map[string]string{"serial": "S-3"}
	noErr(t, "RecordIssuance", s.RecordIssuance(ctx, store.Issuance{Device: nd, Cert: cert("d3", 1), Audit: auditEv("enroll.issue", "d3")}))
	got, err = s.FindDeviceByAlias(ctx, "serial", "S-3")
	noErr(t, "FindDeviceByAlias(after issuance)", err)
	if got.ID != "d3" {
		t.Fatalf("issuance alias resolved to %q", got.ID)
	}
}

func collectDevices(t *testing.T, s store.Store, f store.DeviceFilter, limit int) ([]string, int) {
	t.Helper()
	var ids []string
	pages := 0
	after := ""
	for {
		page, next, err := s.ListDevices(t.Context(), f, store.Page{After: after, Limit: limit})
		noErr(t, "ListDevices", err)
		pages++
		for _, d := range page {
			ids = append(ids, d.ID)
		}
		if next == "" {
			return ids, pages
		}
		if pages > 1000 {
			t.Fatal("ListDevices never ends")
		}
		after = next
	}
}

func testDevicePaging(t *testing.T, open func(t *testing.T) store.Store) {
	s := newStore(t, open)
	ctx := t.Context()
	var all []string
	for i := range 25 {
		d := device(fmt.Sprintf("dev-%02d", i))
		switch {
		case i%5 == 0:
			d.Status = store.DeviceQuarantined
		case i%7 == 0:
			d.Posture.State = store.ComplianceNoncompliant
		}
		if i >= 20 {
			d.Profile = "guest"
		}
		noErr(t, "PutDevice", s.PutDevice(ctx, d))
		all = append(all, d.ID)
	}

	tests := []struct {
		name  string
		f     store.DeviceFilter
		limit int
		want  func(i int) bool
		pages int
	}{
		{"all_in_pages_of_10", store.DeviceFilter{}, 10, func(int) bool { return true }, 3},
		{"all_in_one_default_page", store.DeviceFilter{}, 0, func(int) bool { return true }, 1},
		{"exact_page_size_has_no_next", store.DeviceFilter{}, 25, func(int) bool { return true }, 1},
		{"status_quarantined", store.DeviceFilter{Status: store.DeviceQuarantined}, 2, func(i int) bool { return i%5 == 0 }, 3},
		{"compliance_noncompliant", store.DeviceFilter{Compliance: store.ComplianceNoncompliant}, 0, func(i int) bool { return i%5 != 0 && i%7 == 0 }, 1},
		{"profile_guest", store.DeviceFilter{Profile: "guest"}, 4, func(i int) bool { return i >= 20 }, 2},
		{"no_match_is_empty", store.DeviceFilter{Profile: "none"}, 0, func(int) bool { return false }, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, pages := collectDevices(t, s, tc.f, tc.limit)
			var want []string
			for i, id := range all {
				if tc.want(i) {
					want = append(want, id)
				}
			}
			sameJSON(t, "ids", got, want)
			if pages != tc.pages {
				t.Fatalf("pages = %d, want %d", pages, tc.pages)
			}
		})
	}
	// An oversized limit is clamped, not an error.
	page, _, err := s.ListDevices(ctx, store.DeviceFilter{}, store.Page{Limit: 1 << 20})
	noErr(t, "ListDevices(huge limit)", err)
	if len(page) != 25 {
		t.Fatalf("huge limit returned %d devices", len(page))
	}
}

func testIssuance(t *testing.T, open func(t *testing.T) store.Store) {
	s := newStore(t, open)
	ctx := t.Context()
	now := time.Now()

	chal := hashOf("challenge-1")
	noErr(t, "PutChallenge", s.PutChallenge(ctx, &store.Challenge{
		SHA256: chal, DeviceID: "d1", Profile: "corp", Source: "admin",
		CreatedAt: now, ExpiresAt: now.Add(15 * time.Minute),
	}))
	d := device("d1")
	d.Aliases = map[string]string{"serial": "SN1"}
	c := cert("d1", 1)
	c.Attested = true
	c.AttestationID = "att-1"
	a := &store.Attestation{ID: "att-1", DeviceID: "d1", Format: "tpm", KeySHA256: c.KeySHA256,
		Facts: map[string]string{"vendor": "swtpm"}, VerifiedAt: base}
	ev := auditEv("enroll.issue", "d1")
	noErr(t, "RecordIssuance", s.RecordIssuance(ctx, store.Issuance{Device: d, Cert: c, Attestation: a, Audit: ev, Challenge: &chal}))

	if ev.Seq != 1 || ev.Hash.IsZero() {
		t.Fatalf("issuance audit event not chained: %+v", ev)
	}
	gotDev, err := s.GetDevice(ctx, "d1")
	noErr(t, "GetDevice", err)
	if gotDev.Platform != "linux" || gotDev.Aliases["serial"] != "SN1" {
		t.Fatalf("device not written: %+v", gotDev)
	}
	want := *c
	want.V = store.RecordVersion
	gotCert, err := s.GetCert(ctx, c.SHA256)
	noErr(t, "GetCert", err)
	sameJSON(t, "GetCert", gotCert, &want)
	binding, err := s.GetCertBinding(ctx, c.SHA256)
	noErr(t, "GetCertBinding", err)
	noDER := want
	noDER.DER = nil
	sameJSON(t, "GetCertBinding", binding, &noDER)
	bySerial, err := s.GetCertBySerial(ctx, c.Serial)
	noErr(t, "GetCertBySerial", err)
	sameJSON(t, "GetCertBySerial", bySerial, &want)
	certs, _, err := s.ListCerts(ctx, store.CertFilter{DeviceID: "d1"}, store.Page{})
	noErr(t, "ListCerts(device)", err)
	if len(certs) != 1 || certs[0].SHA256 != c.SHA256 {
		t.Fatalf("ListCerts(device) = %d certs", len(certs))
	}
	gotAtt, err := s.GetAttestation(ctx, "att-1")
	noErr(t, "GetAttestation", err)
	if gotAtt.Facts["vendor"] != "swtpm" {
		t.Fatalf("attestation not written: %+v", gotAtt)
	}
	byKey, err := s.FindAttestationByKey(ctx, c.KeySHA256)
	noErr(t, "FindAttestationByKey", err)
	if byKey.ID != "att-1" {
		t.Fatalf("key index -> %q", byKey.ID)
	}
	gotChal, err := s.GetChallenge(ctx, chal)
	noErr(t, "GetChallenge", err)
	if gotChal.ConsumedAt.IsZero() {
		t.Fatal("challenge not consumed by issuance")
	}
	verifyOK(t, s, 1)

	// A second issuance merges into the existing device: platform/profile
	// and aliases from enrollment, status and posture untouched.
	_, err = s.UpdateDevice(ctx, "d1", func(d *store.Device) error { d.Status = store.DeviceQuarantined; return nil }, nil)
	noErr(t, "UpdateDevice", err)
	d2 := &store.Device{ID: "d1", Platform: "windows", Aliases: map[string]string{"udid": "U1"}}
	noErr(t, "RecordIssuance(second)", s.RecordIssuance(ctx, store.Issuance{Device: d2, Cert: cert("d1", 2), Audit: auditEv("enroll.issue", "d1")}))
	gotDev, err = s.GetDevice(ctx, "d1")
	noErr(t, "GetDevice after merge", err)
	if gotDev.Platform != "windows" || gotDev.Profile != "corp" || gotDev.Status != store.DeviceQuarantined ||
		gotDev.Posture.State != store.ComplianceCompliant || gotDev.Aliases["serial"] != "SN1" || gotDev.Aliases["udid"] != "U1" {
		t.Fatalf("merge wrong: %+v", gotDev)
	}

	// Without a Device the device must exist.
	err = s.RecordIssuance(ctx, store.Issuance{Cert: cert("ghost", 1), Audit: auditEv("enroll.issue", "ghost")})
	wantErr(t, "RecordIssuance(unknown device, no Device)", err, store.ErrNotFound)
	noErr(t, "RecordIssuance(existing device, no Device)", s.RecordIssuance(ctx, store.Issuance{Cert: cert("d1", 3), Audit: auditEv("enroll.issue", "d1")}))

	// Lookups of absent things.
	_, err = s.GetCert(ctx, hashOf("nope"))
	wantErr(t, "GetCert(missing)", err, store.ErrNotFound)
	_, err = s.GetCertBinding(ctx, hashOf("nope"))
	wantErr(t, "GetCertBinding(missing)", err, store.ErrNotFound)
	_, err = s.GetCertBySerial(ctx, "abcdef")
	wantErr(t, "GetCertBySerial(missing)", err, store.ErrNotFound)
	verifyOK(t, s, 3)
}

// testIssuanceAtomicity: every failing issuance leaves no trace at all.
func testIssuanceAtomicity(t *testing.T, open func(t *testing.T) store.Store) {
	now := time.Now()
	tests := []struct {
		name  string
		setup func(t *testing.T, s store.Store) *store.Hash // returns the challenge to use
		cert  func() *store.Cert
		want  []error
	}{
		{
			name: "consumed_challenge",
			setup: func(t *testing.T, s store.Store) *store.Hash {
				h := hashOf("used")
				noErr(t, "PutChallenge", s.PutChallenge(t.Context(), &store.Challenge{SHA256: h, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}))
				_, err := s.ConsumeChallenge(t.Context(), h, now)
				noErr(t, "ConsumeChallenge", err)
				return &h
			},
			want: []error{store.ErrConsumed},
		},
		{
			name: "expired_challenge",
			setup: func(t *testing.T, s store.Store) *store.Hash {
				h := hashOf("old")
				noErr(t, "PutChallenge", s.PutChallenge(t.Context(), &store.Challenge{SHA256: h, CreatedAt: now.Add(-2 * time.Hour), ExpiresAt: now.Add(-time.Hour)}))
				return &h
			},
			want: []error{store.ErrExpired, store.ErrNotFound},
		},
		{
			name: "unknown_challenge",
			setup: func(t *testing.T, s store.Store) *store.Hash {
				h := hashOf("never issued")
				return &h
			},
			want: []error{store.ErrNotFound},
		},
		{
			name: "challenge_for_another_device",
			setup: func(t *testing.T, s store.Store) *store.Hash {
				h := hashOf("for d9")
				noErr(t, "PutChallenge", s.PutChallenge(t.Context(), &store.Challenge{SHA256: h, DeviceID: "d9", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}))
				return &h
			},
			want: []error{store.ErrMismatch},
		},
		{
			name: "challenge_for_another_key",
			setup: func(t *testing.T, s store.Store) *store.Hash {
				h := hashOf("for key")
				noErr(t, "PutChallenge", s.PutChallenge(t.Context(), &store.Challenge{SHA256: h, KeySHA256: hashOf("other key"), CreatedAt: now, ExpiresAt: now.Add(time.Hour)}))
				return &h
			},
			want: []error{store.ErrMismatch},
		},
		{
			name: "duplicate_serial",
			setup: func(t *testing.T, s store.Store) *store.Hash {
				c := cert("other", 1)
				c.Serial = "abc123"
				noErr(t, "RecordIssuance(first)", s.RecordIssuance(t.Context(), store.Issuance{Device: device("other"), Cert: c, Audit: auditEv("enroll.issue", "other")}))
				return nil
			},
			cert: func() *store.Cert { c := cert("d1", 1); c.Serial = "abc123"; return c },
			want: []error{store.ErrExists},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newStore(t, open)
			ctx := t.Context()
			chal := tc.setup(t, s)
			eventsBefore := auditCount(t, s)
			var chalBefore *store.Challenge
			if chal != nil {
				chalBefore, _ = s.GetChallenge(ctx, *chal)
			}
			c := cert("d1", 1)
			if tc.cert != nil {
				c = tc.cert()
			}
			d := device("d1")
			d.Aliases = map[string]string{"serial": "ATOMIC"}
			a := &store.Attestation{ID: "att-atomic", DeviceID: "d1", Format: "tpm", KeySHA256: c.KeySHA256, VerifiedAt: base}
			err := s.RecordIssuance(ctx, store.Issuance{Device: d, Cert: c, Attestation: a, Audit: auditEv("enroll.issue", "d1"), Challenge: chal})
			matched := false
			for _, w := range tc.want {
				matched = matched || errors.Is(err, w)
			}
			if !matched {
				t.Fatalf("RecordIssuance: got %v, want one of %v", err, tc.want)
			}
			_, err = s.GetDevice(ctx, "d1")
			wantErr(t, "device written", err, store.ErrNotFound)
			_, err = s.GetCert(ctx, c.SHA256)
			wantErr(t, "cert written", err, store.ErrNotFound)
			if tc.cert == nil {
				_, err = s.GetCertBySerial(ctx, c.Serial)
				wantErr(t, "serial index written", err, store.ErrNotFound)
			}
			certs, _, err := s.ListCerts(ctx, store.CertFilter{DeviceID: "d1"}, store.Page{})
			noErr(t, "ListCerts", err)
			if len(certs) != 0 {
				t.Fatalf("device index written: %d certs", len(certs))
			}
			_, err = s.GetAttestation(ctx, "att-atomic")
			wantErr(t, "attestation written", err, store.ErrNotFound)
			_, err = s.FindAttestationByKey(ctx, c.KeySHA256)
			wantErr(t, "attestation key index written", err, store.ErrNotFound)
			_, err = s.FindDeviceByAlias(ctx, "serial", "ATOMIC")
			wantErr(t, "alias written", err, store.ErrNotFound)
			if n := auditCount(t, s); n != eventsBefore {
				t.Fatalf("audit events %d -> %d", eventsBefore, n)
			}
			if chalBefore != nil {
				after, err := s.GetChallenge(ctx, *chal)
				noErr(t, "GetChallenge", err)
				sameJSON(t, "challenge after failed issuance", after, chalBefore)
			}
			verifyOK(t, s, uint64(eventsBefore))
		})
	}
}

func testCertListing(t *testing.T, open func(t *testing.T) store.Store) {
	s := newStore(t, open)
	ctx := t.Context()
	var all []store.Hash
	for i := range 7 {
		all = append(all, issue(t, s, "a", i).SHA256)
	}
	for i := range 5 {
		all = append(all, issue(t, s, "b", i).SHA256)
	}
	_, err := s.RevokeCert(ctx, all[1], store.Revocation{Reason: 1, Actor: "admin:t"}, nil)
	noErr(t, "RevokeCert", err)
	_, err = s.RevokeCert(ctx, all[8], store.Revocation{Reason: 1, Actor: "admin:t"}, nil)
	noErr(t, "RevokeCert", err)

	sorted := func(hs []store.Hash) []string {
		var out []string
		for _, h := range hs {
			out = append(out, h.String())
		}
		sort.Strings(out)
		return out
	}
	tests := []struct {
		name  string
		f     store.CertFilter
		limit int
		want  []string
	}{
		{"all_pages_of_5", store.CertFilter{}, 5, sorted(all)},
		{"device_a_pages_of_3", store.CertFilter{DeviceID: "a"}, 3, sorted(all[:7])},
		{"device_b", store.CertFilter{DeviceID: "b"}, 0, sorted(all[7:])},
		{"revoked_only", store.CertFilter{RevokedOnly: true}, 1, sorted([]store.Hash{all[1], all[8]})},
		{"revoked_only_device_b", store.CertFilter{DeviceID: "b", RevokedOnly: true}, 0, sorted([]store.Hash{all[8]})},
		{"unknown_device", store.CertFilter{DeviceID: "zzz"}, 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			after := ""
			for range 100 {
				page, next, err := s.ListCerts(ctx, tc.f, store.Page{After: after, Limit: tc.limit})
				noErr(t, "ListCerts", err)
				if tc.limit > 0 && len(page) > tc.limit {
					t.Fatalf("page of %d > limit %d", len(page), tc.limit)
				}
				for _, c := range page {
					got = append(got, c.SHA256.String())
				}
				if next == "" {
					break
				}
				after = next
			}
			sameJSON(t, "certs", got, tc.want)
		})
	}
}

func testRevocation(t *testing.T, open func(t *testing.T) store.Store) {
	s := newStore(t, open)
	ctx := t.Context()
	c1 := issue(t, s, "d1", 1)
	c2 := issue(t, s, "d1", 2)
	c3 := issue(t, s, "d1", 3)
	other := issue(t, s, "d2", 1)

	_, err := s.RevokeCert(ctx, hashOf("missing"), store.Revocation{Reason: 1}, nil)
	wantErr(t, "RevokeCert(missing)", err, store.ErrNotFound)
	_, _, err = s.RevokeDevice(ctx, "missing", store.Revocation{Reason: 1}, nil)
	wantErr(t, "RevokeDevice(missing)", err, store.ErrNotFound)

	first := store.Revocation{At: base, Reason: 1, Actor: "admin:first"}
	ev := auditEv("cert.revoke", c1.Serial)
	got, err := s.RevokeCert(ctx, c1.SHA256, first, ev)
	noErr(t, "RevokeCert", err)
	if got.Revoked == nil || got.Revoked.Actor != "admin:first" || ev.Seq == 0 {
		t.Fatalf("RevokeCert: %+v, event %+v", got.Revoked, ev)
	}
	// Idempotent: the second revocation keeps the first record.
	got, err = s.RevokeCert(ctx, c1.SHA256, store.Revocation{At: base.Add(time.Hour), Reason: 4, Actor: "admin:second"}, nil)
	noErr(t, "RevokeCert(again)", err)
	sameJSON(t, "revocation after second revoke", got.Revoked, &first)
	stored, err := s.GetCert(ctx, c1.SHA256)
	noErr(t, "GetCert", err)
	sameJSON(t, "stored revocation", stored.Revoked, &first)

	dev, certs, err := s.RevokeDevice(ctx, "d1", store.Revocation{At: base.Add(2 * time.Hour), Reason: 5, Actor: "admin:dev"}, auditEv("device.revoke", "d1"))
	noErr(t, "RevokeDevice", err)
	if dev.Status != store.DeviceRevoked || len(certs) != 3 {
		t.Fatalf("RevokeDevice: status %q, %d certs", dev.Status, len(certs))
	}
	for _, h := range []store.Hash{c1.SHA256, c2.SHA256, c3.SHA256} {
		c, err := s.GetCert(ctx, h)
		noErr(t, "GetCert", err)
		if c.Revoked == nil {
			t.Fatalf("cert %s not revoked by RevokeDevice", h)
		}
		if h == c1.SHA256 && c.Revoked.Actor != "admin:first" {
			t.Fatalf("RevokeDevice overwrote the first revocation: %+v", c.Revoked)
		}
	}
	oc, err := s.GetCert(ctx, other.SHA256)
	noErr(t, "GetCert(other)", err)
	if oc.Revoked != nil {
		t.Fatal("RevokeDevice revoked another device's cert")
	}
	d, err := s.GetDevice(ctx, "d1")
	noErr(t, "GetDevice", err)
	if d.Status != store.DeviceRevoked {
		t.Fatalf("stored device status %q", d.Status)
	}
	verifyOK(t, s, 6) // 4 issuances + cert revoke + device revoke
}

func testAttestations(t *testing.T, open func(t *testing.T) store.Store) {
	s := newStore(t, open)
	ctx := t.Context()
	_, err := s.GetAttestation(ctx, "missing")
	wantErr(t, "GetAttestation(missing)", err, store.ErrNotFound)
	_, err = s.FindAttestationByKey(ctx, hashOf("k"))
	wantErr(t, "FindAttestationByKey(missing)", err, store.ErrNotFound)

	a := &store.Attestation{ID: "a1", DeviceID: "d1", Format: "apple", KeySHA256: hashOf("k"),
		Facts: map[string]string{"model": "iPhone"}, VerifiedAt: base}
	noErr(t, "PutAttestation", s.PutAttestation(ctx, a))
	got, err := s.GetAttestation(ctx, "a1")
	noErr(t, "GetAttestation", err)
	sameJSON(t, "GetAttestation", got, a)
	// A newer attestation of the same key takes over the key index.
	b := &store.Attestation{ID: "a2", DeviceID: "d1", Format: "apple", KeySHA256: hashOf("k"), VerifiedAt: base.Add(time.Hour)}
	noErr(t, "PutAttestation(newer)", s.PutAttestation(ctx, b))
	got, err = s.FindAttestationByKey(ctx, hashOf("k"))
	noErr(t, "FindAttestationByKey", err)
	if got.ID != "a2" {
		t.Fatalf("key index -> %q, want a2", got.ID)
	}
}

func testChallenges(t *testing.T, open func(t *testing.T) store.Store) {
	s := newStore(t, open)
	ctx := t.Context()
	now := time.Now()
	h := hashOf("c1")

	_, err := s.GetChallenge(ctx, h)
	wantErr(t, "GetChallenge(missing)", err, store.ErrNotFound)
	_, err = s.ConsumeChallenge(ctx, h, now)
	wantErr(t, "ConsumeChallenge(missing)", err, store.ErrNotFound)

	c := &store.Challenge{SHA256: h, DeviceID: "d1", Profile: "corp", Source: "admin", CreatedAt: now, ExpiresAt: now.Add(10 * time.Minute)}
	noErr(t, "PutChallenge", s.PutChallenge(ctx, c))
	wantErr(t, "PutChallenge(duplicate)", s.PutChallenge(ctx, &store.Challenge{SHA256: h, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}), store.ErrExists)
	got, err := s.GetChallenge(ctx, h)
	noErr(t, "GetChallenge", err)
	if got.DeviceID != "d1" || !got.ConsumedAt.IsZero() || !got.ExpiresAt.Equal(c.ExpiresAt) {
		t.Fatalf("GetChallenge: %+v", got)
	}

	// Past ExpiresAt (by the caller's clock) it can't be redeemed.
	_, err = s.ConsumeChallenge(ctx, h, c.ExpiresAt)
	if !errors.Is(err, store.ErrExpired) && !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ConsumeChallenge(at expiry): got %v, want ErrExpired or ErrNotFound", err)
	}
	_, err = s.ConsumeChallenge(ctx, h, c.ExpiresAt.Add(time.Hour))
	if !errors.Is(err, store.ErrExpired) && !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ConsumeChallenge(after expiry): got %v, want ErrExpired or ErrNotFound", err)
	}
	// A failed redemption did not consume it.
	consumed, err := s.ConsumeChallenge(ctx, h, now.Add(time.Minute))
	noErr(t, "ConsumeChallenge", err)
	if consumed.ConsumedAt.IsZero() {
		t.Fatal("ConsumeChallenge returned an unconsumed challenge")
	}
	_, err = s.ConsumeChallenge(ctx, h, now.Add(2*time.Minute))
	wantErr(t, "ConsumeChallenge(again)", err, store.ErrConsumed)
	// A consumed challenge can't be re-put to make it fresh again.
	wantErr(t, "PutChallenge(over consumed)", s.PutChallenge(ctx, &store.Challenge{SHA256: h, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}), store.ErrExists)
}

func testChallengeConcurrency(t *testing.T, open func(t *testing.T) store.Store) {
	s := newStore(t, open)
	ctx := t.Context()
	now := time.Now()
	h := hashOf("race")
	noErr(t, "PutChallenge", s.PutChallenge(ctx, &store.Challenge{SHA256: h, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}))

	const n = 50
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		errs  = make([]error, n)
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, errs[i] = s.ConsumeChallenge(ctx, h, now)
		}()
	}
	close(start)
	wg.Wait()
	wins := 0
	for i, err := range errs {
		switch {
		case err == nil:
			wins++
		case errors.Is(err, store.ErrConsumed):
		default:
			t.Errorf("goroutine %d: %v, want nil or ErrConsumed", i, err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d goroutines consumed the challenge, want exactly 1", wins)
	}
}

func testSessions(t *testing.T, open func(t *testing.T) store.Store) {
	s := newStore(t, open)
	ctx := t.Context()
	_, err := s.GetSession(ctx, "nas1", "missing")
	wantErr(t, "GetSession(missing)", err, store.ErrNotFound)

	put := func(nas, id, dev string, stopped bool) *store.Session {
		t.Helper()
		sess := &store.Session{NAS: nas, NASAddr: "127.0.0.1", AcctSessionID: id, DeviceID: dev,
			CertSHA256: hashOf(dev), StartedAt: base, UpdatedAt: base}
		if stopped {
			sess.StoppedAt = base.Add(time.Hour)
		}
		noErr(t, "PutSession", s.PutSession(ctx, sess))
		return sess
	}
	want := put("nas1", "s1", "d1", false)
	put("nas1", "s2", "d1", true)
	put("nas2", "s1", "d1", false)
	put("nas2", "s9", "d2", false)
	got, err := s.GetSession(ctx, "nas1", "s1")
	noErr(t, "GetSession", err)
	sameJSON(t, "GetSession", got, want)

	list := func(dev string, live bool, limit int) []string {
		t.Helper()
		var out []string
		after := ""
		for range 100 {
			page, next, err := s.ListSessions(ctx, dev, live, store.Page{After: after, Limit: limit})
			noErr(t, "ListSessions", err)
			for _, x := range page {
				out = append(out, x.NAS+"/"+x.AcctSessionID)
			}
			if next == "" {
				return out
			}
			after = next
		}
		t.Fatal("ListSessions never ends")
		return nil
	}
	tests := []struct {
		name  string
		dev   string
		live  bool
		limit int
		want  []string
	}{
		{"device_all", "d1", false, 0, []string{"nas1/s1", "nas1/s2", "nas2/s1"}},
		{"device_all_paged", "d1", false, 1, []string{"nas1/s1", "nas1/s2", "nas2/s1"}},
		{"device_live_only", "d1", true, 1, []string{"nas1/s1", "nas2/s1"}},
		{"other_device", "d2", false, 0, []string{"nas2/s9"}},
		{"every_device_paged", "", false, 2, []string{"nas1/s1", "nas1/s2", "nas2/s1", "nas2/s9"}},
		{"every_device_live", "", true, 0, []string{"nas1/s1", "nas2/s1", "nas2/s9"}},
		{"unknown_device", "zzz", false, 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sameJSON(t, "sessions", list(tc.dev, tc.live, tc.limit), tc.want)
		})
	}

	// Stopping a session updates it in place; moving it to another device moves the index.
	put("nas1", "s1", "d1", true)
	sameJSON(t, "live after stop", list("d1", true, 0), []string{"nas2/s1"})
	put("nas2", "s1", "d2", false)
	sameJSON(t, "d1 after move", list("d1", false, 0), []string{"nas1/s1", "nas1/s2"})
	sameJSON(t, "d2 after move", list("d2", false, 0), []string{"nas2/s1", "nas2/s9"})
}

func testCloseNASSessions(t *testing.T, open func(t *testing.T) store.Store) {
	s := newStore(t, open)
	ctx := t.Context()
	const nasReboot = 11 // Acct-Terminate-Cause NAS-Reboot
	at := base.Add(time.Hour)
	put := func(nas, id, dev string, started, stopped time.Time, cause uint32) {
		t.Helper()
		noErr(t, "PutSession", s.PutSession(ctx, &store.Session{NAS: nas, NASAddr: "127.0.0.1", AcctSessionID: id,
			DeviceID: dev, StartedAt: started, UpdatedAt: started, StoppedAt: stopped, TerminateCause: cause}))
	}
	var none time.Time
	put("nas1", "s1", "d1", base, none, 0)
	put("nas1", "s2", "d1", base, base.Add(30*time.Minute), 1) // already stopped: keeps its own stop
	put("nas1", "s3", "d2", base, none, 0)
	put("nas1", "s4", "", base, none, 0)                  // no device (no Class)
	put("nas1", "s5", "d1", at.Add(time.Minute), none, 0) // started after the reboot: stays open
	put("nas1", "s6", "d2", at, none, 0)                  // started exactly at the reboot: closed
	put("nas2", "s1", "d1", base, none, 0)
	put("nas2", "s9", "d2", base, none, 0)
	put("nas10", "s1", "d1", base, none, 0) // "nas1" is a prefix of its name

	list := func(dev string, live bool) []string {
		t.Helper()
		page, next, err := s.ListSessions(ctx, dev, live, store.Page{Limit: 1000})
		noErr(t, "ListSessions", err)
		if next != "" {
			t.Fatal("ListSessions: unexpected next page")
		}
		var out []string
		for _, x := range page {
			out = append(out, x.NAS+"/"+x.AcctSessionID)
		}
		return out
	}
	before, _, err := s.ListSessions(ctx, "", false, store.Page{Limit: 1000})
	noErr(t, "ListSessions(before)", err)

	n, err := s.CloseNASSessions(ctx, store.NASScope{NAS: "nas1"}, at, nasReboot)
	noErr(t, "CloseNASSessions", err)
	if n != 4 {
		t.Fatalf("CloseNASSessions(nas1) closed %d, want 4 (s1 s3 s4 s6)", n)
	}
	for _, b := range before {
		got, err := s.GetSession(ctx, b.NAS, b.AcctSessionID)
		noErr(t, "GetSession", err)
		want := *b
		if b.NAS == "nas1" && b.Live() && !b.StartedAt.After(at) {
			want.StoppedAt, want.UpdatedAt, want.TerminateCause, want.ClosedByOnOff = at, at, nasReboot, true
		}
		sameJSON(t, "session "+b.NAS+"/"+b.AcctSessionID, got, &want)
	}

	tests := []struct {
		name string
		dev  string
		live bool
		want []string
	}{
		{"every_live", "", true, []string{"nas1/s5", "nas10/s1", "nas2/s1", "nas2/s9"}},
		{"d1_live", "d1", true, []string{"nas1/s5", "nas10/s1", "nas2/s1"}},
		{"d2_live", "d2", true, []string{"nas2/s9"}},
		{"d1_all_keeps_index", "d1", false, []string{"nas1/s1", "nas1/s2", "nas1/s5", "nas10/s1", "nas2/s1"}},
		{"d2_all_keeps_index", "d2", false, []string{"nas1/s3", "nas1/s6", "nas2/s9"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sameJSON(t, "sessions", list(tc.dev, tc.live), tc.want)
		})
	}

	t.Run("again_is_a_no_op", func(t *testing.T) {
		mid, _, err := s.ListSessions(ctx, "", false, store.Page{Limit: 1000})
		noErr(t, "ListSessions", err)
		n, err := s.CloseNASSessions(ctx, store.NASScope{NAS: "nas1"}, at.Add(time.Hour), 1)
		noErr(t, "CloseNASSessions(again)", err)
		// s5 started before this later time, so only it closes.
		if n != 1 {
			t.Fatalf("second close closed %d, want 1 (s5)", n)
		}
		n, err = s.CloseNASSessions(ctx, store.NASScope{NAS: "nas1"}, at.Add(time.Hour), 1)
		noErr(t, "CloseNASSessions(third)", err)
		if n != 0 {
			t.Fatalf("third close closed %d, want 0", n)
		}
		after, _, err := s.ListSessions(ctx, "", false, store.Page{Limit: 1000})
		noErr(t, "ListSessions", err)
		for i := range mid {
			if mid[i].NAS == "nas1" && mid[i].AcctSessionID == "s5" {
				continue
			}
			sameJSON(t, "session after repeat", after[i], mid[i])
		}
	})
	t.Run("unknown_nas_closes_nothing", func(t *testing.T) {
		n, err := s.CloseNASSessions(ctx, store.NASScope{NAS: "nas-unknown"}, at, nasReboot)
		noErr(t, "CloseNASSessions(unknown)", err)
		if n != 0 {
			t.Fatalf("closed %d sessions of an unknown NAS", n)
		}
	})
	t.Run("bad_input_is_an_error", func(t *testing.T) {
		if _, err := s.CloseNASSessions(ctx, store.NASScope{NAS: ""}, at, nasReboot); err == nil {
			t.Error("empty NAS name accepted")
		}
		if _, err := s.CloseNASSessions(ctx, store.NASScope{NAS: "nas2"}, time.Time{}, nasReboot); err == nil {
			t.Error("zero stop time accepted")
		}
		sameJSON(t, "nas2 live", list("d2", true), []string{"nas2/s9"})
	})
}

// testNonces: a claim holds until its expiry, per scope; bad input is an
// error, not a claim.
func testNonces(t *testing.T, open func(t *testing.T) store.Store) {
	s := newStore(t, open)
	ctx := t.Context()
	n1, n2 := hashOf("sig-1"), hashOf("sig-2")
	soon := time.Now().Add(1500 * time.Millisecond)
	later := time.Now().Add(time.Hour)
	noErr(t, "ClaimNonce", s.ClaimNonce(ctx, "webhook:a", n1, later))
	if err := s.ClaimNonce(ctx, "webhook:a", n1, later); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second claim: %v, want ErrExists", err)
	}
	noErr(t, "ClaimNonce(other scope)", s.ClaimNonce(ctx, "webhook:b", n1, later))
	noErr(t, "ClaimNonce(other nonce)", s.ClaimNonce(ctx, "webhook:a", n2, soon))
	if err := s.ClaimNonce(ctx, "webhook:a", n2, later); !errors.Is(err, store.ErrExists) {
		t.Fatalf("claim before expiry: %v, want ErrExists", err)
	}
	time.Sleep(time.Until(soon) + 1100*time.Millisecond)
	noErr(t, "ClaimNonce(after expiry)", s.ClaimNonce(ctx, "webhook:a", n2, later))
	for _, bad := range []struct {
		scope string
		n     store.Hash
		exp   time.Time
	}{{"", n1, later}, {"webhook:a", store.Hash{}, later}, {"webhook:c", n1, time.Now().Add(-time.Second)}} {
		if err := s.ClaimNonce(ctx, bad.scope, bad.n, bad.exp); err == nil || errors.Is(err, store.ErrExists) {
			t.Errorf("ClaimNonce(%q, %v, %v) = %v, want an input error", bad.scope, bad.n, bad.exp, err)
		}
	}
}

// testNonceConcurrency: of 32 concurrent claims of one nonce exactly one
// succeeds.
func testNonceConcurrency(t *testing.T, open func(t *testing.T) store.Store) {
	s := newStore(t, open)
	ctx := t.Context()
	var wg sync.WaitGroup
	var won, lost atomic.Int32
	for range 32 {
		wg.Go(func() {
			err := s.ClaimNonce(ctx, "webhook", hashOf("race"), time.Now().Add(time.Hour))
			switch {
			case err == nil:
				won.Add(1)
			case errors.Is(err, store.ErrExists):
				lost.Add(1)
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if won.Load() != 1 || lost.Load() != 31 {
		t.Fatalf("%d claims won, %d lost; want 1 and 31", won.Load(), lost.Load())
	}
}

// testCloseNASSessionsScope: one client prefix holds several NASes; the
// Accounting-On of one closes only the sessions that match its source
// address and the identity it reports, and marks them ClosedByOnOff.
func testCloseNASSessionsScope(t *testing.T, open func(t *testing.T) store.Store) {
	s := newStore(t, open)
	ctx := t.Context()
	at := base.Add(time.Hour)
	put := func(id, addr, ip, ident string) {
		t.Helper()
		noErr(t, "PutSession", s.PutSession(ctx, &store.Session{NAS: "access", NASAddr: addr, AcctSessionID: id,
			DeviceID: "d-" + id, NASIPAddress: ip, NASIdentifier: ident, StartedAt: base, UpdatedAt: base}))
	}
	put("a1", "127.0.0.1", "127.0.0.1", "sw-a")
	put("a2", "127.0.0.1", "127.0.0.1", "sw-a")
	put("b1", "127.0.0.2", "127.0.0.2", "sw-b")
	put("p1", "127.0.0.9", "10.1.0.1", "sw-c") // behind a proxy at .9
	put("p2", "127.0.0.9", "10.1.0.2", "sw-d")
	put("p3", "127.0.0.9", "", "") // reports no identity
	noErr(t, "PutSession(other client)", s.PutSession(ctx, &store.Session{NAS: "other", NASAddr: "127.0.0.1",
		AcctSessionID: "o1", DeviceID: "d-o1", StartedAt: base}))

	tests := []struct {
		name   string
		scope  store.NASScope
		closed []string
	}{
		{"source_address", store.NASScope{NAS: "access", Addr: "127.0.0.1"}, []string{"a1", "a2"}},
		{"identity_behind_a_proxy", store.NASScope{NAS: "access", Addr: "127.0.0.9", NASIPAddress: "10.1.0.1"}, []string{"p1"}},
		{"identifier_behind_a_proxy", store.NASScope{NAS: "access", Addr: "127.0.0.9", NASIdentifier: "sw-d"}, []string{"p2"}},
		{"nothing_matches", store.NASScope{NAS: "access", Addr: "127.0.0.2", NASIdentifier: "sw-x"}, nil},
	}
	for _, tc := range tests {
		n, err := s.CloseNASSessions(ctx, tc.scope, at, 11)
		noErr(t, tc.name, err)
		if n != len(tc.closed) {
			t.Fatalf("%s: closed %d, want %d", tc.name, n, len(tc.closed))
		}
		for _, id := range tc.closed {
			got, err := s.GetSession(ctx, "access", id)
			noErr(t, "GetSession", err)
			if got.Live() || !got.ClosedByOnOff || !got.StoppedAt.Equal(at) {
				t.Errorf("%s: %s not closed by on/off: %+v", tc.name, id, got)
			}
		}
	}
	for _, id := range []string{"b1", "p3"} {
		got, err := s.GetSession(ctx, "access", id)
		noErr(t, "GetSession", err)
		if !got.Live() || got.ClosedByOnOff {
			t.Errorf("%s was closed by another NAS's Accounting-On: %+v", id, got)
		}
	}
	if got, err := s.GetSession(ctx, "other", "o1"); err != nil || !got.Live() {
		t.Errorf("another client's session: %+v, %v", got, err)
	}
}

// testCloseNASSessionsBatches closes more sessions than one write batch of
// a typical implementation holds.
func testCloseNASSessionsBatches(t *testing.T, open func(t *testing.T) store.Store) {
	s := newStore(t, open)
	ctx := t.Context()
	const live, stopped = 600, 50
	for i := range live + stopped {
		sess := &store.Session{NAS: "big", AcctSessionID: fmt.Sprintf("s%04d", i), DeviceID: fmt.Sprintf("d%d", i%7), StartedAt: base}
		if i%13 == 0 && i/13 < stopped { // interleave stopped ones
			sess.StoppedAt = base.Add(time.Minute)
		}
		noErr(t, "PutSession", s.PutSession(ctx, sess))
	}
	noErr(t, "PutSession(other NAS)", s.PutSession(ctx, &store.Session{NAS: "small", AcctSessionID: "x", DeviceID: "d0", StartedAt: base}))
	n, err := s.CloseNASSessions(ctx, store.NASScope{NAS: "big"}, base.Add(time.Hour), 11)
	noErr(t, "CloseNASSessions", err)
	if n != live {
		t.Fatalf("closed %d sessions, want %d", n, live)
	}
	page, _, err := s.ListSessions(ctx, "", true, store.Page{Limit: 1000})
	noErr(t, "ListSessions(live)", err)
	if len(page) != 1 || page[0].NAS != "small" {
		t.Fatalf("live sessions after close: %d, want only small/x", len(page))
	}
}

// acmeAccount is a test account; the JWK only has to be JSON to the store.
func acmeAccount(id, tp string) *store.ACMEAccount {
	return &store.ACMEAccount{ID: id, Thumbprint: tp, Status: "valid", Contact: []string{"mailto:ops@example.com"},
		JWK: []byte(`{"kty":"EC","crv":"P-256","x":"` + tp + `","y":"` + id + `"}`), CreatedAt: base}
}

func testACMEAccounts(t *testing.T, open func(t *testing.T) store.Store) {
	s := newStore(t, open)
	ctx := t.Context()
	for _, id := range []string{"missing", ""} {
		_, err := s.GetACMEAccount(ctx, id)
		wantErr(t, fmt.Sprintf("GetACMEAccount(%q)", id), err, store.ErrNotFound)
		_, err = s.FindACMEAccountByThumbprint(ctx, id)
		wantErr(t, fmt.Sprintf("FindACMEAccountByThumbprint(%q)", id), err, store.ErrNotFound)
	}

	a1 := acmeAccount("a1", "tp1")
	noErr(t, "PutACMEAccount(a1)", s.PutACMEAccount(ctx, a1))
	if a1.V != store.RecordVersion || a1.UpdatedAt.IsZero() || !a1.CreatedAt.Equal(base) {
		t.Fatalf("put account = %+v: want V, UpdatedAt filled and CreatedAt kept", a1)
	}
	get := func(what, id string) *store.ACMEAccount {
		t.Helper()
		a, err := s.GetACMEAccount(ctx, id)
		noErr(t, what, err)
		return a
	}
	find := func(what, tp string) *store.ACMEAccount {
		t.Helper()
		a, err := s.FindACMEAccountByThumbprint(ctx, tp)
		noErr(t, what, err)
		return a
	}
	sameJSON(t, "GetACMEAccount", get("GetACMEAccount", "a1"), a1)
	sameJSON(t, "FindACMEAccountByThumbprint", find("FindACMEAccountByThumbprint", "tp1"), a1)

	// Another account may not take a thumbprint, and nothing of it is written.
	wantErr(t, "PutACMEAccount(a2 with tp1)", s.PutACMEAccount(ctx, acmeAccount("a2", "tp1")), store.ErrExists)
	_, err := s.GetACMEAccount(ctx, "a2")
	wantErr(t, "GetACMEAccount(refused a2)", err, store.ErrNotFound)

	// Replacing keeps CreatedAt and the index.
	upd := acmeAccount("a1", "tp1")
	upd.Status, upd.Contact, upd.CreatedAt = "deactivated", nil, time.Time{}
	noErr(t, "PutACMEAccount(update)", s.PutACMEAccount(ctx, upd))
	if !upd.CreatedAt.Equal(base) {
		t.Fatalf("update changed CreatedAt to %v", upd.CreatedAt)
	}
	sameJSON(t, "updated account", get("GetACMEAccount(updated)", "a1"), upd)
	sameJSON(t, "updated by thumbprint", find("Find(updated)", "tp1"), upd)

	// A new thumbprint moves the index entry and frees the old thumbprint.
	noErr(t, "PutACMEAccount(rekey)", s.PutACMEAccount(ctx, acmeAccount("a1", "tp3")))
	_, err = s.FindACMEAccountByThumbprint(ctx, "tp1")
	wantErr(t, "Find(old thumbprint)", err, store.ErrNotFound)
	if got := find("Find(new thumbprint)", "tp3"); got.ID != "a1" {
		t.Fatalf("tp3 -> %q, want a1", got.ID)
	}
	noErr(t, "PutACMEAccount(a2 with freed tp1)", s.PutACMEAccount(ctx, acmeAccount("a2", "tp1")))
	if got := find("Find(tp1 -> a2)", "tp1"); got.ID != "a2" {
		t.Fatalf("tp1 -> %q, want a2", got.ID)
	}

	// Records are the store's: mutating what was passed in or returned changes nothing.
	a4 := acmeAccount("a4", "tp4")
	noErr(t, "PutACMEAccount(a4)", s.PutACMEAccount(ctx, a4))
	want, err := json.Marshal(a4)
	noErr(t, "marshal a4", err)
	a4.Contact[0], a4.JWK[0] = "mailto:evil@example.com", '['
	g := get("GetACMEAccount(a4)", "a4")
	g.Contact[0] = "mailto:other@example.com"
	sameJSON(t, "a4 after caller mutation", get("GetACMEAccount(a4 again)", "a4"), json.RawMessage(want))

	for _, tc := range []struct {
		name string
		a    *store.ACMEAccount
	}{
		{"nil", nil},
		{"no_id", acmeAccount("", "tpx")},
		{"no_thumbprint", acmeAccount("ax", "")},
		{"jwk_not_json", func() *store.ACMEAccount { a := acmeAccount("ax", "tpx"); a.JWK = []byte("{nope"); return a }()},
		{"no_jwk", func() *store.ACMEAccount { a := acmeAccount("ax", "tpx"); a.JWK = nil; return a }()},
	} {
		t.Run("rejects_"+tc.name, func(t *testing.T) {
			err := s.PutACMEAccount(ctx, tc.a)
			if err == nil || errors.Is(err, store.ErrExists) {
				t.Fatalf("PutACMEAccount(%s) = %v, want a validation error", tc.name, err)
			}
		})
	}
	_, err = s.GetACMEAccount(ctx, "ax")
	wantErr(t, "GetACMEAccount(rejected)", err, store.ErrNotFound)
}

// testACMEAccountConcurrency: concurrent creations for one key yield one
// account; the losers see ErrExists and can then find the winner.
func testACMEAccountConcurrency(t *testing.T, open func(t *testing.T) store.Store) {
	s := newStore(t, open)
	ctx := t.Context()
	const workers = 8
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() { errs[i] = s.PutACMEAccount(ctx, acmeAccount(fmt.Sprintf("c%d", i), "same-key")) })
	}
	wg.Wait()
	winner := ""
	for i, err := range errs {
		switch {
		case err == nil:
			if winner != "" {
				t.Fatalf("c%d and %s both created an account for one thumbprint", i, winner)
			}
			winner = fmt.Sprintf("c%d", i)
		case !errors.Is(err, store.ErrExists):
			t.Fatalf("c%d: %v, want nil or ErrExists", i, err)
		}
	}
	if winner == "" {
		t.Fatal("no creation succeeded")
	}
	got, err := s.FindACMEAccountByThumbprint(ctx, "same-key")
	noErr(t, "FindACMEAccountByThumbprint", err)
	if got.ID != winner {
		t.Fatalf("thumbprint -> %q, want the winner %q", got.ID, winner)
	}
}

func testAudit(t *testing.T, open func(t *testing.T) store.Store) {
	s := newStore(t, open)
	ctx := t.Context()
	res, err := s.VerifyAudit(ctx)
	noErr(t, "VerifyAudit(empty)", err)
	if !res.OK || res.Events != 0 {
		t.Fatalf("VerifyAudit(empty) = %+v", res)
	}
	tail, err := s.TailAudit(ctx, 5)
	noErr(t, "TailAudit(empty)", err)
	if len(tail) != 0 {
		t.Fatalf("TailAudit(empty) = %d events", len(tail))
	}

	var prev store.Hash
	for i := 1; i <= 12; i++ {
		ev := auditEv("radius.auth", fmt.Sprintf("d%d", i))
		if i == 3 {
			ev.Time = base // a caller-set time is kept
		}
		noErr(t, "AppendAudit", s.AppendAudit(ctx, ev))
		if ev.Seq != uint64(i) || ev.PrevHash != prev || ev.Hash != ev.ComputeHash() || ev.V != store.RecordVersion || ev.Time.IsZero() {
			t.Fatalf("event %d: %+v", i, ev)
		}
		if i == 3 && !ev.Time.Equal(base) {
			t.Fatalf("caller time replaced: %v", ev.Time)
		}
		prev = ev.Hash
	}
	tail, err = s.TailAudit(ctx, 3)
	noErr(t, "TailAudit", err)
	if len(tail) != 3 || tail[0].Seq != 10 || tail[2].Seq != 12 || tail[2].Hash != prev {
		t.Fatalf("TailAudit(3): %d events, first seq %d", len(tail), tail[0].Seq)
	}
	var seqs []uint64
	noErr(t, "ScanAudit", s.ScanAudit(ctx, 9, func(e *store.AuditEvent) error {
		if e.Hash != e.ComputeHash() {
			t.Errorf("scanned event %d does not hash", e.Seq)
		}
		seqs = append(seqs, e.Seq)
		return nil
	}))
	sameJSON(t, "ScanAudit(9) seqs", seqs, []uint64{9, 10, 11, 12})
	stop := errors.New("stop")
	n := 0
	err = s.ScanAudit(ctx, 1, func(*store.AuditEvent) error { n++; return stop })
	wantErr(t, "ScanAudit(fn error)", err, stop)
	if n != 1 {
		t.Fatalf("ScanAudit continued after fn error: %d calls", n)
	}
	verifyOK(t, s, 12)
}

func testAuditGroups(t *testing.T, open func(t *testing.T) store.Store) {
	s := newStore(t, open)
	ctx := t.Context()
	noErr(t, "AppendAudits(empty)", s.AppendAudits(ctx, nil))
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.AppendAudits(canceled, []*store.AuditEvent{auditEv("radius.auth", "x")}); !errors.Is(err, context.Canceled) {
		t.Fatalf("AppendAudits(canceled) = %v, want context.Canceled", err)
	}
	if n := auditCount(t, s); n != 0 {
		t.Fatalf("canceled group wrote %d events", n)
	}

	// Groups from several goroutines and single appends interleave, but
	// each group's events stay in order and consecutive in the chain.
	const groups, size = 8, 5
	var wg sync.WaitGroup
	errs := make(chan error, groups*2)
	got := make([][]*store.AuditEvent, groups)
	for g := range groups {
		evs := make([]*store.AuditEvent, size)
		for i := range evs {
			evs[i] = auditEv("radius.auth", fmt.Sprintf("g%d-%d", g, i))
		}
		got[g] = evs
		wg.Go(func() {
			errs <- s.AppendAudits(ctx, evs)
			errs <- s.AppendAudit(ctx, auditEv("admin.single", fmt.Sprintf("g%d", g)))
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		noErr(t, "concurrent append", err)
	}
	verifyOK(t, s, groups*size+groups)
	bySeq := map[uint64]string{}
	noErr(t, "ScanAudit", s.ScanAudit(ctx, 1, func(e *store.AuditEvent) error { bySeq[e.Seq] = e.Subject; return nil }))
	for g, evs := range got {
		for i, ev := range evs {
			if ev.Seq == 0 || ev.Hash.IsZero() || ev.V != store.RecordVersion {
				t.Fatalf("group %d event %d not filled in: %+v", g, i, ev)
			}
			if i > 0 && ev.Seq != evs[i-1].Seq+1 {
				t.Fatalf("group %d: seq %d after %d, want consecutive", g, ev.Seq, evs[i-1].Seq)
			}
			if want := fmt.Sprintf("g%d-%d", g, i); bySeq[ev.Seq] != want {
				t.Fatalf("seq %d holds %q, want %q", ev.Seq, bySeq[ev.Seq], want)
			}
		}
	}
}

func testAuditConcurrency(t *testing.T, open func(t *testing.T) store.Store) {
	s := newStore(t, open)
	ctx := t.Context()
	noErr(t, "PutDevice", s.PutDevice(ctx, device("d1")))
	issue(t, s, "d2", 1)

	const workers, each = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers*each*2)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				errs <- s.AppendAudit(ctx, auditEv("radius.auth", fmt.Sprintf("w%d-%d", w, i)))
				// Appends from inside other transactions must join the same chain.
				switch i % 3 {
				case 0:
					_, err := s.UpdateDevice(ctx, "d1", func(d *store.Device) error {
						d.Groups = append(d.Groups, fmt.Sprintf("g%d", w))
						return nil
					}, auditEv("device.update", "d1"))
					errs <- err
				case 1:
					errs <- s.RecordIssuance(ctx, store.Issuance{Cert: cert(fmt.Sprintf("w%d", w), i), Device: device(fmt.Sprintf("w%d", w)), Audit: auditEv("enroll.issue", "w")})
				case 2:
					_, err := s.RevokeCert(ctx, cert("d2", 1).SHA256, store.Revocation{Reason: 1}, auditEv("cert.revoke", "d2"))
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		noErr(t, "concurrent write", err)
	}
	total := uint64(1 + workers*each*2)
	verifyOK(t, s, total)
	var want uint64 = 1
	noErr(t, "ScanAudit", s.ScanAudit(ctx, 1, func(e *store.AuditEvent) error {
		if e.Seq != want {
			return fmt.Errorf("seq %d, want %d", e.Seq, want)
		}
		want++
		return nil
	}))
	d, err := s.GetDevice(ctx, "d1")
	noErr(t, "GetDevice", err)
	if len(d.Groups) != 1+workers*4 { // "eng" + i in {0,3,6,9} per worker
		t.Fatalf("device groups %d, want %d: a concurrent UpdateDevice was lost", len(d.Groups), 1+workers*4)
	}
}

// testAuditCallersGetTheirEvents: many concurrent appenders (a store may
// group-commit them) mixed with audited writes still form one gap-free
// chain, and every caller gets back a distinct Seq whose stored event is
// exactly the one it appended.
func testAuditCallersGetTheirEvents(t *testing.T, open func(t *testing.T) store.Store) {
	s := newStore(t, open)
	ctx := t.Context()
	noErr(t, "PutDevice", s.PutDevice(ctx, device("d1")))
	issue(t, s, "d2", 1)

	const workers, each = 64, 4
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		got  = map[uint64]*store.AuditEvent{}
		errs []error
	)
	keep := func(ev *store.AuditEvent, err error) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err != nil:
			errs = append(errs, err)
		case got[ev.Seq] != nil:
			errs = append(errs, fmt.Errorf("seq %d handed to two callers", ev.Seq))
		default:
			got[ev.Seq] = ev
		}
	}
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				ev := auditEv("radius.auth", fmt.Sprintf("w%d-%d", w, i))
				keep(ev, s.AppendAudit(ctx, ev))
				if i != 1 {
					continue
				}
				ev = auditEv("admin.write", fmt.Sprintf("w%d", w))
				var err error
				if w%2 == 0 {
					_, err = s.UpdateDevice(ctx, "d1", func(d *store.Device) error {
						d.Groups = append(d.Groups, fmt.Sprintf("w%d", w))
						return nil
					}, ev)
				} else {
					_, err = s.RevokeCert(ctx, cert("d2", 1).SHA256, store.Revocation{Reason: 1}, ev)
				}
				keep(ev, err)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	total := uint64(1 + workers*each + workers)
	verifyOK(t, s, total)
	noErr(t, "ScanAudit", s.ScanAudit(ctx, 2, func(e *store.AuditEvent) error {
		mine := got[e.Seq]
		if mine == nil {
			return fmt.Errorf("stored event %d was returned to no caller", e.Seq)
		}
		sameJSON(t, fmt.Sprintf("event %d as returned vs stored", e.Seq), mine, e)
		return nil
	}))
	if uint64(len(got)) != total-1 {
		t.Fatalf("%d callers got events, want %d", len(got), total-1)
	}
}

func testBackupRestore(t *testing.T, open func(t *testing.T) store.Store) {
	src := newStore(t, open)
	ctx := t.Context()
	now := time.Now()
	d := device("d1")
	d.Aliases = map[string]string{"serial": "SN"}
	c := cert("d1", 1)
	noErr(t, "RecordIssuance", src.RecordIssuance(ctx, store.Issuance{Device: d, Cert: c, Audit: auditEv("enroll.issue", "d1"),
		Attestation: &store.Attestation{ID: "a1", DeviceID: "d1", Format: "tpm", KeySHA256: c.KeySHA256, VerifiedAt: base}}))
	h := hashOf("pending")
	noErr(t, "PutChallenge", src.PutChallenge(ctx, &store.Challenge{SHA256: h, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}))
	noErr(t, "PutSession", src.PutSession(ctx, &store.Session{NAS: "n", AcctSessionID: "s", DeviceID: "d1", StartedAt: base}))
	noErr(t, "PutACMEAccount", src.PutACMEAccount(ctx, acmeAccount("acct", "tp")))
	noErr(t, "AppendAudit", src.AppendAudit(ctx, auditEv("admin.backup", "")))

	var buf bytes.Buffer
	noErr(t, "Backup", src.Backup(ctx, &buf))
	if buf.Len() == 0 {
		t.Fatal("empty backup")
	}
	wantErr(t, "Restore(into non-empty)", src.Restore(ctx, bytes.NewReader(buf.Bytes())), store.ErrExists)

	dst := newStore(t, open)
	noErr(t, "Restore", dst.Restore(ctx, bytes.NewReader(buf.Bytes())))
	gd, err := dst.GetDevice(ctx, "d1")
	noErr(t, "GetDevice(restored)", err)
	sameJSON(t, "restored device", gd, d)
	gc, err := dst.GetCert(ctx, c.SHA256)
	noErr(t, "GetCert(restored)", err)
	sameJSON(t, "restored cert", gc, c)
	for _, check := range []struct {
		what string
		err  error
	}{
		{"GetCertBySerial", func() error { _, err := dst.GetCertBySerial(ctx, c.Serial); return err }()},
		{"FindDeviceByAlias", func() error { _, err := dst.FindDeviceByAlias(ctx, "serial", "SN"); return err }()},
		{"FindAttestationByKey", func() error { _, err := dst.FindAttestationByKey(ctx, c.KeySHA256); return err }()},
		{"GetSession", func() error { _, err := dst.GetSession(ctx, "n", "s"); return err }()},
		{"FindACMEAccountByThumbprint", func() error { _, err := dst.FindACMEAccountByThumbprint(ctx, "tp"); return err }()},
	} {
		noErr(t, check.what+"(restored)", check.err)
	}
	verifyOK(t, dst, 2)
	// The restored chain continues where the source's ended.
	ev := auditEv("admin.restore", "")
	noErr(t, "AppendAudit(restored)", dst.AppendAudit(ctx, ev))
	if ev.Seq != 3 {
		t.Fatalf("append after restore got seq %d, want 3", ev.Seq)
	}
	verifyOK(t, dst, 3)
	_, err = dst.ConsumeChallenge(ctx, h, now)
	noErr(t, "ConsumeChallenge(restored)", err)
}

func testCanceled(t *testing.T, open func(t *testing.T) store.Store) {
	s := newStore(t, open)
	r := watch(t, s)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	tests := []struct {
		name string
		call func() error
	}{
		{"PutDevice", func() error { return s.PutDevice(ctx, device("d1")) }},
		{"GetCert", func() error { _, err := s.GetCert(ctx, hashOf("x")); return err }},
		{"AppendAudit", func() error { return s.AppendAudit(ctx, auditEv("x", "y")) }},
		{"CloseNASSessions", func() error { _, err := s.CloseNASSessions(ctx, store.NASScope{NAS: "nas"}, base, 11); return err }},
		{"ClaimNonce", func() error { return s.ClaimNonce(ctx, "webhook", hashOf("n"), time.Now().Add(time.Hour)) }},
		{"PutACMEAccount", func() error { return s.PutACMEAccount(ctx, acmeAccount("a", "tp")) }},
		{"RecordIssuance", func() error {
			return s.RecordIssuance(ctx, store.Issuance{Device: device("d1"), Cert: cert("d1", 1), Audit: auditEv("x", "y")})
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantErr(t, tc.name, tc.call(), context.Canceled)
		})
	}
	if n := auditCount(t, s); n != 0 {
		t.Fatalf("canceled calls wrote %d audit events", n)
	}
	r.none(t, "canceled writes")
}

// The shared ticket keys are one record written by compare-and-swap on
// its version: before the first put it is not found, a put with a stale
// version conflicts and writes nothing.
func testTicketKeys(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	ctx := context.Background()
	if _, err := s.GetTicketKeys(ctx); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetTicketKeys on an empty store: %v, want ErrNotFound", err)
	}
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	k := &store.TicketKeys{Sealed: []byte("sealed-1"), Rotated: at}
	if err := s.PutTicketKeys(ctx, k, 0); err != nil {
		t.Fatal(err)
	}
	if k.Version != 1 || k.V != store.RecordVersion {
		t.Fatalf("after the first put: %+v", k)
	}
	got, err := s.GetTicketKeys(ctx)
	if err != nil || got.Version != 1 || !bytes.Equal(got.Sealed, []byte("sealed-1")) || !got.Rotated.Equal(at) {
		t.Fatalf("GetTicketKeys = %+v, %v", got, err)
	}
	for _, prev := range []uint64{0, 2} {
		stale := &store.TicketKeys{Sealed: []byte("stale"), Rotated: at}
		if err := s.PutTicketKeys(ctx, stale, prev); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("put with version %d over version 1: %v, want ErrConflict", prev, err)
		}
	}
	k2 := &store.TicketKeys{Sealed: []byte("sealed-2"), Rotated: at.Add(time.Hour)}
	if err := s.PutTicketKeys(ctx, k2, 1); err != nil || k2.Version != 2 {
		t.Fatalf("put over version 1: %+v, %v", k2, err)
	}
	if got, _ := s.GetTicketKeys(ctx); got == nil || !bytes.Equal(got.Sealed, []byte("sealed-2")) {
		t.Fatalf("after the second put: %+v", got)
	}
	if err := s.PutTicketKeys(ctx, &store.TicketKeys{}, 2); err == nil {
		t.Fatal("put of an empty record succeeded")
	}
}

// Nodes rotating at once: of the puts expecting one version, exactly one
// is written.
func testTicketKeysConcurrency(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	ctx := context.Background()
	if err := s.PutTicketKeys(ctx, &store.TicketKeys{Sealed: []byte("base")}, 0); err != nil {
		t.Fatal(err)
	}
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			errs[i] = s.PutTicketKeys(ctx, &store.TicketKeys{Sealed: []byte(fmt.Sprintf("node-%d", i))}, 1)
		})
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, store.ErrConflict):
			t.Fatalf("concurrent put: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d concurrent puts won, want 1", won)
	}
	if got, err := s.GetTicketKeys(ctx); err != nil || got.Version != 2 {
		t.Fatalf("after the race: %+v, %v", got, err)
	}
}

// A cached document is one record per name: not found before the first
// put, read back as written, replaced by a later fetch, kept against an
// earlier one (ErrConflict), and bounded.
func testDocuments(t *testing.T, open func(t *testing.T) store.Store) {
	s := newStore(t, open)
	ctx := t.Context()
	if _, err := s.GetDocument(ctx, "android-status"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetDocument on an empty store: %v, want ErrNotFound", err)
	}
	// Large enough to leave a backend's inline value paths; within what
	// every backend, in memory too, holds.
	body := bytes.Repeat([]byte(`{"entries":{}}`), 256<<10/14)
	at := time.Date(2026, 12, 3, 7, 0, 0, 123456000, time.UTC)
	d := &store.Document{Name: "android-status", Source: "https://example.test/status", Body: body, Fetched: at}
	if err := s.PutDocument(ctx, d); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetDocument(ctx, "android-status")
	if err != nil || got.Name != d.Name || got.Source != d.Source || !bytes.Equal(got.Body, body) || !got.Fetched.Equal(at) || got.V != store.RecordVersion {
		t.Fatalf("GetDocument = %+v (body %d bytes), %v", got.Fetched, len(got.Body), err)
	}
	if _, err := s.GetDocument(ctx, "other"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another name: %v, want ErrNotFound", err)
	}
	older := &store.Document{Name: "android-status", Source: "file", Body: []byte("old"), Fetched: at.Add(-time.Minute)}
	if err := s.PutDocument(ctx, older); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("put of an earlier fetch: %v, want ErrConflict", err)
	}
	if got, _ := s.GetDocument(ctx, "android-status"); got == nil || !bytes.Equal(got.Body, body) {
		t.Fatal("an earlier fetch replaced a later one")
	}
	same := &store.Document{Name: "android-status", Source: "file", Body: []byte("same time"), Fetched: at}
	if err := s.PutDocument(ctx, same); err != nil {
		t.Fatalf("put of a fetch at the same time: %v", err)
	}
	newer := &store.Document{Name: "android-status", Body: []byte("new"), Fetched: at.Add(time.Hour)}
	if err := s.PutDocument(ctx, newer); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetDocument(ctx, "android-status"); got == nil || string(got.Body) != "new" || got.Source != "" || !got.Fetched.Equal(at.Add(time.Hour)) {
		t.Fatalf("after a later fetch: %+v", got)
	}
	for name, bad := range map[string]*store.Document{
		"nil":       nil,
		"no name":   {Body: []byte("x"), Fetched: at},
		"long name": {Name: string(bytes.Repeat([]byte("n"), store.MaxDocumentNameLen+1)), Body: []byte("x"), Fetched: at},
		"NUL name":  {Name: "a\x00b", Body: []byte("x"), Fetched: at},
		"no body":   {Name: "d", Fetched: at},
		"too large": {Name: "d", Body: make([]byte, store.MaxDocumentSize+1), Fetched: at},
		"no time":   {Name: "d", Body: []byte("x")},
	} {
		if err := s.PutDocument(ctx, bad); err == nil {
			t.Errorf("put of a document with %s succeeded", name)
		}
	}
	if _, err := s.GetDocument(ctx, "d"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a refused put wrote: %v", err)
	}
}

// Nodes writing one document at once: every put either wins or conflicts,
// and the newest fetch is what stays.
func testDocumentsConcurrency(t *testing.T, open func(t *testing.T) store.Store) {
	s := newStore(t, open)
	ctx := t.Context()
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			errs[i] = s.PutDocument(ctx, &store.Document{Name: "doc", Body: []byte(fmt.Sprintf("node-%d", i)), Fetched: base.Add(time.Duration(i) * time.Second)})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil && !errors.Is(err, store.ErrConflict) {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	got, err := s.GetDocument(ctx, "doc")
	if err != nil || string(got.Body) != fmt.Sprintf("node-%d", n-1) {
		t.Fatalf("after the race: %+v, %v; want the newest fetch", got, err)
	}
}
