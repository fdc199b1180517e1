// Package store persists hardbound's records: devices, certificate bindings,
// attestations, one-time challenges, accounting sessions and the audit chain.
//
// Implementations must make every multi-record write one transaction and make
// writes durable before they return (the caller answers a client right after).
// "Absent" is always reported as ErrNotFound, matched with errors.Is.
package store

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"time"
)

// Sentinel errors. Implementations wrap them; callers match with errors.Is.
var (
	ErrNotFound = errors.New("store: not found")
	// ErrConsumed is returned when a challenge has already been redeemed.
	ErrConsumed = errors.New("store: challenge already consumed")
	// ErrExpired is returned when a challenge exists but is past its expiry.
	ErrExpired = errors.New("store: challenge expired")
	// ErrExists is returned when a create would overwrite a record.
	ErrExists = errors.New("store: already exists")
	// ErrMismatch is returned when a challenge is redeemed for another device or key.
	ErrMismatch = errors.New("store: challenge bound to another device or key")
	// ErrConflict is returned by a compare-and-swap write whose expected
	// version is no longer the stored one (another writer came first).
	ErrConflict = errors.New("store: version conflict")
	// ErrUnavailable is returned by a networked backend that cannot reach
	// its database: the connection was refused, cut or timed out, or the
	// server is shutting down or starting up. Nothing was written (or, for
	// a commit cut in flight, the caller cannot tell; every write is safe
	// to retry as a whole). Callers answer with a retriable error (HTTP 503
	// with Retry-After) and posture answers from its caches for a grace
	// period (docs/ha.md, "When the database is away"). Never returned for
	// a constraint violation or a bad request.
	ErrUnavailable = errors.New("store: database unavailable")
)

// RecordVersion is the value format version written into every record's V field.
const RecordVersion = 1

// Hash is a SHA-256 digest (of a certificate's DER, a public key's SPKI DER,
// or a challenge value).
type Hash [32]byte

// String returns the lower-case hex form.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// IsZero reports whether h is all zeros (unset).
func (h Hash) IsZero() bool { return h == Hash{} }

// MarshalText encodes h as hex so records and API bodies carry readable digests.
func (h Hash) MarshalText() ([]byte, error) {
	if h.IsZero() {
		return []byte{}, nil
	}
	return []byte(h.String()), nil
}

// UnmarshalText decodes hex; the empty string is the zero hash.
func (h *Hash) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*h = Hash{}
		return nil
	}
	p, err := ParseHash(string(b))
	if err != nil {
		return err
	}
	*h = p
	return nil
}

// ParseHash parses a 64-character hex SHA-256.
func ParseHash(s string) (Hash, error) {
	var h Hash
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(h) {
		return h, errors.New("store: hash must be 64 hex characters")
	}
	copy(h[:], b)
	return h, nil
}

// HashCert is the binding key: SHA-256 of the whole leaf certificate DER.
// enroll, posture and admin must all use this one function.
func HashCert(c *x509.Certificate) Hash { return sha256.Sum256(c.Raw) }

// HashKey is the SHA-256 of a public key's SubjectPublicKeyInfo DER.
func HashKey(spkiDER []byte) Hash { return sha256.Sum256(spkiDER) }

// HashChallenge is how challenge values are stored: never the value itself.
func HashChallenge(value string) Hash { return sha256.Sum256([]byte(value)) }

// DeviceStatus is an administrative standing.
type DeviceStatus string

const (
	DeviceActive      DeviceStatus = "active"
	DeviceQuarantined DeviceStatus = "quarantined"
	DeviceRevoked     DeviceStatus = "revoked"
)

// Compliance is the MDM-reported posture state.
type Compliance string

const (
	ComplianceUnknown      Compliance = "unknown"
	ComplianceCompliant    Compliance = "compliant"
	ComplianceNoncompliant Compliance = "noncompliant"
)

// Posture is a device's compliance as last reported, with its source.
type Posture struct {
	State     Compliance `json:"state"`
	Source    string     `json:"source,omitempty"` // e.g. "intune", "jamf", "webhook", "admin"
	UpdatedAt time.Time  `json:"updated_at,omitzero"`
}

// Device is an enrolled device, keyed by its permanent identifier.
type Device struct {
	V        int               `json:"v"`
	ID       string            `json:"id"`
	Platform string            `json:"platform,omitempty"` // policy.Platform*: ios, macos, apple, android, windows, linux
	Profile  string            `json:"profile,omitempty"`
	Status   DeviceStatus      `json:"status"`
	Posture  Posture           `json:"posture"`
	Groups   []string          `json:"groups,omitempty"`
	Aliases  map[string]string `json:"aliases,omitempty"` // MDM identities: serial, udid, intune_id...
	// Owner is who the device is assigned to (an MDM's user, an import's
	// owner column); informational.
	Owner string `json:"owner,omitempty"`
	// Source is who put the record in the inventory: admin, import, jamf,
	// intune, bench, or enroll for a record an issuance created under a
	// profile that does not require inventory (docs/inventory.md).
	Source string `json:"source,omitempty"`
	// RemovedAt is set when the record's source stopped listing the device
	// (unenrolled from the MDM): the record stays, with its bindings and
	// audit history, but it is no longer inventory, so enrollment refuses
	// it. Zero: in inventory.
	RemovedAt time.Time `json:"removed_at,omitzero"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// InInventory reports whether the record admits enrollment: it exists
// (the caller has it) and its source has not removed it.
func (d *Device) InInventory() bool { return d != nil && d.RemovedAt.IsZero() }

// Revocation records why and when a cert was revoked.
type Revocation struct {
	At     time.Time `json:"at"`
	Reason int       `json:"reason"` // RFC 5280 CRLReason code
	Actor  string    `json:"actor"`
}

// Cert is the binding cert -> device -> attestation.
type Cert struct {
	V             int         `json:"v"`
	SHA256        Hash        `json:"sha256"`
	Serial        string      `json:"serial"` // lower-case hex, no leading zeros
	DeviceID      string      `json:"device_id"`
	KeySHA256     Hash        `json:"key_sha256"`
	NotBefore     time.Time   `json:"not_before"`
	NotAfter      time.Time   `json:"not_after"`
	Profile       string      `json:"profile"`
	Protocol      string      `json:"protocol"` // acme | scep | admin
	AttestationID string      `json:"attestation_id,omitempty"`
	Attested      bool        `json:"attested"`
	Revoked       *Revocation `json:"revoked,omitempty"`
	DER           []byte      `json:"der,omitempty"`
}

// Attestation is verified hardware evidence for a key.
type Attestation struct {
	V          int               `json:"v"`
	ID         string            `json:"id"`
	DeviceID   string            `json:"device_id"`
	Format     string            `json:"format"` // apple | tpm | android-key | none
	KeySHA256  Hash              `json:"key_sha256"`
	Facts      map[string]string `json:"facts,omitempty"` // vendor, model, os_version, security_level...
	VerifiedAt time.Time         `json:"verified_at"`
}

// Challenge is a one-time SCEP challenge, stored by the hash of its value.
type Challenge struct {
	V         int    `json:"v"`
	SHA256    Hash   `json:"sha256"`
	DeviceID  string `json:"device_id,omitempty"` // empty: bound at redemption (Jamf)
	KeySHA256 Hash   `json:"key_sha256,omitzero"` // set: the CSR must carry exactly this key
	Profile   string `json:"profile"`
	Source    string `json:"source,omitempty"` // admin | jamf | attestation
	// AttestationID links a challenge minted from verified evidence.
	AttestationID string    `json:"attestation_id,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
	ExpiresAt     time.Time `json:"expires_at"`
	ConsumedAt    time.Time `json:"consumed_at,omitzero"`
}

// Session is a live (or closed) accounting session on a NAS.
type Session struct {
	V                int       `json:"v"`
	NAS              string    `json:"nas"`      // NAS client name from config
	NASAddr          string    `json:"nas_addr"` // source IP the NAS used
	AcctSessionID    string    `json:"acct_session_id"`
	DeviceID         string    `json:"device_id"`
	CertSHA256       Hash      `json:"cert_sha256"`
	UserName         string    `json:"user_name,omitempty"`
	CallingStationID string    `json:"calling_station_id,omitempty"`
	CalledStationID  string    `json:"called_station_id,omitempty"`
	NASIdentifier    string    `json:"nas_identifier,omitempty"`
	NASIPAddress     string    `json:"nas_ip_address,omitempty"`
	NASPort          uint32    `json:"nas_port,omitempty"`
	FramedIP         string    `json:"framed_ip,omitempty"`
	StartedAt        time.Time `json:"started_at"`
	UpdatedAt        time.Time `json:"updated_at"`
	StoppedAt        time.Time `json:"stopped_at,omitzero"`
	InputOctets      uint64    `json:"input_octets,omitempty"`
	OutputOctets     uint64    `json:"output_octets,omitempty"`
	TerminateCause   uint32    `json:"terminate_cause,omitempty"`
	// ClosedByOnOff marks a stop that no Accounting-Stop reported: an
	// Accounting-On/Off of the NAS closed it (CloseNASSessions). A later
	// Interim-Update or Start of the session proves it alive and reopens it.
	ClosedByOnOff bool `json:"closed_by_onoff,omitempty"`
}

// Live reports whether the session has not been stopped.
func (s *Session) Live() bool { return s.StoppedAt.IsZero() }

// NASScope selects the sessions of one NAS for CloseNASSessions. A NAS
// client (a prefix such as a whole access-switch network) holds many NASes,
// and one NAS's Accounting-On must not end its neighbours' sessions. NAS is
// the client's name and is required; each other field, when set, must
// equal the session's: Addr its NASAddr (the source address), NASIPAddress
// its NAS-IP-Address or NAS-IPv6-Address, NASIdentifier its
// NAS-Identifier. A session that lacks a value the scope sets is not in it.
type NASScope struct {
	NAS           string `json:"nas"`
	Addr          string `json:"addr,omitempty"`
	NASIPAddress  string `json:"nas_ip_address,omitempty"`
	NASIdentifier string `json:"nas_identifier,omitempty"`
}

// Matches reports whether s belongs to the scope (whether live or not).
// Every backend selects with it, or with the same rule.
func (sc NASScope) Matches(s *Session) bool {
	return s.NAS == sc.NAS &&
		(sc.Addr == "" || s.NASAddr == sc.Addr) &&
		(sc.NASIPAddress == "" || s.NASIPAddress == sc.NASIPAddress) &&
		(sc.NASIdentifier == "" || s.NASIdentifier == sc.NASIdentifier)
}

// ACMEAccount is a registered ACME account (RFC 8555 §7.1.2), keyed by its
// ID and indexed by the thumbprint of its key.
type ACMEAccount struct {
	V  int    `json:"v"`
	ID string `json:"id"`
	// Thumbprint is the base64url RFC 7638 SHA-256 thumbprint of JWK; at
	// most one account holds a given thumbprint.
	Thumbprint string `json:"thumbprint"`
	// JWK is the account's public key as a JSON Web Key (RFC 7517), never
	// a private one.
	JWK       json.RawMessage `json:"jwk"`
	Status    string          `json:"status"` // valid | deactivated
	Contact   []string        `json:"contact,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`
}

// AuditEvent is one link of the tamper-evident chain. Hash covers every
// field but Hash itself, and PrevHash is the previous event's Hash.
type AuditEvent struct {
	V        int       `json:"v"`
	Seq      uint64    `json:"seq"`
	Time     time.Time `json:"time"`
	Actor    string    `json:"actor"`   // admin:<token-name>, device:<id>, nas:<name>, mdm:<source>, system
	Action   string    `json:"action"`  // enroll.issue, radius.auth, device.quarantine...
	Subject  string    `json:"subject"` // device id, cert serial...
	Result   string    `json:"result"`  // ok | reject | error | denied
	Reason   string    `json:"reason,omitempty"`
	Source   string    `json:"source,omitempty"` // remote address
	PrevHash Hash      `json:"prev_hash"`
	Hash     Hash      `json:"hash"`
}

// AuditCheckpoint is a signed statement that the chain's event Seq had
// Hash at Time, made with the audit key identified by KeyID (see
// store/auditexport, which signs and verifies them). Stored beside the
// chain and exported with it, so that a chain cut or rewritten after the
// checkpoint no longer matches it.
type AuditCheckpoint struct {
	V     int       `json:"v"`
	Seq   uint64    `json:"seq"`
	Hash  Hash      `json:"hash"`
	Time  time.Time `json:"time"`
	KeyID string    `json:"key_id"`
	Alg   string    `json:"alg"` // Ed25519 | ECDSA-P256-SHA256
	Sig   []byte    `json:"sig"`
}

// AuditCursor is how far one export sink got: every event with seq <= Seq
// and every checkpoint with seq <= CheckpointSeq was delivered to it.
type AuditCursor struct {
	V             int       `json:"v"`
	Sink          string    `json:"sink"`
	Seq           uint64    `json:"seq"`
	CheckpointSeq uint64    `json:"checkpoint_seq"`
	UpdatedAt     time.Time `json:"updated_at"`
}

// Page selects a slice of a listing. After is the last key of the previous
// page (exclusive); Limit 0 means the implementation's default.
type Page struct {
	After string
	Limit int
}

// DeviceFilter narrows ListDevices.
type DeviceFilter struct {
	Status     DeviceStatus
	Compliance Compliance
	Profile    string
}

// CertFilter narrows ListCerts.
type CertFilter struct {
	DeviceID    string
	RevokedOnly bool
	// NoDER leaves Cert.DER nil: the store does not read the certificates'
	// DER at all. Listings that only need the binding (cache warming, CRL
	// building) set it, so that a full scan neither copies the DER nor
	// pages in the tables holding it, which at a million devices is
	// hundreds of MiB of resident memory.
	NoDER bool
}

// VerifyResult reports the outcome of recomputing the audit chain.
type VerifyResult struct {
	Events    uint64 `json:"events"` // the last seq reached (events checked plus any pruned before them)
	OK        bool   `json:"ok"`
	BrokenSeq uint64 `json:"broken_seq,omitempty"` // first event whose hash or link is wrong
	Problem   string `json:"problem,omitempty"`
}

// Issuance is everything one certificate issuance writes atomically.
type Issuance struct {
	Device      *Device      // created if absent, otherwise updated (platform, profile, aliases)
	Cert        *Cert        // required
	Attestation *Attestation // optional (unattested SCEP)
	Audit       *AuditEvent  // required
	// Challenge, if set, is consumed in the same transaction; a challenge that
	// is already consumed or expired aborts the whole issuance.
	Challenge *Hash
	// Order, if set, is written in the same transaction as
	// UpdateACMEOrder(Order, OrderPrev) would write it: an order that is
	// gone or no longer at version OrderPrev aborts the whole issuance
	// with ErrNotFound or ErrConflict. enroll/acme makes the order valid
	// and names the certificate in it, so the order and its certificate
	// are durable together.
	Order     *ACMEOrder
	OrderPrev uint64
}

// Store is hardbound's persistence. Every method takes ctx first; reads that
// find nothing return an error wrapping ErrNotFound. Every write that
// changes a device, a binding or an attestation is announced to Watch
// (change.go).
type Store interface {
	Watcher

	// Devices.
	PutDevice(ctx context.Context, d *Device) error
	GetDevice(ctx context.Context, id string) (*Device, error)
	// UpdateDevice reads, applies fn and writes in one transaction; fn may
	// return an error to abort. The audit event (optional) is appended in the
	// same transaction.
	UpdateDevice(ctx context.Context, id string, fn func(*Device) error, ev *AuditEvent) (*Device, error)
	ListDevices(ctx context.Context, f DeviceFilter, p Page) ([]*Device, string, error)
	// FindDeviceByAlias maps an MDM identity (kind: serial, udid, intune_id...) to a device.
	FindDeviceByAlias(ctx context.Context, kind, value string) (*Device, error)

	// Certificate bindings.
	RecordIssuance(ctx context.Context, is Issuance) error
	GetCert(ctx context.Context, sha Hash) (*Cert, error)
	// GetCertBinding is GetCert without the DER (Cert.DER nil): the
	// binding alone, one read, for the authentication path, which has the
	// certificate in hand.
	GetCertBinding(ctx context.Context, sha Hash) (*Cert, error)
	GetCertBySerial(ctx context.Context, serial string) (*Cert, error)
	ListCerts(ctx context.Context, f CertFilter, p Page) ([]*Cert, string, error)
	// RevokeCert marks one cert revoked (idempotent: an already revoked cert keeps its first record).
	RevokeCert(ctx context.Context, sha Hash, r Revocation, ev *AuditEvent) (*Cert, error)
	// RevokeDevice marks the device revoked and every cert of it, in one transaction.
	RevokeDevice(ctx context.Context, id string, r Revocation, ev *AuditEvent) (*Device, []*Cert, error)

	// Attestations.
	PutAttestation(ctx context.Context, a *Attestation) error
	GetAttestation(ctx context.Context, id string) (*Attestation, error)
	FindAttestationByKey(ctx context.Context, key Hash) (*Attestation, error)

	// Challenges. PutChallenge stores c with a TTL until c.ExpiresAt.
	PutChallenge(ctx context.Context, c *Challenge) error
	GetChallenge(ctx context.Context, sha Hash) (*Challenge, error)
	// ConsumeChallenge atomically marks the challenge consumed exactly once.
	// ErrNotFound, ErrExpired or ErrConsumed otherwise.
	ConsumeChallenge(ctx context.Context, sha Hash, now time.Time) (*Challenge, error)

	// Sessions, keyed by (NAS, Acct-Session-Id).
	PutSession(ctx context.Context, s *Session) error
	GetSession(ctx context.Context, nas, acctSessionID string) (*Session, error)
	ListSessions(ctx context.Context, deviceID string, liveOnly bool, p Page) ([]*Session, string, error)
	// CloseNASSessions marks every live session in scope (one NAS of a
	// client, NASScope.Matches) that started at or before at as stopped at
	// at with cause and ClosedByOnOff (the NAS rebooted:
	// Accounting-On/Off), and returns how many it closed. Sessions started
	// after at belong to the NAS's new life and stay open. It writes in
	// bounded batches, each its own transaction, so a failure part way
	// leaves some closed and a retry closes the rest; closing again is a
	// no-op.
	CloseNASSessions(ctx context.Context, scope NASScope, at time.Time, cause uint32) (int, error)

	// Nonces. ClaimNonce records nonce under scope (e.g. "webhook:jamf")
	// until expires and returns nil the first time; while the claim lives,
	// claiming it again fails with ErrExists. The claim is durable before
	// it returns, so a replay cache built on it survives a crash; it is
	// dropped after expires (a TTL, not a record). expires must be in the
	// future.
	ClaimNonce(ctx context.Context, scope string, nonce Hash, expires time.Time) error

	// ACME accounts. PutACMEAccount creates or replaces the account by ID
	// (keeping CreatedAt of an existing one); a thumbprint held by another
	// account fails with ErrExists, which makes creation race-free.
	PutACMEAccount(ctx context.Context, a *ACMEAccount) error
	GetACMEAccount(ctx context.Context, id string) (*ACMEAccount, error)
	FindACMEAccountByThumbprint(ctx context.Context, thumbprint string) (*ACMEAccount, error)

	// ACME orders (ACMEOrder), shared by the nodes of a store.
	// CreateACMEOrder stores a new order at Version 1 (setting o.Version,
	// o.V and o.UpdatedAt); an ID already stored is ErrExists, and an
	// account that holds maxPerAccount orders unexpired at o.CreatedAt is
	// ErrLimit (race-free: two creations at once cannot both take the
	// last place). It also deletes a bounded number of expired orders, so
	// abandoned ones do not accumulate.
	CreateACMEOrder(ctx context.Context, o *ACMEOrder, maxPerAccount int) error
	// GetACMEOrder returns the order as stored; one past ExpiresAt may be
	// returned until the store drops it (the caller checks ExpiresAt).
	GetACMEOrder(ctx context.Context, id string) (*ACMEOrder, error)
	// UpdateACMEOrder replaces the order if its stored Version is still
	// prev, and sets o.Version to prev+1; otherwise ErrConflict (or
	// ErrNotFound) and nothing is written. ID, Account and CreatedAt
	// cannot change.
	UpdateACMEOrder(ctx context.Context, o *ACMEOrder, prev uint64) error
	// ListACMEOrders returns the account's unexpired orders, oldest first
	// (at most the maxPerAccount it was created with).
	ListACMEOrders(ctx context.Context, account string) ([]*ACMEOrder, error)

	// Audit chain. AppendAudit fills Seq, PrevHash and Hash.
	AppendAudit(ctx context.Context, ev *AuditEvent) error
	// AppendAudits appends evs in order as one group: normally one
	// transaction and one fsync for all of them, which is what makes an
	// event per RADIUS decision affordable. It fills each event like
	// AppendAudit. On error a prefix may be durable: exactly the events
	// with Seq != 0 were written.
	AppendAudits(ctx context.Context, evs []*AuditEvent) error
	TailAudit(ctx context.Context, n int) ([]*AuditEvent, error)
	// ScanAudit calls fn for events with Seq >= from, in order.
	ScanAudit(ctx context.Context, from uint64, fn func(*AuditEvent) error) error
	VerifyAudit(ctx context.Context) (VerifyResult, error)

	// PruneAudit deletes the events with Seq <= through, oldest first, in
	// bounded batches (each its own transaction, so a failure part way
	// leaves a shorter prefix deleted and a retry deletes the rest), and
	// returns how many it deleted. through must be below the head: the
	// head event always stays. Afterwards ScanAudit(1, ...) starts at
	// through+1 and VerifyAudit checks from there, linking the first
	// remaining event to the hash of the last one deleted, which the
	// store keeps (a prune mark).
	PruneAudit(ctx context.Context, through uint64) (int, error)

	// Audit checkpoints, keyed by Seq (one per seq: putting one again
	// replaces it). ScanAuditCheckpoints calls fn for checkpoints with
	// Seq >= from, in order; LastAuditCheckpoint is ErrNotFound when there
	// is none.
	PutAuditCheckpoint(ctx context.Context, cp *AuditCheckpoint) error
	ScanAuditCheckpoints(ctx context.Context, from uint64, fn func(*AuditCheckpoint) error) error
	LastAuditCheckpoint(ctx context.Context) (*AuditCheckpoint, error)

	// Export cursors, one per sink name. GetAuditCursor is ErrNotFound for
	// a sink that never delivered; PutAuditCursor replaces it.
	GetAuditCursor(ctx context.Context, sink string) (*AuditCursor, error)
	PutAuditCursor(ctx context.Context, c *AuditCursor) error

	// EAP-TLS ticket keys shared by the nodes of one store (TicketKeys).
	// GetTicketKeys returns ErrNotFound before the first put.
	// PutTicketKeys writes k if the stored Version is still prev (0: none
	// stored yet) and sets k.Version to prev+1; otherwise ErrConflict and
	// nothing is written. No change is announced to Watch.
	GetTicketKeys(ctx context.Context) (*TicketKeys, error)
	PutTicketKeys(ctx context.Context, k *TicketKeys, prev uint64) error

	// Cached documents (Document), one per name. GetDocument returns
	// ErrNotFound before the first put. PutDocument writes d unless the
	// stored document of that name was fetched later (then ErrConflict
	// and nothing is written): of nodes writing the same document the
	// newest fetch stays. No change is announced to Watch.
	GetDocument(ctx context.Context, name string) (*Document, error)
	PutDocument(ctx context.Context, d *Document) error

	// Backup streams a full backup; Restore loads one into an empty store.
	Backup(ctx context.Context, w io.Writer) error
	Restore(ctx context.Context, r io.Reader) error

	Close() error
}
