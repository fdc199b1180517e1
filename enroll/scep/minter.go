package scep

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"hardbound/enroll/attest"
	"hardbound/store"
)

// Challenge TTL bounds.
const (
	DefaultChallengeTTL = 15 * time.Minute
	MaxChallengeTTL     = 24 * time.Hour
)

// Challenge sources recorded in store.Challenge.Source.
const (
	SourceAdmin       = "admin"
	SourceJamf        = "jamf"
	SourceAttestation = "attestation"
)

// nonceMarkerTTL outlives any TPM activation nonce (attest caps them at 1h),
// so a nonce cannot be replayed while it still verifies.
const nonceMarkerTTL = 2 * time.Hour

// MinterStore is the part of store.Store the Minter uses.
type MinterStore interface {
	PutChallenge(ctx context.Context, c *store.Challenge) error
	ConsumeChallenge(ctx context.Context, sha store.Hash, now time.Time) (*store.Challenge, error)
	PutAttestation(ctx context.Context, a *store.Attestation) error
	AppendAudit(ctx context.Context, ev *store.AuditEvent) error
}

// TPMVerifier is the part of *attest.Verifier used for the TPM
// attestation-bound flow.
type TPMVerifier interface {
	ActivateTPM(ctx context.Context, req attest.TPMActivationRequest) (*attest.TPMActivation, error)
	VerifyTPM(ctx context.Context, ev attest.TPMEvidence, nonce []byte) (*attest.Result, error)
}

// MinterConfig configures a Minter. Store is required.
type MinterConfig struct {
	Store MinterStore
	// TPM enables ActivateTPM/MintFromTPM; nil makes them fail with ErrConfig.
	TPM TPMVerifier
	// Profiles, if set, are the only profile names Mint accepts (the SCEP
	// handler's profiles); a challenge for another profile could never be
	// redeemed.
	Profiles []string
	// DefaultProfile is the profile of a request that names none (the SCEP
	// handler's default); empty: every request must name one.
	DefaultProfile string
	Logger         *slog.Logger
	Now            func() time.Time
}

// Minter mints one-time SCEP challenges for the admin API, the Jamf
// webhook and the TPM attestation flow. Only SHA-256 of a value is stored.
type Minter struct {
	store      MinterStore
	tpm        TPMVerifier
	profiles   []string
	defProfile string
	log        *slog.Logger
	now        func() time.Time
}

// NewMinter builds a Minter.
func NewMinter(cfg MinterConfig) (*Minter, error) {
	if cfg.Store == nil {
		return nil, fmt.Errorf("%w: minter: Store is required", ErrConfig)
	}
	if cfg.DefaultProfile != "" && len(cfg.Profiles) > 0 && !slices.Contains(cfg.Profiles, cfg.DefaultProfile) {
		return nil, fmt.Errorf("%w: minter: default profile %q is not one of Profiles", ErrConfig, cfg.DefaultProfile)
	}
	m := &Minter{store: cfg.Store, tpm: cfg.TPM, profiles: slices.Clone(cfg.Profiles), defProfile: cfg.DefaultProfile,
		log: cfg.Logger, now: cfg.Now}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	m.log = m.log.With("component", "enroll", "protocol", "scep")
	if m.now == nil {
		m.now = time.Now
	}
	return m, nil
}

// MintRequest asks for a challenge.
type MintRequest struct {
	// DeviceID binds the challenge to a device; the CSR must name it.
	// Required unless Source is SourceJamf (bound at redemption).
	DeviceID string
	// KeySHA256, if set, binds the challenge to exactly that key
	// (store.HashKey of its SPKI DER); requires DeviceID.
	KeySHA256 store.Hash
	// AttestationID links the attestation that proved KeySHA256.
	AttestationID string
	// Profile defaults to MinterConfig.DefaultProfile.
	Profile string
	// TTL defaults to DefaultChallengeTTL and may not exceed MaxChallengeTTL.
	TTL time.Duration
	// Source defaults to SourceAdmin.
	Source string
	// Actor is recorded in the audit event, e.g. "admin:<token-name>";
	// default "system".
	Actor string
}

// Mint creates a one-time challenge: 32 random bytes, hex-encoded (hex
// survives every CSR string type and MDM template), stored only as its
// SHA-256. It returns the value, to be handed to the device exactly once,
// and the stored record. An audit event is appended.
func (m *Minter) Mint(ctx context.Context, req MintRequest) (string, *store.Challenge, error) {
	if req.Source == "" {
		req.Source = SourceAdmin
	}
	if req.Profile == "" {
		req.Profile = m.defProfile
	}
	if req.Profile == "" {
		return "", nil, fmt.Errorf("%w: profile is required", ErrInvalidRequest)
	}
	if len(m.profiles) > 0 && !slices.Contains(m.profiles, req.Profile) {
		return "", nil, fmt.Errorf("%w: unknown profile %q", ErrInvalidRequest, req.Profile)
	}
	if req.DeviceID == "" && req.Source != SourceJamf {
		return "", nil, fmt.Errorf("%w: device_id is required", ErrInvalidRequest)
	}
	if len(req.DeviceID) > 256 {
		return "", nil, fmt.Errorf("%w: device_id longer than 256 bytes", ErrInvalidRequest)
	}
	if !req.KeySHA256.IsZero() && req.DeviceID == "" {
		return "", nil, fmt.Errorf("%w: a key-bound challenge needs a device_id", ErrInvalidRequest)
	}
	switch {
	case req.TTL == 0:
		req.TTL = DefaultChallengeTTL
	case req.TTL < 0 || req.TTL > MaxChallengeTTL:
		return "", nil, fmt.Errorf("%w: ttl must be in (0, %s]", ErrInvalidRequest, MaxChallengeTTL)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", nil, fmt.Errorf("scep: mint: %w", err)
	}
	value := hex.EncodeToString(raw[:])
	now := m.now().UTC()
	ch := &store.Challenge{
		V:             store.RecordVersion,
		SHA256:        store.HashChallenge(value),
		DeviceID:      req.DeviceID,
		KeySHA256:     req.KeySHA256,
		Profile:       req.Profile,
		Source:        req.Source,
		AttestationID: req.AttestationID,
		CreatedAt:     now,
		ExpiresAt:     now.Add(req.TTL),
	}
	if err := m.store.PutChallenge(ctx, ch); err != nil {
		return "", nil, fmt.Errorf("scep: mint: %w", err)
	}
	actor := req.Actor
	if actor == "" {
		actor = "system"
	}
	ev := &store.AuditEvent{
		V:       store.RecordVersion,
		Time:    now,
		Actor:   actor,
		Action:  "enroll.scep.challenge.mint",
		Subject: req.DeviceID,
		Result:  "ok",
		Reason:  fmt.Sprintf("profile=%s source=%s key_bound=%t expires=%s", req.Profile, req.Source, !req.KeySHA256.IsZero(), ch.ExpiresAt.Format(time.RFC3339)),
	}
	if err := m.store.AppendAudit(ctx, ev); err != nil {
		m.log.Error("audit append failed", "action", ev.Action, "err", err)
	}
	m.log.Info("SCEP challenge minted", "device", req.DeviceID, "profile", req.Profile, "source", req.Source,
		"key_bound", !req.KeySHA256.IsZero(), "expires", ch.ExpiresAt)
	return value, ch, nil
}

// ActivateTPM is step one of the TPM flow (attest.Verifier.ActivateTPM):
// the device's EK certificate and AK in, a credential out whose secret,
// recovered by TPM2_ActivateCredential, is the nonce for MintFromTPM.
func (m *Minter) ActivateTPM(ctx context.Context, req attest.TPMActivationRequest) (*attest.TPMActivation, error) {
	if m.tpm == nil {
		return nil, fmt.Errorf("%w: TPM attestation is not configured", ErrConfig)
	}
	act, err := m.tpm.ActivateTPM(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrAttestation, err)
	}
	return act, nil
}

// MintFromTPM is step two: verify TPM evidence for nonce (first), store the
// Attestation, then mint a challenge bound to the attested key and device.
// req.DeviceID, if set, must be proven by the evidence (default: the
// attested device id, the EK hash); req.KeySHA256 and AttestationID are
// filled from the verification; Source becomes SourceAttestation. A nonce
// is accepted once.
func (m *Minter) MintFromTPM(ctx context.Context, ev attest.TPMEvidence, nonce []byte, req MintRequest) (string, *store.Challenge, *store.Attestation, error) {
	if m.tpm == nil {
		return "", nil, nil, fmt.Errorf("%w: TPM attestation is not configured", ErrConfig)
	}
	if req.Profile == "" {
		req.Profile = m.defProfile
	}
	if req.Profile == "" {
		return "", nil, nil, fmt.Errorf("%w: profile is required", ErrInvalidRequest)
	}
	res, err := m.tpm.VerifyTPM(ctx, ev, nonce)
	if err != nil {
		return "", nil, nil, fmt.Errorf("%w: %w", ErrAttestation, err)
	}
	if res.DeviceID == "" || res.KeySHA256.IsZero() {
		return "", nil, nil, fmt.Errorf("%w: verification proved no device or key", ErrAttestation)
	}
	if req.DeviceID == "" {
		req.DeviceID = res.DeviceID
	} else if !res.Proves(req.DeviceID) {
		return "", nil, nil, fmt.Errorf("%w: evidence does not prove device %q", ErrInvalidRequest, req.DeviceID)
	}
	if err := m.useNonce(ctx, nonce); err != nil {
		return "", nil, nil, err
	}
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", nil, nil, fmt.Errorf("scep: attestation id: %w", err)
	}
	facts := maps.Clone(res.Facts)
	if facts == nil {
		facts = map[string]string{}
	}
	for k, v := range res.Identifiers {
		facts[k] = v
	}
	a := &store.Attestation{
		V:          store.RecordVersion,
		ID:         hex.EncodeToString(id[:]),
		DeviceID:   req.DeviceID,
		Format:     res.Format,
		KeySHA256:  res.KeySHA256,
		Facts:      facts,
		VerifiedAt: m.now().UTC(),
	}
	if err := m.store.PutAttestation(ctx, a); err != nil {
		return "", nil, nil, fmt.Errorf("scep: store attestation: %w", err)
	}
	req.KeySHA256 = res.KeySHA256
	req.AttestationID = a.ID
	req.Source = SourceAttestation
	value, ch, err := m.Mint(ctx, req)
	if err != nil {
		return "", nil, nil, err
	}
	return value, ch, a, nil
}

// useNonce makes a TPM nonce single-use across the process and restarts:
// a marker record keyed by a domain-separated hash of the nonce is created
// (store.ErrExists on replay) and consumed at once, so it can never be
// redeemed as a SCEP challenge.
func (m *Minter) useNonce(ctx context.Context, nonce []byte) error {
	if len(nonce) == 0 {
		return fmt.Errorf("%w: empty nonce", ErrNonce)
	}
	now := m.now().UTC()
	marker := &store.Challenge{
		V:         store.RecordVersion,
		SHA256:    store.HashChallenge("hardbound/scep/tpm-nonce/v1:" + base64.StdEncoding.EncodeToString(nonce)),
		Source:    "tpm-nonce",
		CreatedAt: now,
		ExpiresAt: now.Add(nonceMarkerTTL),
	}
	if err := m.store.PutChallenge(ctx, marker); err != nil {
		if errors.Is(err, store.ErrExists) {
			return fmt.Errorf("%w: nonce already used", ErrNonce)
		}
		return fmt.Errorf("scep: record nonce: %w", err)
	}
	if _, err := m.store.ConsumeChallenge(ctx, marker.SHA256, now); err != nil {
		return fmt.Errorf("scep: consume nonce marker: %w", err)
	}
	return nil
}
