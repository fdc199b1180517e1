package admin

import (
	"maps"
	"time"

	"hardbound/admin/token"
	"hardbound/enroll/attest"
	"hardbound/store"
	"hardbound/store/auditexport"
)

// The answers of the API. Each is converted from its store record in one
// function below, which decides what the API shows: the field names and
// shapes are the records' own, but a certificate's DER is only in the one
// answer that is about the certificate itself (CertDetail). Digests
// (store.Hash) are lower-case hex, "" when unset. V is the record's format
// version (store.RecordVersion).

// Posture is a device's compliance as last reported, with its source.
type Posture struct {
	State     store.Compliance `json:"state"`
	Source    string           `json:"source,omitempty"`
	UpdatedAt time.Time        `json:"updated_at,omitzero"`
}

// Device is an enrolled device.
type Device struct {
	V        int                `json:"v"`
	ID       string             `json:"id"`
	Platform string             `json:"platform,omitempty"`
	Profile  string             `json:"profile,omitempty"`
	Status   store.DeviceStatus `json:"status"`
	Posture  Posture            `json:"posture"`
	Groups   []string           `json:"groups,omitempty"`
	Aliases  map[string]string  `json:"aliases,omitempty"`
	// Inventory (docs/inventory.md): who the device is assigned to, who
	// put it in the inventory, and when its source removed it.
	Owner     string    `json:"owner,omitempty"`
	Source    string    `json:"source,omitempty"`
	RemovedAt time.Time `json:"removed_at,omitzero"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func deviceOf(d *store.Device) Device {
	return Device{
		V: d.V, ID: d.ID, Platform: d.Platform, Profile: d.Profile, Status: d.Status,
		Posture: Posture{State: d.Posture.State, Source: d.Posture.Source, UpdatedAt: d.Posture.UpdatedAt},
		Groups:  d.Groups, Aliases: d.Aliases, Owner: d.Owner, Source: d.Source, RemovedAt: d.RemovedAt,
		CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt,
	}
}

// Revocation records why (an RFC 5280 CRLReason code), when and by whom a
// certificate was revoked.
type Revocation struct {
	At     time.Time `json:"at"`
	Reason int       `json:"reason"`
	Actor  string    `json:"actor"`
}

// Cert is a certificate's binding to its device and attestation.
type Cert struct {
	V             int         `json:"v"`
	SHA256        store.Hash  `json:"sha256"`
	Serial        string      `json:"serial"`
	DeviceID      string      `json:"device_id"`
	KeySHA256     store.Hash  `json:"key_sha256"`
	NotBefore     time.Time   `json:"not_before"`
	NotAfter      time.Time   `json:"not_after"`
	Profile       string      `json:"profile"`
	Protocol      string      `json:"protocol"`
	AttestationID string      `json:"attestation_id,omitempty"`
	Attested      bool        `json:"attested"`
	Revoked       *Revocation `json:"revoked,omitempty"`
}

func certOf(c *store.Cert) Cert {
	out := Cert{
		V: c.V, SHA256: c.SHA256, Serial: c.Serial, DeviceID: c.DeviceID, KeySHA256: c.KeySHA256,
		NotBefore: c.NotBefore, NotAfter: c.NotAfter, Profile: c.Profile, Protocol: c.Protocol,
		AttestationID: c.AttestationID, Attested: c.Attested,
	}
	if r := c.Revoked; r != nil {
		out.Revoked = &Revocation{At: r.At, Reason: r.Reason, Actor: r.Actor}
	}
	return out
}

// Attestation is GET /api/v1/attestations/{id}: the verified facts a
// binding was issued on.
type Attestation struct {
	V          int               `json:"v"`
	ID         string            `json:"id"`
	DeviceID   string            `json:"device_id"`
	Format     string            `json:"format"`
	KeySHA256  store.Hash        `json:"key_sha256"`
	Facts      map[string]string `json:"facts,omitempty"`
	VerifiedAt time.Time         `json:"verified_at"`
}

func attestationOf(a *store.Attestation) Attestation {
	return Attestation{V: a.V, ID: a.ID, DeviceID: a.DeviceID, Format: a.Format, KeySHA256: a.KeySHA256,
		Facts: maps.Clone(a.Facts), VerifiedAt: a.VerifiedAt}
}

// CertDetail is GET /api/v1/certs/{serial}: the binding and the
// certificate's DER.
type CertDetail struct {
	Cert
	DER []byte `json:"der,omitempty"`
}

// Session is a live (or closed) accounting session on a NAS.
type Session struct {
	V                int        `json:"v"`
	NAS              string     `json:"nas"`
	NASAddr          string     `json:"nas_addr"`
	AcctSessionID    string     `json:"acct_session_id"`
	DeviceID         string     `json:"device_id"`
	CertSHA256       store.Hash `json:"cert_sha256"`
	UserName         string     `json:"user_name,omitempty"`
	CallingStationID string     `json:"calling_station_id,omitempty"`
	CalledStationID  string     `json:"called_station_id,omitempty"`
	NASIdentifier    string     `json:"nas_identifier,omitempty"`
	NASIPAddress     string     `json:"nas_ip_address,omitempty"`
	NASPort          uint32     `json:"nas_port,omitempty"`
	FramedIP         string     `json:"framed_ip,omitempty"`
	StartedAt        time.Time  `json:"started_at"`
	UpdatedAt        time.Time  `json:"updated_at"`
	StoppedAt        time.Time  `json:"stopped_at,omitzero"`
	InputOctets      uint64     `json:"input_octets,omitempty"`
	OutputOctets     uint64     `json:"output_octets,omitempty"`
	TerminateCause   uint32     `json:"terminate_cause,omitempty"`
}

// Live reports whether the session has not been stopped.
func (s Session) Live() bool { return s.StoppedAt.IsZero() }

func sessionOf(s *store.Session) Session {
	return Session{
		V: s.V, NAS: s.NAS, NASAddr: s.NASAddr, AcctSessionID: s.AcctSessionID, DeviceID: s.DeviceID,
		CertSHA256: s.CertSHA256, UserName: s.UserName, CallingStationID: s.CallingStationID,
		CalledStationID: s.CalledStationID, NASIdentifier: s.NASIdentifier, NASIPAddress: s.NASIPAddress,
		NASPort: s.NASPort, FramedIP: s.FramedIP, StartedAt: s.StartedAt, UpdatedAt: s.UpdatedAt,
		StoppedAt: s.StoppedAt, InputOctets: s.InputOctets, OutputOctets: s.OutputOctets, TerminateCause: s.TerminateCause,
	}
}

// AuditEvent is one link of the audit chain; Hash covers every other
// field and PrevHash is the previous event's Hash.
type AuditEvent struct {
	V        int        `json:"v"`
	Seq      uint64     `json:"seq"`
	Time     time.Time  `json:"time"`
	Actor    string     `json:"actor"`
	Action   string     `json:"action"`
	Subject  string     `json:"subject"`
	Result   string     `json:"result"`
	Reason   string     `json:"reason,omitempty"`
	Source   string     `json:"source,omitempty"`
	PrevHash store.Hash `json:"prev_hash"`
	Hash     store.Hash `json:"hash"`
}

func auditEventOf(ev *store.AuditEvent) AuditEvent {
	return AuditEvent{
		V: ev.V, Seq: ev.Seq, Time: ev.Time, Actor: ev.Actor, Action: ev.Action, Subject: ev.Subject,
		Result: ev.Result, Reason: ev.Reason, Source: ev.Source, PrevHash: ev.PrevHash, Hash: ev.Hash,
	}
}

// VerifyResult is GET /api/v1/audit/verify: the outcome of recomputing the
// audit chain. BrokenSeq is the first event whose hash or link is wrong.
// With checkpoints (the server has an audit key), FromSeq..HeadSeq is what
// was checked, AnchorSeq the newest signed checkpoint that matched, and
// Problems every finding by seq (truncated, rewritten, broken,
// bad_checkpoint).
type VerifyResult struct {
	Events      uint64 `json:"events"`
	OK          bool   `json:"ok"`
	BrokenSeq   uint64 `json:"broken_seq,omitempty"`
	Problem     string `json:"problem,omitempty"`
	FromSeq     uint64 `json:"from_seq,omitempty"`
	HeadSeq     uint64 `json:"head_seq,omitempty"`
	Checkpoints int    `json:"checkpoints,omitempty"`
	AnchorSeq   uint64 `json:"anchor_seq,omitempty"`
	// PrunedThrough is the last seq retention removed.
	PrunedThrough uint64          `json:"pruned_through,omitempty"`
	Problems      []VerifyProblem `json:"problems,omitempty"`
}

// VerifyProblem is one finding of a verification.
type VerifyProblem struct {
	Seq    uint64 `json:"seq"`
	Kind   string `json:"kind"`
	Detail string `json:"detail"`
}

// AuditCheckpoint is a signed checkpoint of the chain, as sinks receive it.
type AuditCheckpoint struct {
	Seq   uint64     `json:"seq"`
	Hash  store.Hash `json:"hash"`
	Time  time.Time  `json:"time"`
	KeyID string     `json:"key_id"`
	Alg   string     `json:"alg"`
	Sig   []byte     `json:"sig"`
}

// AuditCheckpointOf is a checkpoint as the API carries it.
func AuditCheckpointOf(c store.AuditCheckpoint) AuditCheckpoint {
	return AuditCheckpoint{Seq: c.Seq, Hash: c.Hash, Time: c.Time, KeyID: c.KeyID, Alg: c.Alg, Sig: c.Sig}
}

func (c AuditCheckpoint) record() store.AuditCheckpoint {
	return store.AuditCheckpoint{Seq: c.Seq, Hash: c.Hash, Time: c.Time, KeyID: c.KeyID, Alg: c.Alg, Sig: c.Sig}
}

// VerifyRequest is POST /api/v1/audit/verify: the chain is held against
// these checkpoints (kept outside the server, e.g. what a SIEM received)
// instead of the server's own.
type VerifyRequest struct {
	Checkpoints []AuditCheckpoint `json:"checkpoints"`
}

func reportOf(r *auditexport.Report) VerifyResult {
	v := VerifyResult{Events: r.Events, OK: r.OK, BrokenSeq: r.BrokenSeq, Problem: r.Problem, FromSeq: r.FromSeq,
		HeadSeq: r.HeadSeq, Checkpoints: r.Checkpoints, AnchorSeq: r.AnchorSeq, PrunedThrough: r.PrunedThrough}
	for _, p := range r.Problems {
		v.Problems = append(v.Problems, VerifyProblem{Seq: p.Seq, Kind: p.Kind, Detail: p.Detail})
	}
	return v
}

func verifyResultOf(r store.VerifyResult) VerifyResult {
	return VerifyResult{Events: r.Events, OK: r.OK, BrokenSeq: r.BrokenSeq, Problem: r.Problem}
}

// List is a page of results; Next is the cursor for the following page.
type List[T any] struct {
	Items []T    `json:"items"`
	Next  string `json:"next,omitempty"`
}

// each converts records for an answer; the result is never nil, so an
// empty list is [] and not null.
func each[R, T any](recs []R, conv func(R) T) []T {
	out := make([]T, len(recs))
	for i, r := range recs {
		out[i] = conv(r)
	}
	return out
}

// DeviceDetail is a device with its certificates and live sessions (none,
// after a revocation).
type DeviceDetail struct {
	Device   *Device   `json:"device"`
	Certs    []Cert    `json:"certs"`
	Sessions []Session `json:"sessions"`
	// Attestations are GET /api/v1/devices/{id}/attestations, which
	// `hardbound device show` adds; GET /api/v1/devices/{id} leaves it out.
	Attestations []DeviceAttestation `json:"attestations,omitempty"`
}

// ErrorBody is every error response.
type ErrorBody struct {
	Error string `json:"error"`
}

// RevokeRequest carries an RFC 5280 reason: a name (keyCompromise) or code.
type RevokeRequest struct {
	Reason string `json:"reason,omitempty"`
}

// PostureRequest sets a device's compliance by hand.
type PostureRequest struct {
	State store.Compliance `json:"state"`
}

// ChallengeRequest asks for a one-time SCEP challenge.
type ChallengeRequest struct {
	DeviceID  string     `json:"device_id"`
	KeySHA256 store.Hash `json:"key_sha256,omitzero"`
	Profile   string     `json:"profile,omitempty"` // default: the SCEP default profile
	TTL       string     `json:"ttl,omitempty"`     // Go duration, default 15m
}

// ChallengeResponse carries the clear challenge, shown once.
type ChallengeResponse struct {
	Challenge string    `json:"challenge"`
	DeviceID  string    `json:"device_id,omitempty"`
	KeySHA256 string    `json:"key_sha256,omitempty"`
	Profile   string    `json:"profile,omitempty"`
	ExpiresAt time.Time `json:"expires_at"`
}

func challengeOf(value string, c *store.Challenge) ChallengeResponse {
	out := ChallengeResponse{Challenge: value, DeviceID: c.DeviceID, Profile: c.Profile, ExpiresAt: c.ExpiresAt}
	if !c.KeySHA256.IsZero() {
		out.KeySHA256 = c.KeySHA256.String()
	}
	return out
}

// POST /api/v1/attestations/activate takes an attest.TPMActivationRequest
// and answers an attest.TPMActivation: those are the TPM protocol's own
// messages, which attest/attesttest builds on the device side.

// AttestRequest is POST /api/v1/attestations: TPM evidence certified with
// the activated nonce; the answer is a ChallengeResponse bound to that key.
type AttestRequest struct {
	Evidence attest.TPMEvidence `json:"evidence"`
	Nonce    []byte             `json:"nonce"`
	DeviceID string             `json:"device_id,omitempty"` // default: the attested device (EK) id
	Profile  string             `json:"profile,omitempty"`
	TTL      string             `json:"ttl,omitempty"`
}

// DevEnrollRequest is POST /api/v1/dev/devices (--dev only): a bound device
// for the CSR's key, with an asserted (not verified) attestation record.
type DevEnrollRequest struct {
	DeviceID string `json:"device_id"`
	CSR      string `json:"csr"` // base64 DER PKCS#10
	Format   string `json:"format,omitempty"`
	Profile  string `json:"profile,omitempty"`
	Posture  string `json:"posture,omitempty"`
	// Validity is the certificate's lifetime (Go duration; default: the
	// profile's).
	Validity string `json:"validity,omitempty"`
	// Unbound issues the certificate from the CA and records nothing: the
	// "our CA, but no binding" case the decision must reject.
	Unbound bool `json:"unbound,omitempty"`
	// Aliases are MDM identities recorded on the device (serial, udid...).
	Aliases map[string]string `json:"aliases,omitempty"`
}

// DevEnrollResponse carries the issued chain.
type DevEnrollResponse struct {
	DeviceID    string `json:"device_id"`
	Serial      string `json:"serial"`
	Certificate string `json:"certificate"` // PEM leaf + issuing CA
}

// TokenInfo is a token without its value (GET /api/v1/tokens).
type TokenInfo struct {
	Name      string    `json:"name"`
	Scope     string    `json:"scope"`
	CreatedAt time.Time `json:"created_at,omitzero"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	Expired   bool      `json:"expired,omitempty"`
}

// TokenInfoOf is a token as the API shows it: never its value or hash.
func TokenInfoOf(t token.Token, now time.Time) TokenInfo {
	return TokenInfo{Name: t.Name, Scope: string(t.EffectiveScope()), CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt, Expired: t.Expired(now)}
}

// TokenRequest is POST /api/v1/tokens.
type TokenRequest struct {
	Name  string `json:"name"`
	Scope string `json:"scope"`
	// Expires is a lifetime: a Go duration ("720h") or days ("90d"); ""
	// never expires.
	Expires string `json:"expires,omitempty"`
}

// TokenCreated is the answer to POST /api/v1/tokens: the value, shown
// this once.
type TokenCreated struct {
	TokenInfo
	Token string `json:"token"`
}
