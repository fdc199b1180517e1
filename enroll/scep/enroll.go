package scep

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/smallstep/scep"

	"hardbound/enroll/ca"
	"hardbound/enroll/gate"
	"hardbound/store"
	"hardbound/store/policy"
)

// notifyTimeout bounds a best-effort failure notification to an MDM.
const notifyTimeout = 10 * time.Second

// maxDetail bounds the client-influenced text copied into audit events.
const maxDetail = 200

// opResult is what the HTTP layer writes.
type opResult struct {
	status     int
	text       string
	body       []byte
	retryAfter string // Retry-After of an error status, if any
}

// retryAfterUnavailable is the Retry-After (seconds) of a 503 answered
// while the store's database is away.
const retryAfterUnavailable = "5"

// refusal is a decision not to issue, answered with a CertRep FAILURE.
type refusal struct {
	reason Reason
	info   scep.FailInfo
	detail string
}

func refuse(reason Reason, info scep.FailInfo, format string, args ...any) *refusal {
	return &refusal{reason: reason, info: info, detail: fmt.Sprintf(format, args...)}
}

// request carries one PKIOperation through the decision steps.
type request struct {
	env        *envelope
	msg        *scep.PKIMessage
	ip         string
	urlProfile string // a configured profile named by the URL, or ""
	op         string

	profile       *Profile
	deviceID      string
	aliasValue    string // identity read from the CSR, recorded as alias
	keySHA256     store.Hash
	challengeHash *store.Hash
	validator     Validator
	attested      bool
	attestationID string
	format        string
	facts         map[string]string // the attestation's facts, identifiers included
}

func (r *request) action() string {
	if r.op == "renewalreq" {
		return "enroll.scep.renew"
	}
	return "enroll.scep.issue"
}

// pkiOperation answers one PKIOperation message.
func (h *Handler) pkiOperation(ctx context.Context, raw []byte, ip, pathProfile string) opResult {
	start := h.now()
	env, err := parseEnvelope(raw)
	if err != nil {
		h.metrics.Enrollment(Protocol, policy.FormatNone, string(ReasonBadMessage))
		h.log.Info("SCEP message refused", "ip", ip, "reason", ReasonBadMessage, "err", err)
		return opResult{status: http.StatusBadRequest, text: "malformed SCEP message"}
	}
	req := &request{env: env, ip: ip, op: "other", format: policy.FormatNone}
	switch env.messageType {
	case scep.PKCSReq:
		req.op = "pkcsreq"
	case scep.RenewalReq:
		req.op = "renewalreq"
	}
	defer func() { h.metrics.Latency(Protocol, req.op, h.now().Sub(start)) }()
	if _, ok := h.profiles[pathProfile]; ok {
		req.urlProfile = pathProfile
	}

	body, ref, err := h.enroll(ctx, req, raw)
	switch {
	case errors.Is(err, store.ErrUnavailable):
		// The database is away: nothing was issued, and the same request
		// may succeed later; a CertRep FAILURE would read as final.
		h.metrics.Enrollment(Protocol, req.format, string(ReasonInternal))
		return opResult{status: http.StatusServiceUnavailable, text: "database unavailable, retry later", retryAfter: retryAfterUnavailable}
	case err != nil:
		h.metrics.Enrollment(Protocol, req.format, string(ReasonInternal))
		h.log.Error("SCEP enrollment failed", "ip", ip, "device", req.deviceID, "transaction_id", env.transactionID, "err", err)
		h.audit(ctx, req, "error", string(ReasonInternal))
		return opResult{status: http.StatusInternalServerError, text: "internal error"}
	case ref != nil:
		return h.refused(ctx, req, ref)
	}
	h.metrics.Enrollment(Protocol, req.format, string(ReasonOK))
	return opResult{status: http.StatusOK, body: body}
}

// refused audits, notifies and answers a refusal.
func (h *Handler) refused(ctx context.Context, req *request, ref *refusal) opResult {
	h.metrics.Enrollment(Protocol, req.format, string(ref.reason))
	detail := ref.detail
	if len(detail) > maxDetail {
		detail = detail[:maxDetail]
	}
	h.log.Info("SCEP enrollment refused", "ip", req.ip, "device", req.deviceID, "profile", profileName(req.profile),
		"transaction_id", req.env.transactionID, "reason", ref.reason, "detail", detail)
	// A rate-limited flood must cost a counter, not an audit write each.
	if ref.reason != ReasonRateLimited {
		reason := string(ref.reason)
		if detail != "" {
			reason += ": " + detail
		}
		h.audit(ctx, req, "reject", reason)
	}
	if req.validator != nil && req.msg != nil && req.msg.CSR != nil {
		nctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), notifyTimeout)
		if err := req.validator.NotifyFailure(nctx, req.env.transactionID, req.msg.CSR.Raw, string(ref.reason)); err != nil {
			h.log.Warn("MDM failure notification failed", "transaction_id", req.env.transactionID, "err", err)
		}
		cancel()
	}
	// failInfo alone says little ("badRequest"); the text says why, so an
	// operator reading the client's log need not search ours.
	body, err := certRep(h.ra, req.env, nil, ref.info, failText(ref.reason, detail))
	if err != nil {
		h.log.Error("SCEP CertRep failure message", "err", err)
		return opResult{status: http.StatusInternalServerError, text: "internal error"}
	}
	return opResult{status: http.StatusOK, body: body}
}

// failText is the failInfoText of a refusal: the reason, then the detail.
func failText(reason Reason, detail string) string {
	if detail == "" {
		return string(reason)
	}
	return string(reason) + ": " + detail
}

// audit appends a refusal or error event; the success event is written by
// RecordIssuance in the issuance transaction. A refusal names what the
// request claimed (the CSR's subject and key) even before the device is
// known, and goes through the audit budget: SCEP requests are
// unauthenticated until their challenge is.
func (h *Handler) audit(ctx context.Context, req *request, result, reason string) {
	subject := req.deviceID
	actor := "device:unknown"
	if subject != "" {
		actor = "device:" + subject
	}
	// The budget's key is the refusal's label and the source, not what
	// varies per request (the detail, the claimed device, the key).
	label, _, _ := strings.Cut(reason, ":")
	if req.msg != nil && req.msg.CSR != nil {
		if subject == "" {
			if cn := req.msg.CSR.Subject.CommonName; cn != "" {
				subject = truncate(cn, store.MaxIDLen)
				reason += " claimed_device=" + subject
			}
		}
		if !req.keySHA256.IsZero() {
			reason += " key_sha256=" + req.keySHA256.String()
		}
	}
	if result == "reject" {
		write, held := h.budget.Allow(h.now(), label+"|"+req.ip, req.action())
		if !write {
			return
		}
		if held > 0 {
			reason += fmt.Sprintf(" suppressed_before=%d", held)
		}
	}
	ev := &store.AuditEvent{
		V:       store.RecordVersion,
		Time:    h.now().UTC(),
		Actor:   actor,
		Action:  req.action(),
		Subject: subject,
		Result:  result,
		Reason:  reason,
		Source:  req.ip,
	}
	if err := h.store.AppendAudit(context.WithoutCancel(ctx), ev); err != nil {
		h.log.Error("audit append failed", "action", ev.Action, "err", err)
	}
}

// enroll runs the decision steps and, on success, issues, records and
// returns the CertRep. A refusal is a client problem; an error is ours.
func (h *Handler) enroll(ctx context.Context, req *request, raw []byte) ([]byte, *refusal, error) {
	env := req.env
	if env.verifyErr != nil {
		return nil, refuse(ReasonBadMessage, scep.BadMessageCheck, "envelope signature: %v", env.verifyErr), nil
	}
	if req.op == "other" {
		return nil, refuse(ReasonUnsupportedMessage, scep.BadRequest, "messageType %q not supported", string(env.messageType)), nil
	}
	// The CertRep is encrypted to the envelope signer; CMS key transport
	// (all smallstep/pkcs7 offers) needs RSA.
	if _, ok := env.signer.PublicKey.(*rsa.PublicKey); !ok {
		return nil, refuse(ReasonUnsupportedKey, scep.BadAlg, "envelope signer key %T is not RSA", env.signer.PublicKey), nil
	}
	// Rate limit by source and profile before the RSA decryption: it is
	// the expensive step, and limiting it also blunts padding-oracle probing
	// of the RA key.
	if h.limiter != nil {
		if err := h.limiter.Allow("", req.ip, h.profileOrDefault(req.urlProfile).Name); err != nil {
			return nil, refuse(ReasonRateLimited, scep.BadRequest, "%v", err), nil
		}
	}
	msg, err := parseAndDecrypt(raw, env, h.ra)
	if err != nil {
		return nil, refuse(ReasonBadMessage, scep.BadMessageCheck, "%v", err), nil
	}
	req.msg = msg
	csr := msg.CSR
	if err := ca.CheckCSR(csr); err != nil {
		return nil, refuse(ReasonBadCSR, scep.BadRequest, "%v", err), nil
	}
	keyDER, err := x509.MarshalPKIXPublicKey(csr.PublicKey)
	if err != nil {
		return nil, refuse(ReasonBadCSR, scep.BadRequest, "marshal CSR key: %v", err), nil
	}
	req.keySHA256 = store.HashKey(keyDER)

	// The device bucket is charged once the CSR names a device; the IP and
	// profile buckets were charged before decryption.
	if h.limiter != nil {
		guess := h.profileOrDefault(req.urlProfile)
		if ident, ok := guess.Identity.extract(csr); ok {
			if err := h.limiter.Allow(ident, "", ""); err != nil {
				return nil, refuse(ReasonRateLimited, scep.BadRequest, "%v", err), nil
			}
		}
	}

	var ref *refusal
	if req.op == "pkcsreq" {
		// PKCSReq is signed with a self-signed cert over the key being
		// certified: proof that the sender holds the CSR key.
		if !keysEqual(env.signer.PublicKey, csr.PublicKey) {
			return nil, refuse(ReasonBadCSR, scep.BadMessageCheck, "envelope signer key differs from the CSR key"), nil
		}
		ref, err = h.authorizeNew(ctx, req)
	} else {
		ref, err = h.authorizeRenewal(ctx, req)
	}
	if ref != nil || err != nil {
		return nil, ref, err
	}
	if ref, err := h.linkAttestation(ctx, req); ref != nil || err != nil {
		return nil, ref, err
	}
	return h.issue(ctx, req)
}

// authorizeNew decides a PKCSReq by its challengePassword.
func (h *Handler) authorizeNew(ctx context.Context, req *request) (*refusal, error) {
	cp := req.msg.ChallengePassword
	if cp == "" {
		return refuse(ReasonChallengeMissing, scep.BadRequest, "no challengePassword in CSR"), nil
	}
	hash := store.HashChallenge(cp)
	ch, err := h.store.GetChallenge(ctx, hash)
	switch {
	case err == nil:
		return h.authorizeMinted(ctx, req, ch, hash)
	case errors.Is(err, store.ErrExpired):
		return refuse(ReasonChallengeExpired, scep.BadRequest, "challenge expired"), nil
	case errors.Is(err, store.ErrConsumed):
		return refuse(ReasonChallengeConsumed, scep.BadRequest, "challenge already used"), nil
	case !errors.Is(err, store.ErrNotFound):
		return nil, fmt.Errorf("scep: get challenge: %w", err)
	}

	prof := h.profileOrDefault(req.urlProfile)
	req.profile = prof
	if prof.StaticChallenge != "" {
		// Compare digests so the comparison is constant-time regardless of length.
		static := sha256.Sum256([]byte(prof.StaticChallenge))
		if subtle.ConstantTimeCompare(static[:], hash[:]) == 1 {
			if ref, err := h.bindIdentity(ctx, req, ""); ref != nil || err != nil {
				return ref, err
			}
			if prof.RequireAttestation {
				return refuse(ReasonAttestationRequired, scep.BadRequest, "static challenge on a profile that requires attestation"), nil
			}
			// A static secret proves nothing about the device: never attested.
			req.format = policy.FormatNone
			return nil, nil
		}
	}
	if prof.Validator != nil {
		if ref, err := h.bindIdentity(ctx, req, ""); ref != nil || err != nil {
			return ref, err
		}
		req.validator = prof.Validator
		if err := prof.Validator.Validate(ctx, req.env.transactionID, req.msg.CSR.Raw); err != nil {
			return refuse(ReasonMDMRejected, scep.BadRequest, "%v", err), nil
		}
		return nil, nil
	}
	return refuse(ReasonChallengeUnknown, scep.BadRequest, "challenge not recognised"), nil
}

// authorizeMinted checks a challenge found in the store. The store consumes
// it again, atomically, in RecordIssuance; these checks give the precise
// reason and enforce the bindings the store does not know about.
func (h *Handler) authorizeMinted(ctx context.Context, req *request, ch *store.Challenge, hash store.Hash) (*refusal, error) {
	prof, ok := h.profiles[ch.Profile]
	if !ok {
		return refuse(ReasonProfileUnknown, scep.BadRequest, "challenge profile %q not configured", ch.Profile), nil
	}
	req.profile = prof
	if req.urlProfile != "" && req.urlProfile != ch.Profile {
		return refuse(ReasonProfileMismatch, scep.BadRequest, "challenge is for profile %q", ch.Profile), nil
	}
	if !ch.ConsumedAt.IsZero() {
		return refuse(ReasonChallengeConsumed, scep.BadRequest, "challenge already used"), nil
	}
	if !h.now().Before(ch.ExpiresAt) {
		return refuse(ReasonChallengeExpired, scep.BadRequest, "challenge expired"), nil
	}
	if ref, err := h.bindIdentity(ctx, req, ch.DeviceID); ref != nil || err != nil {
		return ref, err
	}
	if !ch.KeySHA256.IsZero() {
		if subtle.ConstantTimeCompare(ch.KeySHA256[:], req.keySHA256[:]) != 1 {
			return refuse(ReasonKeyMismatch, scep.BadRequest, "CSR key is not the key the challenge is bound to"), nil
		}
		// Binding a challenge to a key proves possession, not hardware:
		// only a verified attestation of this key (the TPM flow links
		// one) makes the certificate attested. An admin's key-bound
		// challenge without one stays unattested.
		if err := h.useAttestation(ctx, req, ch.AttestationID); err != nil {
			return nil, err
		}
	}
	req.challengeHash = &hash
	return nil, nil
}

// useAttestation marks req attested by the stored attestation id when it
// exists and attests exactly the CSR key for this device. A missing one
// leaves req unattested, as posture.Decide treats a binding whose
// attestation cannot be read.
func (h *Handler) useAttestation(ctx context.Context, req *request, id string) error {
	if id == "" {
		return nil
	}
	a, err := h.store.GetAttestation(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("scep: get attestation: %w", err)
	}
	if a.KeySHA256 != req.keySHA256 || (a.DeviceID != "" && a.DeviceID != req.deviceID) || a.Format == "" {
		return nil
	}
	req.attested = true
	req.attestationID = a.ID
	req.format = a.Format
	req.facts = a.Facts
	return nil
}

// bindIdentity reads the device identity from the CSR and sets the device.
// want, if set, is the device a challenge is bound to: the CSR must name it
// (directly or through the profile's alias). Without want the device is
// bound now, from the CSR (Jamf, static, Intune).
func (h *Handler) bindIdentity(ctx context.Context, req *request, want string) (*refusal, error) {
	prof := req.profile
	ident, ok := prof.Identity.extract(req.msg.CSR)
	if !ok {
		return refuse(ReasonNoIdentity, scep.BadRequest, "CSR carries no device identity (%s)", identitySourceName(prof.Identity)), nil
	}
	resolved, err := h.resolveDevice(ctx, prof, ident)
	if err != nil {
		return nil, err
	}
	if want != "" && ident != want && resolved != want {
		return refuse(ReasonDeviceMismatch, scep.BadRequest, "challenge is bound to another device"), nil
	}
	if want != "" {
		resolved = want
	}
	req.deviceID = resolved
	req.aliasValue = ident
	return nil, nil
}

// resolveDevice maps an identity to an existing device through the
// profile's alias kind, so a device enrolled under its EK hash or UDID is
// found by its serial; otherwise the identity is the device id.
func (h *Handler) resolveDevice(ctx context.Context, prof *Profile, ident string) (string, error) {
	if prof.Identity.Alias == "" {
		return ident, nil
	}
	d, err := h.store.FindDeviceByAlias(ctx, prof.Identity.Alias, ident)
	switch {
	case err == nil:
		return d.ID, nil
	case errors.Is(err, store.ErrNotFound):
		return ident, nil
	default:
		return "", fmt.Errorf("scep: find device by alias: %w", err)
	}
}

// authorizeRenewal decides a RenewalReq: the envelope must be signed by a
// current, unrevoked certificate of ours, and the new cert is for the same device.
func (h *Handler) authorizeRenewal(ctx context.Context, req *request) (*refusal, error) {
	signer := req.env.signer
	pool := x509.NewCertPool()
	pool.AddCert(h.ca.Issuing())
	if _, err := signer.Verify(x509.VerifyOptions{
		Roots:       pool,
		CurrentTime: h.now(),
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		var inv x509.CertificateInvalidError
		if errors.As(err, &inv) && inv.Reason == x509.Expired {
			return refuse(ReasonRenewalExpired, scep.BadCertID, "signer certificate expired"), nil
		}
		return refuse(ReasonRenewalUnknownCert, scep.BadCertID, "signer certificate not issued by this CA"), nil
	}
	b, err := h.store.GetCert(ctx, store.HashCert(signer))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return refuse(ReasonRenewalUnknownCert, scep.BadCertID, "signer certificate has no binding"), nil
	case err != nil:
		return nil, fmt.Errorf("scep: get cert: %w", err)
	}
	req.deviceID = b.DeviceID
	if b.Revoked != nil {
		return refuse(ReasonRenewalRevoked, scep.BadCertID, "signer certificate revoked"), nil
	}
	prof, ok := h.profiles[b.Profile]
	if !ok {
		return refuse(ReasonProfileUnknown, scep.BadRequest, "certificate profile %q not configured", b.Profile), nil
	}
	req.profile = prof
	if req.urlProfile != "" && req.urlProfile != b.Profile {
		return refuse(ReasonProfileMismatch, scep.BadRequest, "certificate is for profile %q", b.Profile), nil
	}
	// The CSR need not name the device (the signer cert does), but if it
	// names one it must be the same.
	if ident, ok := prof.Identity.extract(req.msg.CSR); ok {
		resolved, err := h.resolveDevice(ctx, prof, ident)
		if err != nil {
			return nil, err
		}
		if ident != b.DeviceID && resolved != b.DeviceID {
			return refuse(ReasonDeviceMismatch, scep.BadRequest, "CSR names another device than the signer certificate"), nil
		}
		req.aliasValue = ident
	}
	// Same key: the old binding's attestation still describes it.
	if b.Attested && b.KeySHA256 == req.keySHA256 {
		if err := h.useAttestation(ctx, req, b.AttestationID); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// linkAttestation marks the cert attested when the store holds a verified
// attestation of exactly this key for this device, and enforces the
// profile's RequireAttestation.
func (h *Handler) linkAttestation(ctx context.Context, req *request) (*refusal, error) {
	static := req.challengeHash == nil && req.validator == nil && req.op == "pkcsreq"
	if !req.attested && !static {
		a, err := h.store.FindAttestationByKey(ctx, req.keySHA256)
		switch {
		case err == nil:
			if a.DeviceID != "" && a.DeviceID != req.deviceID {
				return refuse(ReasonDeviceMismatch, scep.BadRequest, "CSR key is attested for another device"), nil
			}
			req.attested = true
			req.attestationID = a.ID
			req.format = a.Format
			req.facts = a.Facts
		case !errors.Is(err, store.ErrNotFound):
			return nil, fmt.Errorf("scep: find attestation: %w", err)
		}
	}
	return admit(req), nil
}

// admit is issuance's copy of the authentication decision on formats
// (posture's Profile.allows over the same profile): a certificate that
// every authentication would reject is refused now, with the reason the
// RADIUS side would give.
func admit(req *request) *refusal {
	p := req.profile
	switch {
	case !req.attested && p.RequireAttestation:
		return refuse(ReasonAttestationRequired, scep.BadRequest, "profile %q requires an attested key", p.Name)
	case !req.attested && !p.Formats.AdmitsUnattested():
		return refuse(ReasonUnattested, scep.BadRequest,
			"profile %q admits only hardware-attested keys and this key has no attestation; authentication would reject it as unattested", p.Name)
	case req.attested && !p.Formats.Admits(req.format):
		return refuse(ReasonFormatNotAllowed, scep.BadRequest, "profile %q does not admit attestation format %q", p.Name, req.format)
	}
	return nil
}

// issue signs, builds the CertRep, records everything in one transaction
// and only then returns the CertRep for sending.
func (h *Handler) issue(ctx context.Context, req *request) ([]byte, *refusal, error) {
	prof := req.profile
	now := h.now().UTC()
	existing, err := h.store.GetDevice(ctx, req.deviceID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		existing = nil
	case err != nil:
		return nil, nil, fmt.Errorf("scep: get device: %w", err)
	case existing.Status == store.DeviceRevoked:
		return nil, refuse(ReasonDeviceRevoked, scep.BadRequest, "device is revoked"), nil
	}
	if ref, err := h.admit(ctx, req); ref != nil || err != nil {
		return nil, ref, err
	}

	var att *ca.Attestation
	if req.attested {
		// The profile's attested names (enroll/ca) apply.
		att = &ca.Attestation{Format: req.format, Identifiers: req.facts}
	}
	cert, err := h.ca.Issue(ctx, ca.IssueRequest{
		CSR:         req.msg.CSR,
		DeviceID:    req.deviceID,
		Profile:     ca.Profile{Name: prof.Name, Validity: prof.Validity},
		Attestation: att,
	})
	if err != nil {
		if errors.Is(err, ca.ErrCSRPolicy) || errors.Is(err, ca.ErrInvalidRequest) {
			return nil, refuse(ReasonBadCSR, scep.BadRequest, "%v", err), nil
		}
		return nil, nil, fmt.Errorf("scep: issue: %w", err)
	}
	body, err := certRep(h.ra, req.env, cert, "", "")
	if err != nil {
		return nil, nil, err
	}
	if req.validator != nil {
		// Intune: a failed success notification means the cert must not be
		// handed out, so it comes before the binding is recorded.
		if err := req.validator.NotifySuccess(ctx, req.env.transactionID, req.msg.CSR.Raw, cert); err != nil {
			return nil, refuse(ReasonMDMRejected, scep.BadRequest, "success notification: %v", err), nil
		}
	}

	dev := h.deviceRecord(existing, req, now)
	serial := ca.SerialString(cert.SerialNumber)
	is := store.Issuance{
		Device: dev,
		Cert: &store.Cert{
			V:             store.RecordVersion,
			SHA256:        store.HashCert(cert),
			Serial:        serial,
			DeviceID:      req.deviceID,
			KeySHA256:     req.keySHA256,
			NotBefore:     cert.NotBefore,
			NotAfter:      cert.NotAfter,
			Profile:       prof.Name,
			Protocol:      Protocol,
			AttestationID: req.attestationID,
			Attested:      req.attested,
			DER:           cert.Raw,
		},
		Audit: &store.AuditEvent{
			V:       store.RecordVersion,
			Time:    now,
			Actor:   "device:" + req.deviceID,
			Action:  req.action(),
			Subject: req.deviceID,
			Result:  "ok",
			Reason:  fmt.Sprintf("serial=%s profile=%s attested=%t", serial, prof.Name, req.attested),
			Source:  req.ip,
		},
		Challenge: req.challengeHash,
	}
	if err := h.store.RecordIssuance(ctx, is); err != nil {
		switch {
		case errors.Is(err, store.ErrConsumed):
			return nil, refuse(ReasonChallengeConsumed, scep.BadRequest, "challenge already used"), nil
		case errors.Is(err, store.ErrExpired):
			return nil, refuse(ReasonChallengeExpired, scep.BadRequest, "challenge expired"), nil
		case errors.Is(err, store.ErrMismatch):
			return nil, refuse(ReasonDeviceMismatch, scep.BadRequest, "challenge bound to another device or key"), nil
		case errors.Is(err, store.ErrNotFound) && req.challengeHash != nil:
			return nil, refuse(ReasonChallengeUnknown, scep.BadRequest, "challenge vanished"), nil
		}
		return nil, nil, fmt.Errorf("scep: record issuance: %w", err)
	}
	h.log.Info("SCEP certificate issued", "ip", req.ip, "device", req.deviceID, "profile", prof.Name,
		"serial", serial, "attested", req.attested, "transaction_id", req.env.transactionID)
	return body, nil, nil
}

// deviceRecord is the Device written with the issuance: the existing record
// (status and posture untouched) with profile and alias updated, or a new one.
func (h *Handler) deviceRecord(existing *store.Device, req *request, now time.Time) *store.Device {
	var d store.Device
	if existing != nil {
		d = *existing
		d.Aliases = maps.Clone(existing.Aliases)
	} else {
		d = store.Device{
			ID:        req.deviceID,
			Platform:  req.profile.Platform,
			Status:    store.DeviceActive,
			Posture:   store.Posture{State: store.ComplianceUnknown},
			CreatedAt: now,
		}
	}
	d.V = store.RecordVersion
	d.Profile = req.profile.Name
	d.UpdatedAt = now
	if kind := req.profile.Identity.Alias; kind != "" && req.aliasValue != "" {
		if d.Aliases == nil {
			d.Aliases = map[string]string{}
		}
		d.Aliases[kind] = req.aliasValue
	}
	return &d
}

func (h *Handler) profileOrDefault(name string) *Profile {
	if p, ok := h.profiles[name]; ok {
		return p
	}
	return h.profiles[h.defaultProfile]
}

func keysEqual(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

func profileName(p *Profile) string {
	if p == nil {
		return ""
	}
	return p.Name
}

func identitySourceName(id Identity) string {
	if id.Source == "" {
		return string(IdentityCN)
	}
	if id.Source == IdentitySANURI {
		return "SAN URI " + id.URIPrefix
	}
	return string(id.Source)
}

// admit applies the issuance gate: the device needs an inventory record
// when the profile requires one, and the record's profile must be the one
// this request enrolls in (the URL's or the challenge's, never adopted).
func (h *Handler) admit(ctx context.Context, req *request) (*refusal, error) {
	if h.gate == nil {
		return nil, nil
	}
	ids := map[string]string{}
	if kind := req.profile.Identity.Alias; kind != "" && req.aliasValue != "" {
		ids[kind] = req.aliasValue
	}
	_, err := h.gate.Admit(ctx, gate.Request{DeviceID: req.deviceID, Identities: ids, Format: req.format,
		Profile: req.profile.Name, Named: true})
	if err == nil {
		return nil, nil
	}
	if r := gate.Reason(err); r != "error" && r != "unauthorized" {
		return refuse(Reason(r), scep.BadRequest, "%v", err), nil
	}
	if errors.Is(err, gate.ErrRevoked) {
		return refuse(ReasonDeviceRevoked, scep.BadRequest, "device is revoked"), nil
	}
	return nil, fmt.Errorf("scep: %w", err)
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
