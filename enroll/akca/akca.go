// Package akca is hardbound's attestation CA for TPM attestation keys
// (AKs): a TPM whose EK certificate chains to a configured vendor root
// proves, by TPM2_ActivateCredential, that it holds an AK, and gets an AK
// certificate from the issuing CA. ACME device-attest-01 "tpm" statements
// then carry that certificate in x5c, and the verifier trusts the issuing
// CA for AK certificates (attest.Roots.TPMAK). So a device needs nothing
// but an EK chain to its TPM vendor's root.
//
// The protocol is the one smallstep's step CLI speaks to the attestation
// CA named by --attestation-ca-url (docs/attestation.md §3.5):
//
//	POST <base>/attest  {tpmInfo, ek, ekCerts, params}  ->  {credential, secret}
//	POST <base>/secret  {secret}                        ->  {chain}
//
// The second request carries nothing but the recovered secret, so the
// pending activation is kept here, in memory, keyed by the secret's
// SHA-256, bounded in count and time. A pending activation does not
// survive a restart, and with several nodes behind one name both requests
// must reach the same node (the client reuses its connection).
package akca

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/google/go-attestation/attest"

	hbattest "hardbound/enroll/attest"
	"hardbound/store"
)

// Defaults and bounds.
const (
	// DefaultValidity is the lifetime of an AK certificate. An AK is
	// re-certified by repeating the exchange, which the client does when
	// its stored certificate no longer names its EK.
	DefaultValidity = 365 * 24 * time.Hour
	// DefaultPendingTTL is how long a credential may take to come back.
	DefaultPendingTTL = 5 * time.Minute
	// DefaultMaxPending bounds the activations waiting for their secret.
	DefaultMaxPending = 4096
	// maxBody bounds a request: an EK certificate or two, and four TPM
	// structures of at most attest.MaxTPMBlobSize, base64 in JSON.
	maxBody = 64 << 10
	// maxEKCerts bounds ekCerts (a TPM has an RSA and an ECC EK at most,
	// with some room for vendors that provision more).
	maxEKCerts = 4
)

// TCG OIDs of the AK certificate (WebAuthn Level 2 §8.3.1,
// docs/attestation.md §3.2).
var (
	oidAIKCertificate = asn1.ObjectIdentifier{2, 23, 133, 8, 3}
	oidSAN            = asn1.ObjectIdentifier{2, 5, 29, 17}
)

// ErrRefused is wrapped by every refusal of a client's request.
var ErrRefused = errors.New("akca: refused")

// EKVerifier verifies EK certificates (*attest.Verifier).
type EKVerifier interface {
	VerifyEK(ctx context.Context, der []byte, chain [][]byte) (*hbattest.EKIdentity, error)
}

// Signer signs AK certificates (*ca.CA).
type Signer interface {
	Sign(ctx context.Context, tmpl *x509.Certificate, pub crypto.PublicKey) (*x509.Certificate, error)
	Issuing() *x509.Certificate
}

// Auditor records each certification and refusal (store.Store).
type Auditor interface {
	AppendAudit(ctx context.Context, ev *store.AuditEvent) error
}

// Limiter bounds requests per source address (*limit.Limiter).
type Limiter interface {
	Allow(device, ip, profile string) error
}

// Config configures a Server. EK, Signer and Audit are required.
type Config struct {
	EK      EKVerifier
	Signer  Signer
	Audit   Auditor
	Limiter Limiter // optional
	// Validity of AK certificates; default DefaultValidity.
	Validity time.Duration
	// PendingTTL and MaxPending bound the activations in flight.
	PendingTTL time.Duration
	MaxPending int
	Logger     *slog.Logger
	Now        func() time.Time
}

// Server is the attestation CA. It is safe for concurrent use.
type Server struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	pending map[[32]byte]*pending
}

// pending is an activation waiting for its secret.
type pending struct {
	ek       *hbattest.EKIdentity
	akPublic crypto.PublicKey
	expires  time.Time
	ip       string
}

// New builds a Server.
func New(cfg Config) (*Server, error) {
	if cfg.EK == nil || cfg.Signer == nil || cfg.Audit == nil {
		return nil, errors.New("akca: EK verifier, signer and auditor are required")
	}
	if cfg.Validity <= 0 {
		cfg.Validity = DefaultValidity
	}
	if cfg.PendingTTL <= 0 {
		cfg.PendingTTL = DefaultPendingTTL
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg, log: log.With("component", "enroll", "protocol", "tpm-akca"), pending: map[[32]byte]*pending{}}, nil
}

// AttestRequest is the body of POST /attest. Byte fields are standard
// base64 in JSON (encoding/json's []byte), as the step CLI sends them.
type AttestRequest struct {
	TPMInfo struct {
		Version         int    `json:"version,omitempty"`
		Manufacturer    string `json:"manufacturer,omitempty"`
		Model           string `json:"model,omitempty"`
		FirmwareVersion string `json:"firmwareVersion,omitempty"`
	} `json:"tpmInfo"`
	// EK is the PKIX public key of the EK the client will activate with.
	EK []byte `json:"ek,omitempty"`
	// EKCerts are the TPM's EK certificates (DER); the one for EK is used.
	EKCerts [][]byte `json:"ekCerts,omitempty"`
	AKCert  []byte   `json:"akCert,omitempty"`
	Params  struct {
		Public                  []byte `json:"public,omitempty"`
		UseTCSDActivationFormat bool   `json:"useTCSDActivationFormat,omitempty"`
		CreateData              []byte `json:"createData,omitempty"`
		CreateAttestation       []byte `json:"createAttestation,omitempty"`
		CreateSignature         []byte `json:"createSignature,omitempty"`
	} `json:"params"`
}

// AttestResponse is the credential for TPM2_ActivateCredential.
type AttestResponse struct {
	Credential []byte `json:"credential"`
	Secret     []byte `json:"secret"`
}

// SecretRequest is the body of POST /secret.
type SecretRequest struct {
	Secret []byte `json:"secret"`
}

// SecretResponse is the AK certificate and the issuing CA (DER, leaf first).
type SecretResponse struct {
	Chain [][]byte `json:"chain"`
}

// Attest verifies the EK certificate and the AK's creation attestation and
// returns a credential only that TPM, with that AK loaded, can activate.
func (s *Server) Attest(ctx context.Context, req *AttestRequest, ip string) (*AttestResponse, error) {
	if req.Params.UseTCSDActivationFormat {
		return nil, fmt.Errorf("%w: TPM 1.2 activation is not supported", ErrRefused)
	}
	if len(req.EKCerts) == 0 {
		return nil, fmt.Errorf("%w: no EK certificate: hardbound certifies only AKs of TPMs whose EK certificate chains to a configured root", ErrRefused)
	}
	if len(req.EKCerts) > maxEKCerts {
		return nil, fmt.Errorf("%w: %d EK certificates, limit %d", ErrRefused, len(req.EKCerts), maxEKCerts)
	}
	ek, err := s.pickEK(ctx, req)
	if err != nil {
		return nil, err
	}
	akPub, err := attest.ParseAKPublic(req.Params.Public)
	if err != nil {
		return nil, fmt.Errorf("%w: AK public area: %v", ErrRefused, err)
	}
	ap := attest.ActivationParameters{
		EK: ek.PublicKey,
		AK: attest.AttestationParameters{
			Public:            req.Params.Public,
			CreateData:        req.Params.CreateData,
			CreateAttestation: req.Params.CreateAttestation,
			CreateSignature:   req.Params.CreateSignature,
		},
	}
	// Generate checks the AK first (restricted signing key, fixedTPM,
	// fixedParent, sensitiveDataOrigin, creation attested by the AK) and
	// encrypts a random secret to the EK for the AK's Name
	// (TPM2_MakeCredential).
	secret, cred, err := ap.Generate()
	if err != nil {
		return nil, fmt.Errorf("%w: AK: %v", ErrRefused, err)
	}
	if err := s.hold(sha256.Sum256(secret), &pending{ek: ek, akPublic: akPub.Public, expires: s.cfg.Now().Add(s.cfg.PendingTTL), ip: ip}); err != nil {
		return nil, err
	}
	return &AttestResponse{Credential: cred.Credential, Secret: cred.Secret}, nil
}

// pickEK verifies the EK certificate whose key is req.EK (the EK the
// client activates with), or the only one when EK is absent.
func (s *Server) pickEK(ctx context.Context, req *AttestRequest) (*hbattest.EKIdentity, error) {
	var want crypto.PublicKey
	if len(req.EK) > 0 {
		k, err := x509.ParsePKIXPublicKey(req.EK)
		if err != nil {
			return nil, fmt.Errorf("%w: ek: %v", ErrRefused, err)
		}
		want = k
	} else if len(req.EKCerts) != 1 {
		return nil, fmt.Errorf("%w: several EK certificates and no ek to choose one", ErrRefused)
	}
	var lastErr error
	for _, der := range req.EKCerts {
		ek, err := s.cfg.EK.VerifyEK(ctx, der, nil)
		if err != nil {
			lastErr = err
			continue
		}
		if want == nil || keysEqual(ek.PublicKey, want) {
			return ek, nil
		}
	}
	if lastErr != nil {
		return nil, fmt.Errorf("%w: EK certificate: %w", ErrRefused, lastErr)
	}
	return nil, fmt.Errorf("%w: no EK certificate for the EK the client activates with", ErrRefused)
}

// hold records a pending activation, after dropping the expired ones; a
// full table refuses rather than evicting another client's activation.
func (s *Server) hold(key [32]byte, p *pending) error {
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pending) >= s.cfg.MaxPending {
		for k, v := range s.pending {
			if !now.Before(v.expires) {
				delete(s.pending, k)
			}
		}
	}
	if len(s.pending) >= s.cfg.MaxPending {
		return fmt.Errorf("%w: too many activations in flight", ErrRefused)
	}
	s.pending[key] = p
	return nil
}

// take removes and returns the pending activation for secret, if any and
// unexpired: a secret is redeemed once.
func (s *Server) take(secret []byte) *pending {
	key := sha256.Sum256(secret)
	s.mu.Lock()
	p := s.pending[key]
	delete(s.pending, key)
	s.mu.Unlock()
	if p == nil || !s.cfg.Now().Before(p.expires) {
		return nil
	}
	return p
}

// Secret redeems an activated secret for the AK certificate.
func (s *Server) Secret(ctx context.Context, req *SecretRequest) (*SecretResponse, *hbattest.EKIdentity, error) {
	if len(req.Secret) == 0 || len(req.Secret) > 64 {
		return nil, nil, fmt.Errorf("%w: secret is %d bytes", ErrRefused, len(req.Secret))
	}
	p := s.take(req.Secret)
	if p == nil {
		return nil, nil, fmt.Errorf("%w: unknown, used or expired secret", ErrRefused)
	}
	tmpl, err := akTemplate(p.ek, s.cfg.Now().Add(s.cfg.Validity))
	if err != nil {
		return nil, p.ek, err
	}
	cert, err := s.cfg.Signer.Sign(ctx, tmpl, p.akPublic)
	if err != nil {
		return nil, p.ek, fmt.Errorf("akca: sign AK certificate: %w", err)
	}
	return &SecretResponse{Chain: [][]byte{cert.Raw, s.cfg.Signer.Issuing().Raw}}, p.ek, nil
}

// akTemplate is the AK certificate of WebAuthn Level 2 §8.3.1: empty
// subject, a critical SAN with the TPM's manufacturer, model and version
// and the EK's urn:ek:sha256 URI (which the step CLI looks for) and the
// EK hash as PermanentIdentifier (the device id an ACME order names), and
// tcg-kp-AIKCertificate as the first and only extended key usage.
func akTemplate(ek *hbattest.EKIdentity, notAfter time.Time) (*x509.Certificate, error) {
	man, model, ver := ek.Manufacturer, ek.Model, ek.Version
	if man == "" || model == "" || ver == "" {
		return nil, fmt.Errorf("%w: the EK certificate names no TPM manufacturer, model or version", ErrRefused)
	}
	dn, err := asn1.Marshal(pkix.RDNSequence{
		{{Type: hbattest.OIDTPMManufacturer, Value: man}},
		{{Type: hbattest.OIDTPMModel, Value: model}},
		{{Type: hbattest.OIDTPMVersion, Value: ver}},
	})
	if err != nil {
		return nil, fmt.Errorf("akca: SAN directoryName: %w", err)
	}
	sum, err := hex.DecodeString(ek.SHA256)
	if err != nil || len(sum) != sha256.Size {
		return nil, fmt.Errorf("akca: EK hash %q is not a hex SHA-256", ek.SHA256)
	}
	urn := "urn:ek:sha256:" + base64.StdEncoding.EncodeToString(sum)
	permID, err := asn1.Marshal(struct {
		Value string `asn1:"utf8"`
	}{ek.SHA256})
	if err != nil {
		return nil, fmt.Errorf("akca: permanent identifier: %w", err)
	}
	san, err := asn1.Marshal([]asn1.RawValue{
		// otherName [0] { type-id, [0] EXPLICIT value }
		{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: otherName(permanentIdentifierOID, permID)},
		// directoryName [4] EXPLICIT Name
		{Class: asn1.ClassContextSpecific, Tag: 4, IsCompound: true, Bytes: dn},
		// uniformResourceIdentifier [6] IA5String
		{Class: asn1.ClassContextSpecific, Tag: 6, Bytes: []byte(urn)},
	})
	if err != nil {
		return nil, fmt.Errorf("akca: SAN: %w", err)
	}
	return &x509.Certificate{
		NotAfter:           notAfter,
		KeyUsage:           x509.KeyUsageDigitalSignature,
		UnknownExtKeyUsage: []asn1.ObjectIdentifier{oidAIKCertificate},
		ExtraExtensions:    []pkix.Extension{{Id: oidSAN, Critical: true, Value: san}},
	}, nil
}

// permanentIdentifierOID is id-on-permanentIdentifier (RFC 4043).
var permanentIdentifierOID = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 8, 3}

// otherName is the inside of an otherName: the type OID and the [0]
// EXPLICIT value.
func otherName(id asn1.ObjectIdentifier, value []byte) []byte {
	oid, _ := asn1.Marshal(id)
	v, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: value})
	return append(oid, v...)
}

func keysEqual(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

// Handler serves POST /attest and POST /secret; mount it under the base
// the clients are given (e.g. http.StripPrefix("/tpm-ak", h)).
func (s *Server) Handler() http.Handler {
	m := http.NewServeMux()
	m.HandleFunc("POST /attest", s.serveAttest)
	m.HandleFunc("POST /secret", s.serveSecret)
	return m
}

// limited answers 429 when the source is over its budget. Both requests
// are charged: each refusal costs an audit write.
func (s *Server) limited(w http.ResponseWriter, ip string) bool {
	if s.cfg.Limiter == nil {
		return false
	}
	if err := s.cfg.Limiter.Allow("", ip, ""); err != nil {
		http.Error(w, "rate limited", http.StatusTooManyRequests)
		return true
	}
	return false
}

func (s *Server) serveAttest(w http.ResponseWriter, r *http.Request) {
	ip := remoteIP(r)
	if s.limited(w, ip) {
		return
	}
	var req AttestRequest
	if err := decode(w, r, &req); err != nil {
		s.refuse(r.Context(), w, ip, "", err)
		return
	}
	resp, err := s.Attest(r.Context(), &req, ip)
	if err != nil {
		s.refuse(r.Context(), w, ip, "", err)
		return
	}
	writeJSON(w, resp)
}

func (s *Server) serveSecret(w http.ResponseWriter, r *http.Request) {
	ip := remoteIP(r)
	if s.limited(w, ip) {
		return
	}
	var req SecretRequest
	if err := decode(w, r, &req); err != nil {
		s.refuse(r.Context(), w, ip, "", err)
		return
	}
	resp, ek, err := s.Secret(r.Context(), &req)
	subject := ""
	if ek != nil {
		subject = ek.SHA256
	}
	if err != nil {
		s.refuse(r.Context(), w, ip, subject, err)
		return
	}
	s.audit(r.Context(), ip, subject, "ok", fmt.Sprintf("tpm=%s/%s/%s", ek.Manufacturer, ek.Model, ek.Version))
	s.log.Info("TPM AK certified", "ip", ip, "ek_sha256", subject, "tpm_manufacturer", ek.Manufacturer)
	writeJSON(w, resp)
}

// refuse answers a refusal (403, or 400 for an undecodable body) or our
// own failure (500), logs and audits it.
func (s *Server) refuse(ctx context.Context, w http.ResponseWriter, ip, subject string, err error) {
	status := http.StatusInternalServerError
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		status = http.StatusRequestEntityTooLarge
	case errors.As(err, &syn), errors.As(err, &typ), errors.Is(err, errBadBody):
		status = http.StatusBadRequest
	case errors.Is(err, ErrRefused):
		status = http.StatusForbidden
	}
	s.log.Info("TPM AK certification refused", "ip", ip, "ek_sha256", subject, "status", status, "err", err)
	s.audit(ctx, ip, subject, "reject", truncate(err.Error(), 200))
	msg := "internal error"
	if status != http.StatusInternalServerError {
		msg = truncate(err.Error(), 200)
	}
	http.Error(w, msg, status)
}

func (s *Server) audit(ctx context.Context, ip, subject, result, reason string) {
	actor := "device:unknown"
	if subject != "" {
		actor = "device:" + subject
	}
	ev := &store.AuditEvent{V: store.RecordVersion, Time: s.cfg.Now().UTC(), Actor: actor, Action: "enroll.tpm.ak_certify",
		Subject: subject, Result: result, Reason: reason, Source: ip}
	if err := s.cfg.Audit.AppendAudit(context.WithoutCancel(ctx), ev); err != nil {
		s.log.Error("audit append failed", "action", ev.Action, "err", err)
	}
}

var errBadBody = errors.New("akca: bad request body")

func decode(w http.ResponseWriter, r *http.Request, v any) error {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %w", errBadBody, err)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
