package main

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"hardbound/admin"
	"hardbound/enroll"
	"hardbound/enroll/acme"
	"hardbound/enroll/attest"
	"hardbound/enroll/attest/attesttest"
	"hardbound/enroll/ca"
	"hardbound/enroll/challenge"
	"hardbound/enroll/devbind"
	"hardbound/enroll/limit"
	"hardbound/enroll/scep"
	"hardbound/policy"
	"hardbound/store"
)

// enrollment is the wired enrollment side: ACME, SCEP, the challenge
// minter and the CRL.
type enrollment struct {
	svc      *enroll.Service
	minter   *scep.Minter
	verifier *attest.Verifier
	jamf     http.Handler // Jamf dynamic-challenge webhook, nil when unconfigured
}

// attestRoots loads the configured trust roots; in --dev the test authority
// in data/dev-attest is trusted in addition to the vendor roots.
func (in *instance) attestRoots() (attest.Roots, error) {
	var r attest.Roots
	load := func(field, path string) (*x509.CertPool, error) {
		if path == "" {
			return nil, nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: %s: %w", field, err)
		}
		p, err := attest.PoolFromPEM(b)
		if err != nil {
			return nil, fmt.Errorf("config: %s: %w", field, err)
		}
		return p, nil
	}
	var err error
	if r.Apple, err = load("enroll.apple_roots", in.cfg.Enroll.AppleRoots); err != nil {
		return r, err
	}
	if r.TPM, err = load("enroll.tpm_roots", in.cfg.Enroll.TPMRoots); err != nil {
		return r, err
	}
	if r.Android, err = load("enroll.android_roots", in.cfg.Enroll.AndroidRoots); err != nil {
		return r, err
	}
	if !in.cfg.Dev {
		return r, nil
	}
	auth, err := attesttest.LoadOrCreate(filepath.Join(in.cfg.DataDir, "dev-attest"))
	if err != nil {
		return r, fmt.Errorf("dev: test attestation authority: %w", err)
	}
	in.log.Warn("WARNING: --dev trusts the test attestation authority in data/dev-attest")
	tr := auth.RootCerts()
	add := func(p *x509.CertPool, def func() *x509.CertPool, c *x509.Certificate) *x509.CertPool {
		if p == nil {
			if def != nil {
				p = def()
			} else {
				p = x509.NewCertPool()
			}
		}
		p.AddCert(c)
		return p
	}
	r.Apple = add(r.Apple, attest.DefaultAppleRoots, tr[policy.FormatApple])
	r.Android = add(r.Android, attest.DefaultAndroidRoots, tr[policy.FormatAndroidKey])
	r.TPM = add(r.TPM, nil, tr["tpm-ek"])
	r.TPMAK = add(r.TPMAK, nil, tr["tpm-ak"])
	return r, nil
}

func (in *instance) startEnroll() error {
	ec := in.cfg.Enroll
	if ec.HTTPSAddr == "" && ec.HTTPAddr == "" {
		return nil
	}
	m := in.metrics.Enroll()
	roots, err := in.attestRoots()
	if err != nil {
		return err
	}
	verifier := attest.New(roots, attest.WithLogger(in.log), attest.WithMetrics(m))
	lim := limit.New(limit.Config{
		PerDevice:  limit.Rate{Every: ec.RateLimits.PerDevice.Every.D(), Burst: ec.RateLimits.PerDevice.Burst},
		PerIP:      limit.Rate{Every: ec.RateLimits.PerIP.Every.D(), Burst: ec.RateLimits.PerIP.Burst},
		PerProfile: limit.Rate{Every: ec.RateLimits.PerProfile.Every.D(), Burst: ec.RateLimits.PerProfile.Burst},
	}, limit.WithMetrics(m))
	st := in.st

	var intune scep.Validator
	if ic := in.cfg.MDM.Intune; ic.TenantID != "" {
		secret, err := readSecret("mdm.intune.client_secret_file", ic.ClientSecretFile)
		if err != nil {
			return err
		}
		v, err := challenge.NewIntune(challenge.IntuneConfig{TenantID: ic.TenantID, ClientID: ic.ClientID, ClientSecret: secret,
			LoginURL: ic.LoginURL, GraphURL: ic.GraphURL, CallerInfo: "hardbound " + buildVersion(), Logger: in.log})
		if err != nil {
			return err
		}
		intune = v
	}
	var acmeProfiles []acme.Profile
	var scepProfiles []scep.Profile
	var names []string
	for _, p := range in.cfg.effectiveProfiles() {
		names = append(names, p.Name)
		acmeProfiles = append(acmeProfiles, p.acmeView())
		scepProfiles = append(scepProfiles, p.scepView(intune))
	}
	ra, err := scep.LoadOrCreateRA(in.ctx, in.cfg.DataDir, in.ca)
	if err != nil {
		return fmt.Errorf("scep RA: %w", err)
	}
	scepH, err := scep.New(scep.Config{CA: in.ca, Store: st, RA: ra, Profiles: scepProfiles, Limiter: lim, Metrics: m, Logger: in.log})
	if err != nil {
		return err
	}
	minter, err := scep.NewMinter(scep.MinterConfig{Store: st, TPM: verifier, Profiles: names, Logger: in.log})
	if err != nil {
		return err
	}
	svc, err := enroll.New(enroll.Config{Profiles: acmeProfiles},
		enroll.Deps{CA: in.ca, Store: st, Attester: verifier, SCEP: scepH, Limiter: lim, Accounts: acme.StoreAccounts(st)},
		enroll.WithLogger(in.log), enroll.WithMetrics(m))
	if err != nil {
		return err
	}
	in.enroll = &enrollment{svc: svc, minter: minter, verifier: verifier}
	if jc := in.cfg.MDM.Jamf; jc.Username != "" && jc.ChallengeProfile != "" {
		pw, err := readSecret("mdm.jamf.password_file", jc.PasswordFile)
		if err != nil {
			return err
		}
		j, err := challenge.NewJamf(challenge.JamfConfig{Username: jc.Username, Password: pw, Profile: jc.ChallengeProfile,
			Minter: minter, Limiter: lim, Logger: in.log})
		if err != nil {
			return err
		}
		in.enroll.jamf = j
	}
	kp, err := serverCert(in.ctx, in.ca, in.cfg.DataDir, "enroll", ec.ServerNames, true)
	if err != nil {
		return err
	}
	if err := in.serveHTTP("enroll-https", ec.HTTPSAddr, in.enrollMux(svc.Handler()), newTLSConfig(kp)); err != nil {
		return err
	}
	return in.serveHTTP("enroll-http", ec.HTTPAddr, svc.PlainHandler(), nil)
}

// enrollMux puts the MDM endpoints (webhooks, Jamf challenges) beside the
// enrollment service on the HTTPS listener.
func (in *instance) enrollMux(h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", h)
	if in.enroll.jamf != nil {
		mux.Handle("POST /mdm/jamf/challenge", in.enroll.jamf)
	}
	for path, hh := range in.mdmHandlers {
		mux.Handle(path, hh)
	}
	return mux
}

func readSecret(field, path string) (string, error) {
	if path == "" {
		return "", fmt.Errorf("config: %s: required", field)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("config: %s: %w", field, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("config: %s: empty", field)
	}
	return s, nil
}

// badRequest marks client-caused errors of the enrollment calls so the
// admin API answers 400 rather than 500.
func badRequest(err error) error {
	if errors.Is(err, scep.ErrInvalidRequest) || errors.Is(err, scep.ErrConfig) || errors.Is(err, scep.ErrNonce) ||
		errors.Is(err, scep.ErrAttestation) || errors.Is(err, attest.ErrBadAttestation) {
		return fmt.Errorf("%w: %v", admin.ErrBadRequest, err)
	}
	return err
}

func (in *instance) mintChallenge(ctx context.Context, r admin.ChallengeRequest, actor string) (admin.ChallengeResponse, error) {
	if r.Profile == "" {
		r.Profile = in.cfg.effectiveProfiles()[0].Name // the SCEP handler's default profile
	}
	ttl := time.Duration(0)
	if r.TTL != "" {
		d, err := time.ParseDuration(r.TTL)
		if err != nil {
			return admin.ChallengeResponse{}, fmt.Errorf("%w: ttl: %v", admin.ErrBadRequest, err)
		}
		ttl = d
	}
	v, c, err := in.enroll.minter.Mint(ctx, scep.MintRequest{DeviceID: r.DeviceID, KeySHA256: r.KeySHA256, Profile: r.Profile,
		TTL: ttl, Source: scep.SourceAdmin, Actor: actor})
	if err != nil {
		return admin.ChallengeResponse{}, badRequest(err)
	}
	return challengeResponse(v, c), nil
}

func challengeResponse(v string, c *store.Challenge) admin.ChallengeResponse {
	out := admin.ChallengeResponse{Challenge: v, DeviceID: c.DeviceID, Profile: c.Profile, ExpiresAt: c.ExpiresAt}
	if !c.KeySHA256.IsZero() {
		out.KeySHA256 = c.KeySHA256.String()
	}
	return out
}

func (in *instance) activateTPM(ctx context.Context, body []byte, actor string) (any, error) {
	var req attest.TPMActivationRequest
	if err := strictJSON(body, &req); err != nil {
		return nil, err
	}
	act, err := in.enroll.minter.ActivateTPM(ctx, req)
	if err != nil {
		return nil, badRequest(err)
	}
	return act, nil
}

// AttestRequest is POST /api/v1/attestations: TPM evidence certified with
// the activated nonce; the answer is a challenge bound to that key.
type AttestRequest struct {
	Evidence attest.TPMEvidence `json:"evidence"`
	Nonce    []byte             `json:"nonce"`
	DeviceID string             `json:"device_id,omitempty"`
	Profile  string             `json:"profile,omitempty"`
	TTL      string             `json:"ttl,omitempty"`
}

func (in *instance) attestTPM(ctx context.Context, body []byte, actor string) (any, error) {
	var req AttestRequest
	if err := strictJSON(body, &req); err != nil {
		return nil, err
	}
	if req.Profile == "" {
		req.Profile = in.cfg.effectiveProfiles()[0].Name // the SCEP handler's default profile
	}
	var ttl time.Duration
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil {
			return nil, fmt.Errorf("%w: ttl: %v", admin.ErrBadRequest, err)
		}
		ttl = d
	}
	v, c, _, err := in.enroll.minter.MintFromTPM(ctx, req.Evidence, req.Nonce, scep.MintRequest{DeviceID: req.DeviceID,
		Profile: req.Profile, TTL: ttl, Source: "attestation", Actor: actor})
	if err != nil {
		return nil, badRequest(err)
	}
	return challengeResponse(v, c), nil
}

func strictJSON(body []byte, v any) error {
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", admin.ErrBadRequest, err)
	}
	return nil
}

// DevEnrollRequest is POST /api/v1/dev/devices (--dev only): a bound device
// for the CSR's key, with an asserted (not verified) attestation record.
type DevEnrollRequest struct {
	DeviceID string `json:"device_id"`
	CSR      string `json:"csr"` // base64 DER PKCS#10
	Format   string `json:"format,omitempty"`
	Profile  string `json:"profile,omitempty"`
	Posture  string `json:"posture,omitempty"`
}

// DevEnrollResponse carries the issued chain.
type DevEnrollResponse struct {
	DeviceID    string `json:"device_id"`
	Serial      string `json:"serial"`
	Certificate string `json:"certificate"` // PEM leaf + issuing CA
}

func (in *instance) devEnroll(ctx context.Context, body []byte, actor string) (any, error) {
	var req DevEnrollRequest
	if err := strictJSON(body, &req); err != nil {
		return nil, err
	}
	der, err := base64.StdEncoding.DecodeString(req.CSR)
	if err != nil {
		return nil, fmt.Errorf("%w: csr: %v", admin.ErrBadRequest, err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("%w: csr: %v", admin.ErrBadRequest, err)
	}
	if err := ca.CheckCSR(csr); err != nil {
		return nil, fmt.Errorf("%w: %v", admin.ErrBadRequest, err)
	}
	switch store.Compliance(req.Posture) {
	case "", store.ComplianceCompliant, store.ComplianceNoncompliant, store.ComplianceUnknown:
	default:
		return nil, fmt.Errorf("%w: posture %q", admin.ErrBadRequest, req.Posture)
	}
	d, err := devbind.Bind(ctx, in.ca, in.st, time.Now(), devbind.Request{DeviceID: req.DeviceID, Format: req.Format,
		Profile: req.Profile, Posture: store.Compliance(req.Posture), PublicKey: csr.PublicKey})
	if err != nil {
		if errors.Is(err, store.ErrExists) || errors.Is(err, ca.ErrInvalidRequest) || errors.Is(err, devbind.ErrInvalid) {
			return nil, fmt.Errorf("%w: %v", admin.ErrBadRequest, err)
		}
		return nil, err
	}
	var chain []byte
	for _, c := range d.Certificate.Certificate {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c})...)
	}
	return DevEnrollResponse{DeviceID: d.ID, Serial: d.Binding.Serial, Certificate: string(chain)}, nil
}
