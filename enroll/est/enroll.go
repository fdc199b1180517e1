package est

import (
	"context"
	"crypto/subtle"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"

	"github.com/smallstep/pkcs7"

	"hardbound/enroll/ca"
	"hardbound/enroll/gate"
	"hardbound/posture"
	"hardbound/store"
)

// refusal is an EST error answer: HTTP status and text (RFC 7030 §4.2.3).
type refusal struct {
	status int
	reason string // audit reason, metric-like: bounded set
	detail string
}

func refuse(status int, reason, format string, a ...any) *refusal {
	return &refusal{status: status, reason: reason, detail: fmt.Sprintf(format, a...)}
}

// request carries one enrollment through its checks.
type request struct {
	renew     bool
	ip        string
	label     string
	csr       *x509.CertificateRequest
	keySHA    store.Hash
	deviceID  string
	profile   *Profile
	challenge *store.Hash
	attested  bool
	attID     string
	format    string
	facts     map[string]string // the attestation's facts (and identifiers)
	bound     bool              // the CSR carries this TLS session's channel binding
	old       *store.Cert       // renewal: the binding of the client certificate
	device    *store.Device
}

func (q *request) action() string {
	if q.renew {
		return "enroll.est.renew"
	}
	return "enroll.est.issue"
}

// reasonCSRKey is the refusal of a CSR whose key is not the one its
// challenge is bound to.
const reasonCSRKey = "key_mismatch"

// retryAfterUnavailable is the Retry-After (seconds) of a 503 answered
// while the store's database is away.
const retryAfterUnavailable = "5"

// enroll answers simpleenroll or simplereenroll and returns the metric
// result: ok, refused or error.
func (s *Server) enroll(w http.ResponseWriter, r *http.Request, label string, renew bool) string {
	ctx := r.Context()
	q := &request{renew: renew, ip: clientIP(r), label: label}
	if s.lim != nil {
		if err := s.lim.Allow("", q.ip, s.profileOr(label).Name); err != nil {
			s.metrics.Refusal("rate_limited")
			s.metrics.Enrollment(Protocol, "none", "rate_limited")
			w.Header().Set("Retry-After", "60")
			http.Error(w, "rate limited", http.StatusTooManyRequests)
			return "refused"
		}
	}
	body, ref, err := s.decide(ctx, r, q)
	format := q.format
	if format == "" {
		format = "none"
	}
	switch {
	case errors.Is(err, store.ErrUnavailable):
		// The database is away: nothing was issued; RFC 7030 §4.2.3 lets
		// a client retry a 503 after Retry-After.
		s.metrics.Enrollment(Protocol, format, "store_unavailable")
		w.Header().Set("Retry-After", retryAfterUnavailable)
		http.Error(w, "database unavailable, retry later", http.StatusServiceUnavailable)
		return "error"
	case err != nil:
		s.log.Error("EST enrollment failed", "ip", q.ip, "device", q.deviceID, "err", err)
		s.audit(ctx, q, "error", "internal")
		s.metrics.Enrollment(Protocol, format, "internal")
		http.Error(w, "internal error", http.StatusInternalServerError)
		return "error"
	case ref != nil:
		s.log.Info("EST enrollment refused", "ip", q.ip, "device", q.deviceID, "renew", renew, "reason", ref.reason, "detail", ref.detail)
		s.audit(ctx, q, "reject", ref.reason+": "+ref.detail)
		if ref.status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Basic realm="hardbound EST"`)
		}
		s.metrics.Refusal(ref.reason)
		s.metrics.Enrollment(Protocol, format, ref.reason)
		http.Error(w, ref.reason+": "+ref.detail, ref.status)
		return "refused"
	}
	s.metrics.Enrollment(Protocol, format, "ok")
	writeBase64(w, "application/pkcs7-mime; smime-type=certs-only", body)
	return "ok"
}

func (s *Server) decide(ctx context.Context, r *http.Request, q *request) ([]byte, *refusal, error) {
	csr, err := readCSR(r)
	switch {
	case errors.Is(err, errContentType):
		return nil, refuse(http.StatusUnsupportedMediaType, "bad_content_type", "%v", err), nil
	case errors.Is(err, errTooLarge):
		return nil, refuse(http.StatusRequestEntityTooLarge, "too_large", "body over %d bytes", MaxBodyBytes), nil
	case err != nil:
		return nil, refuse(http.StatusBadRequest, "bad_csr", "%v", err), nil
	}
	if err := ca.CheckCSR(csr); err != nil {
		return nil, refuse(http.StatusBadRequest, "bad_csr", "%v", err), nil
	}
	keyDER, err := x509.MarshalPKIXPublicKey(csr.PublicKey)
	if err != nil {
		return nil, refuse(http.StatusBadRequest, "bad_csr", "key: %v", err), nil
	}
	q.csr, q.keySHA = csr, store.HashKey(keyDER)
	var ref *refusal
	if q.renew {
		ref, err = s.authorizeRenewal(ctx, r, q)
	} else {
		ref, err = s.authorizeNew(ctx, r, q)
	}
	if ref != nil || err != nil {
		return nil, ref, err
	}
	if ref := s.checkBinding(r, q); ref != nil {
		return nil, ref, nil
	}
	if s.lim != nil {
		if err := s.lim.Allow(q.deviceID, "", ""); err != nil {
			return nil, refuse(http.StatusTooManyRequests, "rate_limited", "%v", err), nil
		}
	}
	if ref, err := s.linkAttestation(ctx, q); ref != nil || err != nil {
		return nil, ref, err
	}
	if ref, err := s.admit(ctx, q); ref != nil || err != nil {
		return nil, ref, err
	}
	return s.issue(ctx, q)
}

// authorizeNew: HTTP Basic with the device id and a one-time challenge
// minted for it (`hardbound challenge issue`), for a device in inventory.
func (s *Server) authorizeNew(ctx context.Context, r *http.Request, q *request) (*refusal, error) {
	user, pass, ok := basicAuth(r)
	if !ok {
		if s.bootstrap != nil && r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			return s.authorizeBootstrap(ctx, r, q)
		}
		return refuse(http.StatusUnauthorized, "auth_missing", "HTTP Basic with the device id and its challenge is required"), nil
	}
	q.deviceID = user
	hash := store.HashChallenge(pass)
	ch, err := s.store.GetChallenge(ctx, hash)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return refuse(http.StatusUnauthorized, "challenge_unknown", "challenge not recognised"), nil
	case errors.Is(err, store.ErrExpired):
		return refuse(http.StatusUnauthorized, "challenge_expired", "challenge expired"), nil
	case errors.Is(err, store.ErrConsumed):
		return refuse(http.StatusUnauthorized, "challenge_consumed", "challenge already used"), nil
	case err != nil:
		return nil, fmt.Errorf("est: get challenge: %w", err)
	}
	if !ch.ConsumedAt.IsZero() {
		return refuse(http.StatusUnauthorized, "challenge_consumed", "challenge already used"), nil
	}
	if !s.now().Before(ch.ExpiresAt) {
		return refuse(http.StatusUnauthorized, "challenge_expired", "challenge expired"), nil
	}
	// A challenge is bound to one device; an unbound one (Jamf's, bound
	// at redemption from a CSR) does not authenticate a user name.
	if ch.DeviceID == "" || !ctEq(ch.DeviceID, user) {
		return refuse(http.StatusUnauthorized, "device_mismatch", "challenge is not bound to this device"), nil
	}
	prof, ok := s.profiles[ch.Profile]
	if !ok {
		return refuse(http.StatusForbidden, "profile_unknown", "challenge profile %q not served by EST", ch.Profile), nil
	}
	if q.label != "" && q.label != ch.Profile {
		return refuse(http.StatusForbidden, "profile_mismatch", "challenge is for profile %q", ch.Profile), nil
	}
	q.profile = prof
	if ref, err := s.inventory(ctx, q); ref != nil || err != nil {
		return ref, err
	}
	if !ch.KeySHA256.IsZero() {
		if subtle.ConstantTimeCompare(ch.KeySHA256[:], q.keySHA[:]) != 1 {
			return refuse(http.StatusForbidden, reasonCSRKey, "CSR key is not the attested key the challenge is bound to"), nil
		}
		if err := s.useAttestation(ctx, q, ch.AttestationID); err != nil {
			return nil, err
		}
	}
	q.challenge = &hash
	return nil, nil
}

// authorizeBootstrap: a first enrollment authenticated by the device's
// manufacturer certificate (IDevID, IEEE 802.1AR) as TLS client
// certificate, for a device in inventory under its serial number. The
// IDevID proves the device, not that the CSR key is in hardware: the key
// is attested only by a recorded attestation, as for any CSR.
func (s *Server) authorizeBootstrap(ctx context.Context, r *http.Request, q *request) (*refusal, error) {
	certs := r.TLS.PeerCertificates
	inter := x509.NewCertPool()
	if s.bootstrapInter != nil {
		inter = s.bootstrapInter.Clone()
	}
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: s.bootstrap, Intermediates: inter, CurrentTime: s.now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return refuse(http.StatusUnauthorized, "bootstrap_invalid", "client certificate is not an IDevID of a trusted manufacturer: %v", err), nil
	}
	sn := certs[0].Subject.SerialNumber
	if sn == "" || len(sn) > 256 {
		return refuse(http.StatusUnauthorized, "bootstrap_invalid", "IDevID has no usable subject serialNumber"), nil
	}
	id := sn
	if _, err := s.store.GetDevice(ctx, sn); errors.Is(err, store.ErrNotFound) {
		d, err := s.store.FindDeviceByAlias(ctx, "serial", sn)
		switch {
		case err == nil:
			id = d.ID
		case !errors.Is(err, store.ErrNotFound):
			return nil, fmt.Errorf("est: find device by serial: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("est: get device: %w", err)
	}
	q.deviceID = id
	q.profile = s.profileOr(q.label)
	return s.inventory(ctx, q)
}

// inventory requires the device's record, in inventory and not revoked.
func (s *Server) inventory(ctx context.Context, q *request) (*refusal, error) {
	d, err := s.store.GetDevice(ctx, q.deviceID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return refuse(http.StatusForbidden, "not_in_inventory", "device %q is not in inventory", q.deviceID), nil
	case err != nil:
		return nil, fmt.Errorf("est: get device: %w", err)
	case !d.InInventory():
		return refuse(http.StatusForbidden, "not_in_inventory", "device %q was removed from inventory", q.deviceID), nil
	case d.Status == store.DeviceRevoked:
		return refuse(http.StatusForbidden, "device_revoked", "device is revoked"), nil
	}
	q.device = d
	return nil, nil
}

// authorizeRenewal: the TLS client certificate is ours, bound, not
// revoked, and its device passes the authentication decision now.
func (s *Server) authorizeRenewal(ctx context.Context, r *http.Request, q *request) (*refusal, error) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return refuse(http.StatusUnauthorized, "client_cert_missing", "simplereenroll needs the current certificate as TLS client certificate"), nil
	}
	leaf := r.TLS.PeerCertificates[0]
	pool := x509.NewCertPool()
	pool.AddCert(s.ca.Issuing())
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: s.now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return refuse(http.StatusUnauthorized, "client_cert_invalid", "client certificate: %v", err), nil
	}
	b, err := s.store.GetCert(ctx, store.HashCert(leaf))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return refuse(http.StatusUnauthorized, "client_cert_unbound", "client certificate has no binding"), nil
	case err != nil:
		return nil, fmt.Errorf("est: get cert: %w", err)
	}
	q.deviceID, q.old = b.DeviceID, b
	if b.Revoked != nil {
		return refuse(http.StatusForbidden, "cert_revoked", "client certificate is revoked"), nil
	}
	prof, ok := s.profiles[b.Profile]
	if !ok {
		return refuse(http.StatusForbidden, "profile_unknown", "certificate profile %q not served by EST", b.Profile), nil
	}
	if q.label != "" && q.label != b.Profile {
		return refuse(http.StatusForbidden, "profile_mismatch", "certificate is for profile %q", b.Profile), nil
	}
	q.profile = prof
	if ref, err := s.inventory(ctx, q); ref != nil || err != nil {
		return ref, err
	}
	// Posture included: a quarantined or noncompliant device does not
	// renew its way out of the hold.
	if v := s.decider.Decide(ctx, leaf); v.Reason == posture.ReasonStoreUnavailable {
		return nil, fmt.Errorf("est: decision: %w", store.ErrUnavailable) // 503, retriable
	} else if v.Reason != posture.ReasonOK {
		return refuse(http.StatusForbidden, "decision_"+string(v.Reason), "the current certificate is not admitted (%s)", v.Reason), nil
	}
	// Same key: its attestation still stands.
	if b.Attested && b.KeySHA256 == q.keySHA {
		if err := s.useAttestation(ctx, q, b.AttestationID); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// useAttestation marks q attested when the stored attestation attests
// exactly the CSR key for this device.
func (s *Server) useAttestation(ctx context.Context, q *request, id string) error {
	if id == "" {
		return nil
	}
	a, err := s.store.GetAttestation(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("est: get attestation: %w", err)
	}
	if a.KeySHA256 != q.keySHA || (a.DeviceID != "" && a.DeviceID != q.deviceID) || a.Format == "" {
		return nil
	}
	q.attested, q.attID, q.format, q.facts = true, a.ID, a.Format, a.Facts
	return nil
}

// linkAttestation finds a verified attestation of the CSR key and applies
// the profile's format rules, as the authentication will.
func (s *Server) linkAttestation(ctx context.Context, q *request) (*refusal, error) {
	if !q.attested {
		a, err := s.store.FindAttestationByKey(ctx, q.keySHA)
		switch {
		case err == nil:
			if a.DeviceID != "" && a.DeviceID != q.deviceID {
				return refuse(http.StatusForbidden, reasonCSRKey, "CSR key is attested for another device"), nil
			}
			q.attested, q.attID, q.format, q.facts = true, a.ID, a.Format, a.Facts
		case !errors.Is(err, store.ErrNotFound):
			return nil, fmt.Errorf("est: find attestation: %w", err)
		}
	}
	p := q.profile
	switch {
	case !q.attested && p.RequireAttestation:
		return refuse(http.StatusForbidden, "attestation_required", "profile %q requires an attested key", p.Name), nil
	case !q.attested && !p.Formats.AdmitsUnattested():
		return refuse(http.StatusForbidden, "unattested", "profile %q admits only hardware-attested keys", p.Name), nil
	case q.attested && !p.Formats.Admits(q.format):
		return refuse(http.StatusForbidden, "format_not_allowed", "profile %q does not admit attestation format %q", p.Name, q.format), nil
	}
	return nil, nil
}

// admit applies the shared issuance gate (enroll/gate) with the verified
// attestation's facts.
func (s *Server) admit(ctx context.Context, q *request) (*refusal, error) {
	if s.gate == nil {
		return nil, nil
	}
	_, err := s.gate.Admit(ctx, gate.Request{DeviceID: q.deviceID, Format: q.format, Facts: q.facts, Profile: q.profile.Name, Named: true})
	switch r := gate.Reason(err); {
	case err == nil:
		return nil, nil
	case errors.Is(err, gate.ErrRevoked):
		return refuse(http.StatusForbidden, "device_revoked", "device is revoked"), nil
	case r != "error":
		return refuse(http.StatusForbidden, r, "%v", err), nil
	}
	return nil, fmt.Errorf("est: gate: %w", err)
}

// issue signs, records (consuming the challenge in the same transaction)
// and returns the base64 certs-only answer; a renewal's old certificate is
// then revoked as superseded when the profile says so.
func (s *Server) issue(ctx context.Context, q *request) ([]byte, *refusal, error) {
	prof := q.profile
	now := s.now().UTC()
	var att *ca.Attestation
	if q.attested {
		att = &ca.Attestation{Format: q.format, Identifiers: q.facts}
	}
	cert, err := s.ca.Issue(ctx, ca.IssueRequest{CSR: q.csr, DeviceID: q.deviceID,
		Profile: ca.Profile{Name: prof.Name, Validity: prof.Validity}, Attestation: att})
	if err != nil {
		if errors.Is(err, ca.ErrCSRPolicy) || errors.Is(err, ca.ErrInvalidRequest) {
			return nil, refuse(http.StatusBadRequest, "bad_csr", "%v", err), nil
		}
		return nil, nil, fmt.Errorf("est: issue: %w", err)
	}
	p7, err := pkcs7.DegenerateCertificate(cert.Raw)
	if err != nil {
		return nil, nil, fmt.Errorf("est: certs-only: %w", err)
	}
	d := *q.device
	d.V, d.Profile, d.UpdatedAt = store.RecordVersion, prof.Name, now
	if d.Platform == "" {
		d.Platform = prof.Platform
	}
	serial := ca.SerialString(cert.SerialNumber)
	err = s.store.RecordIssuance(ctx, store.Issuance{
		Device: &d,
		Cert: &store.Cert{V: store.RecordVersion, SHA256: store.HashCert(cert), Serial: serial, DeviceID: q.deviceID,
			KeySHA256: q.keySHA, NotBefore: cert.NotBefore, NotAfter: cert.NotAfter, Profile: prof.Name,
			Protocol: Protocol, AttestationID: q.attID, Attested: q.attested, DER: cert.Raw},
		Audit: &store.AuditEvent{V: store.RecordVersion, Time: now, Actor: "device:" + q.deviceID, Action: q.action(),
			Subject: q.deviceID, Result: "ok", Source: q.ip,
			Reason: fmt.Sprintf("serial=%s profile=%s attested=%t channel_bound=%t", serial, prof.Name, q.attested, q.bound)},
		Challenge: q.challenge,
	})
	switch {
	case errors.Is(err, store.ErrConsumed):
		return nil, refuse(http.StatusUnauthorized, "challenge_consumed", "challenge already used"), nil
	case errors.Is(err, store.ErrExpired):
		return nil, refuse(http.StatusUnauthorized, "challenge_expired", "challenge expired"), nil
	case errors.Is(err, store.ErrMismatch):
		return nil, refuse(http.StatusUnauthorized, "device_mismatch", "challenge bound to another device or key"), nil
	case err != nil:
		return nil, nil, fmt.Errorf("est: record issuance: %w", err)
	}
	if q.renew && prof.RevokeOnRenew {
		_, err := s.store.RevokeCert(ctx, q.old.SHA256, store.Revocation{At: now, Reason: reasonSuperseded, Actor: "est:renew"},
			&store.AuditEvent{V: store.RecordVersion, Time: now, Actor: "device:" + q.deviceID, Action: "cert.revoke",
				Subject: q.old.Serial, Result: "ok", Reason: "superseded by " + serial, Source: q.ip})
		if err != nil {
			// The new certificate is recorded; the old one expires on its own.
			s.log.Error("EST: revoking the renewed certificate failed", "serial", q.old.Serial, "err", err)
		}
	}
	s.log.Info("EST certificate issued", "ip", q.ip, "device", q.deviceID, "profile", prof.Name, "serial", serial,
		"renew", q.renew, "attested", q.attested)
	return encode(p7), nil, nil
}

// reasonSuperseded is RFC 5280's CRLReason superseded.
const reasonSuperseded = 4

func (s *Server) audit(ctx context.Context, q *request, result, reason string) {
	if len(reason) > 200 {
		reason = reason[:200]
	}
	actor := "device:unknown"
	if q.deviceID != "" {
		actor = "device:" + q.deviceID
	}
	ev := &store.AuditEvent{V: store.RecordVersion, Time: s.now().UTC(), Actor: actor, Action: q.action(),
		Subject: q.deviceID, Result: result, Reason: reason, Source: q.ip}
	if err := s.store.AppendAudit(context.WithoutCancel(ctx), ev); err != nil {
		s.log.Error("audit append failed", "action", ev.Action, "err", err)
	}
}
