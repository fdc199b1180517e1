package admin

import (
	"context"
	"crypto/x509"
	"io"
	"time"

	"hardbound/admin/token"
	"hardbound/enroll/attest"
	"hardbound/enroll/devbind"
	"hardbound/enroll/scep"
	"hardbound/store"
	"hardbound/store/auditexport"
)

// Store is what the API reads and audits through (store.Store).
type Store interface {
	GetDevice(ctx context.Context, id string) (*store.Device, error)
	ListDevices(ctx context.Context, f store.DeviceFilter, p store.Page) ([]*store.Device, string, error)
	GetCertBySerial(ctx context.Context, serial string) (*store.Cert, error)
	GetAttestation(ctx context.Context, id string) (*store.Attestation, error)
	ListCerts(ctx context.Context, f store.CertFilter, p store.Page) ([]*store.Cert, string, error)
	ListSessions(ctx context.Context, deviceID string, liveOnly bool, p store.Page) ([]*store.Session, string, error)
	AppendAudit(ctx context.Context, ev *store.AuditEvent) error
	TailAudit(ctx context.Context, n int) ([]*store.AuditEvent, error)
	VerifyAudit(ctx context.Context) (store.VerifyResult, error)
}

// Standing changes a device's standing (*posture.Service). Each change is
// audited by it, in the change's own transaction.
type Standing interface {
	SetCompliance(ctx context.Context, deviceID string, state store.Compliance, source, actor string) (*store.Device, error)
	Quarantine(ctx context.Context, deviceID, actor string) (*store.Device, error)
	Release(ctx context.Context, deviceID, actor string) (*store.Device, error)
	RevokeDevice(ctx context.Context, deviceID string, reason int, actor string) (*store.Device, []*store.Cert, error)
	RevokeCert(ctx context.Context, serial string, reason int, actor string) (*store.Cert, error)
}

// Minter mints one-time SCEP challenges (*scep.Minter): the clear value,
// shown once, and the stored record.
type Minter interface {
	Mint(ctx context.Context, req scep.MintRequest) (string, *store.Challenge, error)
}

// TPMAttester runs the attestation-bound SCEP flow of a TPM device
// (*scep.Minter over an *attest.Verifier): ActivateTPM answers the
// credential only the TPM holding the EK (with the AK loaded) can activate;
// MintFromTPM verifies evidence certified with the activated nonce and
// mints a challenge bound to the attested key.
type TPMAttester interface {
	ActivateTPM(ctx context.Context, req attest.TPMActivationRequest) (*attest.TPMActivation, error)
	MintFromTPM(ctx context.Context, ev attest.TPMEvidence, nonce []byte, req scep.MintRequest) (string, *store.Challenge, *store.Attestation, error)
}

// DevEnroller binds a test device to the key of a CSR (*devbind.Enroller).
type DevEnroller interface {
	Enroll(ctx context.Context, csr *x509.CertificateRequest, r devbind.Request) (*devbind.Device, error)
}

// Tokens are the API's credentials (*token.Set): checked on every request,
// listed, made and revoked through /api/v1/tokens.
type Tokens interface {
	Check(value string, now time.Time) (token.Token, error)
	List(now time.Time) ([]token.Token, error)
	Create(name string, scope token.Scope, expires, now time.Time) (string, token.Token, error)
	Revoke(name string, now time.Time) (token.Token, error)
}

// Deps are the API's collaborators. Store and Standing are required; the
// others may be nil, and their endpoints then refuse every request.
type Deps struct {
	Store    Store
	Standing Standing
	// Challenges serves POST /api/v1/scep/challenges; nil answers 501.
	Challenges Minter
	// TPM serves POST /api/v1/attestations/activate and
	// POST /api/v1/attestations; nil answers 501.
	TPM TPMAttester
	// DevEnroll serves POST /api/v1/dev/devices. Set it only in --dev: the
	// attestation it records is asserted, not verified. nil answers 403.
	DevEnroll DevEnroller
	// NAS serves POST /api/v1/nas (RADIUS/TLS NAS certificates); nil
	// answers 501.
	NAS NASIssuer
	// TicketKeys serves POST /api/v1/resumption/rotate-keys; nil (no
	// RADIUS on this node) answers 409.
	TicketKeys TicketKeys
	// Tokens, if set, replaces the fixed tokens given to New (a file the
	// CLI may change while the server runs: token.OpenFile).
	Tokens Tokens
	// Inventory serves device add, inventory import and a device's
	// attestations (inventory.go); nil answers 501.
	Inventory *Inventory
	// Audit verifies the chain against signed checkpoints and exports it
	// (GET/POST /api/v1/audit/verify, GET /api/v1/audit/export). nil:
	// verify recomputes the chain alone (Store.VerifyAudit) and export
	// answers 501.
	Audit AuditChain
	// Reload serves POST /api/v1/config/reload; nil answers 501.
	Reload Reloader
}

// AuditChain is the audit chain with its checkpoints (*auditexport.Chain).
type AuditChain interface {
	Verify(ctx context.Context, full bool, external []store.AuditCheckpoint) (*auditexport.Report, error)
	Export(ctx context.Context, w io.Writer, o auditexport.ExportOptions) (int, error)
}
