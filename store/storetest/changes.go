package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"hardbound/store"
)

// recorder collects the changes a store announces to one watcher.
type recorder struct {
	mu  sync.Mutex
	got []store.Change
}

func (r *recorder) add(c store.Change) {
	r.mu.Lock()
	r.got = append(r.got, c)
	r.mu.Unlock()
}

// take returns what was announced since the last take. It does not wait:
// a write's changes are delivered before the write returns.
func (r *recorder) take() []store.Change {
	r.mu.Lock()
	defer r.mu.Unlock()
	got := r.got
	r.got = nil
	return got
}

// watch subscribes a recorder to s for the rest of the test.
func watch(t *testing.T, s store.Store) *recorder {
	t.Helper()
	r := &recorder{}
	t.Cleanup(s.Watch(r.add))
	return r
}

// one takes exactly one change of kind, announced by what.
func (r *recorder) one(t *testing.T, what string, kind store.ChangeKind) store.Change {
	t.Helper()
	got := r.take()
	if len(got) != 1 || got[0].Kind != kind {
		t.Fatalf("%s announced %s, want one %s change", what, kinds(got), kind)
	}
	if got[0].Seq == 0 {
		t.Fatalf("%s: change has no Seq: %+v", what, got[0])
	}
	return got[0]
}

// none checks that nothing was announced since the last take.
func (r *recorder) none(t *testing.T, what string) {
	t.Helper()
	if got := r.take(); len(got) != 0 {
		t.Fatalf("%s announced %s, want nothing", what, kinds(got))
	}
}

func kinds(cs []store.Change) string {
	out := "["
	for i, c := range cs {
		if i > 0 {
			out += " "
		}
		out += c.Kind.String()
	}
	return out + "]"
}

func testChangesDevices(t *testing.T, open func(t *testing.T) store.Store) {
	s := newStore(t, open)
	ctx := t.Context()
	r := watch(t, s)

	d := device("d1")
	noErr(t, "PutDevice", s.PutDevice(ctx, d))
	c := r.one(t, "PutDevice(create)", store.ChangeDevice)
	if c.DeviceID != "d1" || c.Prev != nil {
		t.Fatalf("create: device %q prev %+v, want d1 and no prev", c.DeviceID, c.Prev)
	}
	sameJSON(t, "created device", c.Device, d)
	if !c.At.Equal(d.UpdatedAt) {
		t.Fatalf("create: At %v, want the stamped UpdatedAt %v", c.At, d.UpdatedAt)
	}

	d2 := device("d1")
	d2.Platform = "windows"
	noErr(t, "PutDevice(replace)", s.PutDevice(ctx, d2))
	c = r.one(t, "PutDevice(replace)", store.ChangeDevice)
	sameJSON(t, "replace: prev", c.Prev, d)
	sameJSON(t, "replace: device", c.Device, d2)

	upd, err := s.UpdateDevice(ctx, "d1", func(d *store.Device) error {
		d.Status = store.DeviceQuarantined
		return nil
	}, &store.AuditEvent{Actor: "admin:ops", Action: "device.quarantine", Subject: "d1", Result: "ok"})
	noErr(t, "UpdateDevice", err)
	c = r.one(t, "UpdateDevice", store.ChangeDevice)
	if c.Actor != "admin:ops" || c.Prev == nil || c.Prev.Status != store.DeviceActive || c.Device.Status != store.DeviceQuarantined {
		t.Fatalf("UpdateDevice: %+v (prev %+v)", c, c.Prev)
	}
	sameJSON(t, "UpdateDevice: device", c.Device, upd)
	// The change holds the store's copy, not the caller's.
	upd.Status = store.DeviceRevoked
	upd.Groups[0] = "changed"
	if c.Device.Status != store.DeviceQuarantined || c.Device.Groups[0] != "eng" {
		t.Fatalf("the change shares the returned device: %+v", c.Device)
	}

	// A write without an audit event names no actor.
	_, err = s.UpdateDevice(ctx, "d1", func(d *store.Device) error { d.Aliases = map[string]string{"serial": "SN1"}; return nil }, nil)
	noErr(t, "UpdateDevice(aliases)", err)
	if c = r.one(t, "UpdateDevice(aliases)", store.ChangeDevice); c.Actor != "" || c.Device.Aliases["serial"] != "SN1" {
		t.Fatalf("UpdateDevice(aliases): %+v", c)
	}

	// Failed and aborted writes announce nothing.
	boom := errors.New("boom")
	_, err = s.UpdateDevice(ctx, "d1", func(d *store.Device) error { d.Status = store.DeviceRevoked; return boom }, nil)
	wantErr(t, "UpdateDevice(fn error)", err, boom)
	r.none(t, "an aborted UpdateDevice")
	_, err = s.UpdateDevice(ctx, "missing", func(*store.Device) error { return nil }, nil)
	wantErr(t, "UpdateDevice(missing)", err, store.ErrNotFound)
	r.none(t, "UpdateDevice of a missing device")
	taken := device("d2")
	taken.Aliases = map[string]string{"serial": "SN1"}
	wantErr(t, "PutDevice(alias taken)", s.PutDevice(ctx, taken), store.ErrExists)
	r.none(t, "a refused PutDevice")
}

func testChangesIssuance(t *testing.T, open func(t *testing.T) store.Store) {
	s := newStore(t, open)
	ctx := t.Context()
	r := watch(t, s)

	c1 := cert("d1", 1)
	att := &store.Attestation{ID: "a1", DeviceID: "d1", Format: "tpm", KeySHA256: c1.KeySHA256, VerifiedAt: base}
	d := device("d1")
	noErr(t, "RecordIssuance", s.RecordIssuance(ctx, store.Issuance{Device: d, Cert: c1, Attestation: att,
		Audit: &store.AuditEvent{Actor: "device:d1", Action: "enroll.issue", Subject: "d1", Result: "ok"}}))
	c := r.one(t, "RecordIssuance", store.ChangeIssued)
	if c.DeviceID != "d1" || c.CertSHA256 != c1.SHA256 || c.Actor != "device:d1" || c.Prev != nil {
		t.Fatalf("RecordIssuance: %+v", c)
	}
	if c.Cert == nil || c.Cert.DER != nil || c.Cert.SHA256 != c1.SHA256 || c.Cert.Revoked != nil {
		t.Fatalf("RecordIssuance: cert %+v, want the binding without DER", c.Cert)
	}
	sameJSON(t, "issued device", c.Device, d)
	sameJSON(t, "issued attestation", c.Attestation, att)

	// A second issuance merges into the existing device.
	c2 := cert("d1", 2)
	noErr(t, "RecordIssuance(second)", s.RecordIssuance(ctx, store.Issuance{Cert: c2, Audit: auditEv("enroll.issue", "d1")}))
	c = r.one(t, "RecordIssuance(second)", store.ChangeIssued)
	if c.Prev == nil || c.Device == nil || c.Attestation != nil || c.CertSHA256 != c2.SHA256 {
		t.Fatalf("RecordIssuance(second): %+v", c)
	}
	sameJSON(t, "second issuance: prev", c.Prev, d)

	// A refused issuance announces nothing.
	err := s.RecordIssuance(ctx, store.Issuance{Device: device("d1"), Cert: cert("d1", 1), Audit: auditEv("enroll.issue", "d1")})
	wantErr(t, "RecordIssuance(duplicate)", err, store.ErrExists)
	r.none(t, "a duplicate RecordIssuance")
	now := time.Now()
	h := hashOf("used")
	noErr(t, "PutChallenge", s.PutChallenge(ctx, &store.Challenge{SHA256: h, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}))
	_, err = s.ConsumeChallenge(ctx, h, now)
	noErr(t, "ConsumeChallenge", err)
	err = s.RecordIssuance(ctx, store.Issuance{Device: device("d3"), Cert: cert("d3", 1), Challenge: &h, Audit: auditEv("enroll.issue", "d3")})
	wantErr(t, "RecordIssuance(consumed challenge)", err, store.ErrConsumed)
	r.none(t, "an issuance with a consumed challenge")
}

func testChangesRevocation(t *testing.T, open func(t *testing.T) store.Store) {
	s := newStore(t, open)
	ctx := t.Context()
	c1 := issue(t, s, "d1", 1)
	c2 := issue(t, s, "d1", 2)
	c3 := issue(t, s, "d1", 3)
	r := watch(t, s)

	rev := store.Revocation{At: base, Reason: 1, Actor: "admin:first"}
	got, err := s.RevokeCert(ctx, c1.SHA256, rev, nil)
	noErr(t, "RevokeCert", err)
	c := r.one(t, "RevokeCert", store.ChangeCertRevoked)
	if c.DeviceID != "d1" || c.CertSHA256 != c1.SHA256 || c.Actor != "admin:first" || c.Cert == nil || c.Cert.DER != nil {
		t.Fatalf("RevokeCert: %+v", c)
	}
	sameJSON(t, "revoked binding", c.Cert.Revoked, got.Revoked)

	_, err = s.RevokeCert(ctx, c1.SHA256, store.Revocation{Reason: 4, Actor: "admin:second"}, auditEv("cert.revoke", c1.Serial))
	noErr(t, "RevokeCert(again)", err)
	r.none(t, "revoking a revoked cert")
	_, err = s.RevokeCert(ctx, hashOf("missing"), rev, nil)
	wantErr(t, "RevokeCert(missing)", err, store.ErrNotFound)
	r.none(t, "revoking a missing cert")

	// The change is delivered once the revocation is committed: fn reads it.
	var seen *store.Cert
	stop := s.Watch(func(c store.Change) {
		if c.Kind == store.ChangeCertRevoked {
			seen, _ = s.GetCertBinding(ctx, c.CertSHA256)
		}
	})
	_, err = s.RevokeCert(ctx, c2.SHA256, rev, nil)
	noErr(t, "RevokeCert(c2)", err)
	stop()
	if seen == nil || seen.Revoked == nil {
		t.Fatalf("the watcher read %+v, want the revoked binding", seen)
	}
	r.one(t, "RevokeCert(c2)", store.ChangeCertRevoked)

	dev, _, err := s.RevokeDevice(ctx, "d1", store.Revocation{Reason: 5, Actor: "admin:dev"},
		&store.AuditEvent{Actor: "admin:ops", Action: "device.revoke", Subject: "d1", Result: "ok"})
	noErr(t, "RevokeDevice", err)
	c = r.one(t, "RevokeDevice", store.ChangeDeviceRevoked)
	if c.DeviceID != "d1" || c.Actor != "admin:ops" || c.Prev == nil || c.Prev.Status != store.DeviceActive {
		t.Fatalf("RevokeDevice: %+v (prev %+v)", c, c.Prev)
	}
	sameJSON(t, "revoked device", c.Device, dev)
	// Only the cert this write revoked: c1 and c2 were revoked before.
	if len(c.Certs) != 1 || c.Certs[0].SHA256 != c3.SHA256 || c.Certs[0].Revoked == nil || c.Certs[0].DER != nil {
		t.Fatalf("RevokeDevice: certs %+v, want c3 alone, revoked, without DER", c.Certs)
	}

	_, _, err = s.RevokeDevice(ctx, "d1", store.Revocation{Reason: 5}, nil)
	noErr(t, "RevokeDevice(again)", err)
	r.none(t, "revoking a revoked device")
	// A binding issued to the revoked device is revoked by the next
	// RevokeDevice, which announces it with the device unchanged.
	c4 := issue(t, s, "d1", 4)
	r.one(t, "RecordIssuance(revoked device)", store.ChangeIssued)
	_, _, err = s.RevokeDevice(ctx, "d1", store.Revocation{Reason: 5}, nil)
	noErr(t, "RevokeDevice(new binding)", err)
	c = r.one(t, "RevokeDevice(new binding)", store.ChangeDeviceRevoked)
	if c.Prev == nil || c.Prev.Status != store.DeviceRevoked || len(c.Certs) != 1 || c.Certs[0].SHA256 != c4.SHA256 {
		t.Fatalf("RevokeDevice(new binding): %+v (prev %+v)", c, c.Prev)
	}
	_, _, err = s.RevokeDevice(ctx, "missing", rev, nil)
	wantErr(t, "RevokeDevice(missing)", err, store.ErrNotFound)
	r.none(t, "revoking a missing device")
}

func testChangesAttestation(t *testing.T, open func(t *testing.T) store.Store) {
	s := newStore(t, open)
	ctx := t.Context()
	r := watch(t, s)
	a := &store.Attestation{ID: "a1", DeviceID: "d1", Format: "apple", KeySHA256: hashOf("k"),
		Facts: map[string]string{"model": "iPhone"}, VerifiedAt: base}
	noErr(t, "PutAttestation", s.PutAttestation(ctx, a))
	c := r.one(t, "PutAttestation", store.ChangeAttestation)
	if c.DeviceID != "d1" {
		t.Fatalf("PutAttestation: device %q", c.DeviceID)
	}
	sameJSON(t, "announced attestation", c.Attestation, a)
	if err := s.PutAttestation(ctx, &store.Attestation{ID: "a2", DeviceID: "d1"}); err == nil {
		t.Fatal("PutAttestation without a key succeeded")
	}
	r.none(t, "a refused PutAttestation")
}

// Writes that change no device, binding or attestation announce nothing.
func testChangesQuietWrites(t *testing.T, open func(t *testing.T) store.Store) {
	s := newStore(t, open)
	ctx := t.Context()
	r := watch(t, s)
	now := time.Now()
	h := hashOf("c1")
	noErr(t, "PutChallenge", s.PutChallenge(ctx, &store.Challenge{SHA256: h, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}))
	_, err := s.ConsumeChallenge(ctx, h, now)
	noErr(t, "ConsumeChallenge", err)
	noErr(t, "PutSession", s.PutSession(ctx, &store.Session{NAS: "n", AcctSessionID: "s", DeviceID: "d1", StartedAt: base}))
	_, err = s.CloseNASSessions(ctx, store.NASScope{NAS: "n"}, base.Add(time.Hour), 11)
	noErr(t, "CloseNASSessions", err)
	noErr(t, "PutACMEAccount", s.PutACMEAccount(ctx, acmeAccount("acct", "tp")))
	noErr(t, "AppendAudit", s.AppendAudit(ctx, auditEv("admin.auth", "")))
	noErr(t, "AppendAudits", s.AppendAudits(ctx, []*store.AuditEvent{auditEv("radius.auth", "d1")}))
	r.none(t, "challenge, session, ACME account and audit writes")
}

// Changes reach every watcher in commit order with Seq increasing, also
// when writers race: the changes of one device chain Prev to Device.
func testChangesOrder(t *testing.T, open func(t *testing.T) store.Store) {
	s := newStore(t, open)
	ctx := t.Context()
	d := device("d1")
	d.Profile = "0"
	noErr(t, "PutDevice", s.PutDevice(ctx, d))
	a, b := watch(t, s), watch(t, s)

	const writers, each = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for range each {
				// Half the writers audit: both kinds of write are ordered.
				var ev *store.AuditEvent
				if w%2 == 0 {
					ev = auditEv("device.update", fmt.Sprint(w))
				}
				_, err := s.UpdateDevice(ctx, "d1", func(d *store.Device) error {
					n, err := strconv.Atoi(d.Profile)
					d.Profile = strconv.Itoa(n + 1)
					return err
				}, ev)
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("UpdateDevice: %v", err)
	}
	got := a.take()
	if len(got) != writers*each {
		t.Fatalf("announced %d changes, want %d", len(got), writers*each)
	}
	for i, c := range got {
		if i > 0 && c.Seq <= got[i-1].Seq {
			t.Fatalf("change %d has Seq %d after %d", i, c.Seq, got[i-1].Seq)
		}
		if c.Prev.Profile != strconv.Itoa(i) || c.Device.Profile != strconv.Itoa(i+1) {
			t.Fatalf("change %d goes from %q to %q, want %d to %d: not in commit order", i, c.Prev.Profile, c.Device.Profile, i, i+1)
		}
	}
	other := b.take()
	if len(other) != len(got) {
		t.Fatalf("second watcher got %d changes, first %d", len(other), len(got))
	}
	for i := range got {
		if other[i].Seq != got[i].Seq {
			t.Fatalf("watchers disagree at %d: Seq %d and %d", i, other[i].Seq, got[i].Seq)
		}
	}
}

// After stop, fn is not called again; other watchers keep theirs.
func testChangesStop(t *testing.T, open func(t *testing.T) store.Store) {
	s := newStore(t, open)
	ctx := t.Context()
	kept := watch(t, s)
	stopped := &recorder{}
	stop := s.Watch(stopped.add)
	noErr(t, "PutDevice", s.PutDevice(ctx, device("d1")))
	stopped.one(t, "PutDevice before stop", store.ChangeDevice)
	stop()
	stop() // a second stop is harmless
	noErr(t, "PutDevice", s.PutDevice(ctx, device("d2")))
	stopped.none(t, "PutDevice after stop")
	if got := kept.take(); len(got) != 2 {
		t.Fatalf("the remaining watcher got %s, want two device changes", kinds(got))
	}
}

// Restore replaces what caches hold: it announces a reset. A refused
// restore announces nothing.
func testChangesRestore(t *testing.T, open func(t *testing.T) store.Store) {
	src := newStore(t, open)
	ctx := t.Context()
	issue(t, src, "d1", 1)
	var buf bytes.Buffer
	noErr(t, "Backup", src.Backup(ctx, &buf))
	r := watch(t, src)
	wantErr(t, "Restore(into non-empty)", src.Restore(ctx, bytes.NewReader(buf.Bytes())), store.ErrExists)
	r.none(t, "a refused Restore")

	dst := newStore(t, open)
	rd := watch(t, dst)
	noErr(t, "Restore", dst.Restore(ctx, bytes.NewReader(buf.Bytes())))
	c := rd.one(t, "Restore", store.ChangeReset)
	if c.DeviceID != "" || c.Device != nil || c.Cert != nil {
		t.Fatalf("reset carries records: %+v", c)
	}
}
