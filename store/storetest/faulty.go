package storetest

import (
	"context"
	"io"
	"sync"
	"time"

	"hardbound/store"
)

// Faulty wraps a real store and lets a test make chosen calls fail, for
// error paths a real store can't be coaxed into. Fail is asked before every
// call with the method name (e.g. "RecordIssuance"); a non-nil error is
// returned instead of calling through. A nil Fail passes everything.
type Faulty struct {
	store.Store
	Fail func(method string) error
}

// FailOn returns a Fail func that fails the nth call (1-based) of method
// with err, or every call of it when n is 0. It is safe for concurrent use.
func FailOn(method string, n int, err error) func(string) error {
	var (
		mu    sync.Mutex
		calls int
	)
	return func(m string) error {
		if m != method {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		calls++
		if n == 0 || calls == n {
			return err
		}
		return nil
	}
}

func (f *Faulty) fail(m string) error {
	if f.Fail == nil {
		return nil
	}
	return f.Fail(m)
}

// Watch passes through: a write that Fail refuses never reaches the store,
// so it announces nothing, like any failed write.
func (f *Faulty) Watch(fn func(store.Change)) (stop func()) { return f.Store.Watch(fn) }

func (f *Faulty) PutDevice(ctx context.Context, d *store.Device) error {
	if err := f.fail("PutDevice"); err != nil {
		return err
	}
	return f.Store.PutDevice(ctx, d)
}

func (f *Faulty) GetDevice(ctx context.Context, id string) (*store.Device, error) {
	if err := f.fail("GetDevice"); err != nil {
		return nil, err
	}
	return f.Store.GetDevice(ctx, id)
}

func (f *Faulty) UpdateDevice(ctx context.Context, id string, fn func(*store.Device) error, ev *store.AuditEvent) (*store.Device, error) {
	if err := f.fail("UpdateDevice"); err != nil {
		return nil, err
	}
	return f.Store.UpdateDevice(ctx, id, fn, ev)
}

func (f *Faulty) ListDevices(ctx context.Context, flt store.DeviceFilter, p store.Page) ([]*store.Device, string, error) {
	if err := f.fail("ListDevices"); err != nil {
		return nil, "", err
	}
	return f.Store.ListDevices(ctx, flt, p)
}

func (f *Faulty) FindDeviceByAlias(ctx context.Context, kind, value string) (*store.Device, error) {
	if err := f.fail("FindDeviceByAlias"); err != nil {
		return nil, err
	}
	return f.Store.FindDeviceByAlias(ctx, kind, value)
}

func (f *Faulty) RecordIssuance(ctx context.Context, is store.Issuance) error {
	if err := f.fail("RecordIssuance"); err != nil {
		return err
	}
	return f.Store.RecordIssuance(ctx, is)
}

func (f *Faulty) GetCertBinding(ctx context.Context, sha store.Hash) (*store.Cert, error) {
	if err := f.fail("GetCertBinding"); err != nil {
		return nil, err
	}
	return f.Store.GetCertBinding(ctx, sha)
}

func (f *Faulty) GetCert(ctx context.Context, sha store.Hash) (*store.Cert, error) {
	if err := f.fail("GetCert"); err != nil {
		return nil, err
	}
	return f.Store.GetCert(ctx, sha)
}

func (f *Faulty) GetCertBySerial(ctx context.Context, serial string) (*store.Cert, error) {
	if err := f.fail("GetCertBySerial"); err != nil {
		return nil, err
	}
	return f.Store.GetCertBySerial(ctx, serial)
}

func (f *Faulty) ListCerts(ctx context.Context, flt store.CertFilter, p store.Page) ([]*store.Cert, string, error) {
	if err := f.fail("ListCerts"); err != nil {
		return nil, "", err
	}
	return f.Store.ListCerts(ctx, flt, p)
}

func (f *Faulty) RevokeCert(ctx context.Context, sha store.Hash, r store.Revocation, ev *store.AuditEvent) (*store.Cert, error) {
	if err := f.fail("RevokeCert"); err != nil {
		return nil, err
	}
	return f.Store.RevokeCert(ctx, sha, r, ev)
}

func (f *Faulty) RevokeDevice(ctx context.Context, id string, r store.Revocation, ev *store.AuditEvent) (*store.Device, []*store.Cert, error) {
	if err := f.fail("RevokeDevice"); err != nil {
		return nil, nil, err
	}
	return f.Store.RevokeDevice(ctx, id, r, ev)
}

func (f *Faulty) PutAttestation(ctx context.Context, a *store.Attestation) error {
	if err := f.fail("PutAttestation"); err != nil {
		return err
	}
	return f.Store.PutAttestation(ctx, a)
}

func (f *Faulty) GetAttestation(ctx context.Context, id string) (*store.Attestation, error) {
	if err := f.fail("GetAttestation"); err != nil {
		return nil, err
	}
	return f.Store.GetAttestation(ctx, id)
}

func (f *Faulty) FindAttestationByKey(ctx context.Context, key store.Hash) (*store.Attestation, error) {
	if err := f.fail("FindAttestationByKey"); err != nil {
		return nil, err
	}
	return f.Store.FindAttestationByKey(ctx, key)
}

func (f *Faulty) PutChallenge(ctx context.Context, c *store.Challenge) error {
	if err := f.fail("PutChallenge"); err != nil {
		return err
	}
	return f.Store.PutChallenge(ctx, c)
}

func (f *Faulty) GetChallenge(ctx context.Context, sha store.Hash) (*store.Challenge, error) {
	if err := f.fail("GetChallenge"); err != nil {
		return nil, err
	}
	return f.Store.GetChallenge(ctx, sha)
}

func (f *Faulty) ClaimNonce(ctx context.Context, scope string, nonce store.Hash, expires time.Time) error {
	if err := f.fail("ClaimNonce"); err != nil {
		return err
	}
	return f.Store.ClaimNonce(ctx, scope, nonce, expires)
}

func (f *Faulty) CreateACMEOrder(ctx context.Context, o *store.ACMEOrder, maxPerAccount int) error {
	if err := f.fail("CreateACMEOrder"); err != nil {
		return err
	}
	return f.Store.CreateACMEOrder(ctx, o, maxPerAccount)
}

func (f *Faulty) GetACMEOrder(ctx context.Context, id string) (*store.ACMEOrder, error) {
	if err := f.fail("GetACMEOrder"); err != nil {
		return nil, err
	}
	return f.Store.GetACMEOrder(ctx, id)
}

func (f *Faulty) UpdateACMEOrder(ctx context.Context, o *store.ACMEOrder, prev uint64) error {
	if err := f.fail("UpdateACMEOrder"); err != nil {
		return err
	}
	return f.Store.UpdateACMEOrder(ctx, o, prev)
}

func (f *Faulty) ListACMEOrders(ctx context.Context, account string) ([]*store.ACMEOrder, error) {
	if err := f.fail("ListACMEOrders"); err != nil {
		return nil, err
	}
	return f.Store.ListACMEOrders(ctx, account)
}

func (f *Faulty) ConsumeChallenge(ctx context.Context, sha store.Hash, now time.Time) (*store.Challenge, error) {
	if err := f.fail("ConsumeChallenge"); err != nil {
		return nil, err
	}
	return f.Store.ConsumeChallenge(ctx, sha, now)
}

func (f *Faulty) PutSession(ctx context.Context, s *store.Session) error {
	if err := f.fail("PutSession"); err != nil {
		return err
	}
	return f.Store.PutSession(ctx, s)
}

func (f *Faulty) GetSession(ctx context.Context, nas, acctSessionID string) (*store.Session, error) {
	if err := f.fail("GetSession"); err != nil {
		return nil, err
	}
	return f.Store.GetSession(ctx, nas, acctSessionID)
}

func (f *Faulty) ListSessions(ctx context.Context, deviceID string, liveOnly bool, p store.Page) ([]*store.Session, string, error) {
	if err := f.fail("ListSessions"); err != nil {
		return nil, "", err
	}
	return f.Store.ListSessions(ctx, deviceID, liveOnly, p)
}

func (f *Faulty) CloseNASSessions(ctx context.Context, scope store.NASScope, at time.Time, cause uint32) (int, error) {
	if err := f.fail("CloseNASSessions"); err != nil {
		return 0, err
	}
	return f.Store.CloseNASSessions(ctx, scope, at, cause)
}

func (f *Faulty) PutACMEAccount(ctx context.Context, a *store.ACMEAccount) error {
	if err := f.fail("PutACMEAccount"); err != nil {
		return err
	}
	return f.Store.PutACMEAccount(ctx, a)
}

func (f *Faulty) GetACMEAccount(ctx context.Context, id string) (*store.ACMEAccount, error) {
	if err := f.fail("GetACMEAccount"); err != nil {
		return nil, err
	}
	return f.Store.GetACMEAccount(ctx, id)
}

func (f *Faulty) FindACMEAccountByThumbprint(ctx context.Context, tp string) (*store.ACMEAccount, error) {
	if err := f.fail("FindACMEAccountByThumbprint"); err != nil {
		return nil, err
	}
	return f.Store.FindACMEAccountByThumbprint(ctx, tp)
}

func (f *Faulty) AppendAudit(ctx context.Context, ev *store.AuditEvent) error {
	if err := f.fail("AppendAudit"); err != nil {
		return err
	}
	return f.Store.AppendAudit(ctx, ev)
}

func (f *Faulty) AppendAudits(ctx context.Context, evs []*store.AuditEvent) error {
	if err := f.fail("AppendAudits"); err != nil {
		return err
	}
	return f.Store.AppendAudits(ctx, evs)
}

func (f *Faulty) TailAudit(ctx context.Context, n int) ([]*store.AuditEvent, error) {
	if err := f.fail("TailAudit"); err != nil {
		return nil, err
	}
	return f.Store.TailAudit(ctx, n)
}

func (f *Faulty) ScanAudit(ctx context.Context, from uint64, fn func(*store.AuditEvent) error) error {
	if err := f.fail("ScanAudit"); err != nil {
		return err
	}
	return f.Store.ScanAudit(ctx, from, fn)
}

func (f *Faulty) VerifyAudit(ctx context.Context) (store.VerifyResult, error) {
	if err := f.fail("VerifyAudit"); err != nil {
		return store.VerifyResult{}, err
	}
	return f.Store.VerifyAudit(ctx)
}

func (f *Faulty) Backup(ctx context.Context, w io.Writer) error {
	if err := f.fail("Backup"); err != nil {
		return err
	}
	return f.Store.Backup(ctx, w)
}

func (f *Faulty) Restore(ctx context.Context, r io.Reader) error {
	if err := f.fail("Restore"); err != nil {
		return err
	}
	return f.Store.Restore(ctx, r)
}
