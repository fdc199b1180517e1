package acme

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"hardbound/enroll/attest"
	"hardbound/enroll/ca"
	"hardbound/store"
	"hardbound/store/inventory"
	"hardbound/store/policy"
)

const (
	maxContacts = 4
	maxCSRBytes = 16 << 10
)

type accountJSON struct {
	Status  string   `json:"status"`
	Contact []string `json:"contact,omitempty"`
	Orders  string   `json:"orders"`
}

func (s *Server) accountURL(r *http.Request, id string) string { return s.base(r) + "/acct/" + id }

func (s *Server) writeAccount(w http.ResponseWriter, r *http.Request, a *Account, status int) {
	w.Header().Set("Location", s.accountURL(r, a.ID))
	writeJSON(w, status, accountJSON{Status: a.Status, Contact: a.Contact, Orders: s.accountURL(r, a.ID) + "/orders"})
}

func checkContacts(c []string) *Problem {
	if len(c) > maxContacts {
		return malformed("at most %d contacts", maxContacts)
	}
	for _, v := range c {
		if len(v) > 256 || !strings.HasPrefix(v, "mailto:") {
			return problem("urn:ietf:params:acme:error:unsupportedContact", http.StatusBadRequest, "malformed", "contacts must be mailto: URLs of at most 256 octets")
		}
	}
	return nil
}

// handleNewAccount implements RFC 8555 §7.3. Accounts are open to anyone:
// what authorises a certificate is the hardware attestation, not the account.
func (s *Server) handleNewAccount(w http.ResponseWriter, req *request) *Problem {
	var in struct {
		Contact              []string `json:"contact"`
		TermsOfServiceAgreed bool     `json:"termsOfServiceAgreed"`
		OnlyReturnExisting   bool     `json:"onlyReturnExisting"`
	}
	if req.postAsGet {
		return malformed("newAccount needs a JSON payload")
	}
	if p := decodePayload(req.payload, &in); p != nil {
		return p
	}
	if p := checkContacts(in.Contact); p != nil {
		return p
	}
	ctx := req.r.Context()
	tp, err := thumbprint(req.jwk)
	if err != nil {
		return problem(ProblemBadPublicKey, http.StatusBadRequest, "malformed", "cannot compute the key thumbprint")
	}
	if a, err := s.accounts.ByThumbprint(ctx, tp); err == nil {
		if a.Status != AccountValid {
			return unauthorized("account is %s", a.Status)
		}
		s.writeAccount(w, req.r, a, http.StatusOK)
		return nil
	} else if !errors.Is(err, ErrAccountNotFound) {
		s.log.Error("account lookup failed", "err", err)
		return internalErr(err, "account lookup failed")
	}
	if in.OnlyReturnExisting {
		return problem(ProblemAccountDoesNotExist, http.StatusBadRequest, "unauthorized", "no account for this key")
	}
	if p := s.allow("", req.ip, ""); p != nil {
		return p
	}
	a, created, err := s.accounts.Create(ctx, &Account{
		ID: randomID(16), Key: req.jwk, Thumbprint: tp, Contact: in.Contact,
		Status: AccountValid, CreatedAt: s.now().UTC(),
	})
	if err != nil {
		s.log.Error("account create failed", "err", err)
		return internalErr(err, "account create failed")
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		s.log.Info("acme account created", "account", a.ID, "source", req.ip)
	}
	s.writeAccount(w, req.r, a, status)
	return nil
}

func (s *Server) handleAccount(w http.ResponseWriter, req *request) *Problem {
	if req.r.PathValue("id") != req.account.ID {
		return unauthorized("account URL does not belong to the signing key")
	}
	a := req.account
	if !req.postAsGet {
		var in struct {
			Contact *[]string `json:"contact"`
			Status  string    `json:"status"`
		}
		if p := decodePayload(req.payload, &in); p != nil {
			return p
		}
		changed := false
		if in.Contact != nil {
			if p := checkContacts(*in.Contact); p != nil {
				return p
			}
			a.Contact, changed = *in.Contact, true
		}
		switch in.Status {
		case "", AccountValid:
		case AccountDeactivated:
			a.Status, changed = AccountDeactivated, true
		default:
			return malformed("account status may only be set to deactivated")
		}
		if changed {
			if err := s.accounts.Update(req.r.Context(), a); err != nil {
				s.log.Error("account update failed", "err", err)
				return internalErr(err, "account update failed")
			}
		}
	}
	s.writeAccount(w, req.r, a, http.StatusOK)
	return nil
}

func (s *Server) handleAccountOrders(w http.ResponseWriter, req *request) *Problem {
	if req.r.PathValue("id") != req.account.ID {
		return unauthorized("account URL does not belong to the signing key")
	}
	s.orders.mu.Lock()
	ids := s.orders.byAccountLocked(req.account.ID)
	s.orders.mu.Unlock()
	urls := make([]string, 0, len(ids))
	for _, id := range ids {
		urls = append(urls, s.base(req.r)+"/order/"+id)
	}
	writeJSON(w, http.StatusOK, map[string][]string{"orders": urls})
	return nil
}

type orderJSON struct {
	Status         string       `json:"status"`
	Expires        string       `json:"expires"`
	Identifiers    []Identifier `json:"identifiers"`
	Authorizations []string     `json:"authorizations"`
	Finalize       string       `json:"finalize"`
	Certificate    string       `json:"certificate,omitempty"`
	Error          *Problem     `json:"error,omitempty"`
}

type challengeJSON struct {
	Type      string   `json:"type"`
	URL       string   `json:"url"`
	Status    string   `json:"status"`
	Token     string   `json:"token"`
	Validated string   `json:"validated,omitempty"`
	Error     *Problem `json:"error,omitempty"`
}

type authzJSON struct {
	Identifier Identifier      `json:"identifier"`
	Status     string          `json:"status"`
	Expires    string          `json:"expires"`
	Challenges []challengeJSON `json:"challenges"`
}

// The views are built with s.orders.mu held.
func (s *Server) orderView(base string, o *order) orderJSON {
	v := orderJSON{
		Status: o.status, Expires: o.expires.UTC().Format(time.RFC3339),
		Identifiers:    []Identifier{o.identifier},
		Authorizations: []string{base + "/authz/" + o.authzID},
		Finalize:       base + "/order/" + o.id + "/finalize",
		Error:          o.orderErr,
	}
	if o.status == StatusValid {
		v.Certificate = base + "/cert/" + o.id
	}
	return v
}

func (s *Server) challengeView(base string, o *order) challengeJSON {
	c := challengeJSON{Type: ChallengeDeviceAttest01, URL: base + "/chall/" + o.challID, Status: o.challStatus, Token: o.token, Error: o.challErr}
	if o.busy && o.challStatus == StatusPending {
		c.Status = StatusProcessing
	}
	if !o.validated.IsZero() {
		c.Validated = o.validated.UTC().Format(time.RFC3339)
	}
	return c
}

func (s *Server) authzView(base string, o *order) authzJSON {
	return authzJSON{
		Identifier: o.identifier, Status: o.authzStatus, Expires: o.expires.UTC().Format(time.RFC3339),
		Challenges: []challengeJSON{s.challengeView(base, o)},
	}
}

// handleNewOrder implements RFC 8555 §7.4 for exactly one device identifier.
func (s *Server) handleNewOrder(w http.ResponseWriter, req *request) *Problem {
	name := req.r.PathValue("profile")
	if name == "" {
		name = s.deflt
	}
	if _, ok := s.profiles[name]; !ok {
		return notFound("profile")
	}
	var in struct {
		Identifiers []Identifier `json:"identifiers"`
		NotBefore   string       `json:"notBefore"`
		NotAfter    string       `json:"notAfter"`
	}
	if req.postAsGet {
		return malformed("newOrder needs a JSON payload")
	}
	if p := decodePayload(req.payload, &in); p != nil {
		return p
	}
	if len(in.Identifiers) != 1 {
		return malformed("an order names exactly one device identifier")
	}
	if requestsValidity(in.NotBefore) || requestsValidity(in.NotAfter) {
		return malformed("notBefore/notAfter are not supported: validity comes from the profile")
	}
	id := in.Identifiers[0]
	dev, p := deviceIdentity(id)
	if p != nil {
		return p
	}
	req.device = dev
	if p := s.allow(dev, req.ip, name); p != nil {
		return p
	}
	o := s.orders.create(req.account.ID, name, req.r.PathValue("profile") != "", id, dev)
	base := s.base(req.r)
	s.orders.mu.Lock()
	v := s.orderView(base, o)
	s.orders.mu.Unlock()
	w.Header().Set("Location", base+"/order/"+o.id)
	writeJSON(w, http.StatusCreated, v)
	return nil
}

// lookup finds an order by one of its ids and checks the account owns it.
// It returns with s.orders.mu held when the problem is nil.
func (s *Server) lookup(req *request, kind byte, what string) (*order, *Problem) {
	s.orders.mu.Lock()
	o := s.orders.lookupLocked(kind, req.r.PathValue("id"))
	if o == nil {
		s.orders.mu.Unlock()
		return nil, notFound(what)
	}
	req.device = o.deviceID
	if o.account != req.account.ID {
		s.orders.mu.Unlock()
		return nil, unauthorized("%s belongs to another account", what)
	}
	if o.attested != nil {
		req.format = o.attested.Format
	}
	return o, nil
}

func (s *Server) handleOrder(w http.ResponseWriter, req *request) *Problem {
	o, p := s.lookup(req, 'o', "order")
	if p != nil {
		return p
	}
	v := s.orderView(s.base(req.r), o)
	s.orders.mu.Unlock()
	w.Header().Set("Location", s.base(req.r)+"/order/"+o.id)
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (s *Server) handleAuthz(w http.ResponseWriter, req *request) *Problem {
	o, p := s.lookup(req, 'a', "authorization")
	if p != nil {
		return p
	}
	if !req.postAsGet {
		var in struct {
			Status string `json:"status"`
		}
		if p := decodePayload(req.payload, &in); p != nil {
			s.orders.mu.Unlock()
			return p
		}
		if in.Status == "deactivated" {
			o.authzStatus, o.status = "deactivated", StatusInvalid
		}
	}
	v := s.authzView(s.base(req.r), o)
	s.orders.mu.Unlock()
	writeJSON(w, http.StatusOK, v)
	return nil
}

// handleChallenge validates device-attest-01 synchronously
// (docs/attestation.md §1.2): the payload {"attObj": base64url(CBOR)} is
// verified against this challenge's key authorization, the format must be
// allowed by the profile, and the attestation must prove the order's device
// identity. A failure invalidates challenge, authorization and order.
func (s *Server) handleChallenge(w http.ResponseWriter, req *request) *Problem {
	base := s.base(req.r)
	o, p := s.lookup(req, 'c', "challenge")
	if p != nil {
		return p
	}
	if req.postAsGet || o.challStatus != StatusPending || o.busy {
		v := s.challengeView(base, o)
		s.orders.mu.Unlock()
		w.Header().Add("Link", `<`+base+"/authz/"+o.authzID+`>;rel="up"`)
		writeJSON(w, http.StatusOK, v)
		return nil
	}
	token, profile, named, dev, ident := o.token, s.profiles[o.profile], o.named, o.deviceID, o.identifier
	s.orders.mu.Unlock()

	// Other fields (step-ca's "error", for one) are ignored, as RFC 8555
	// asks; a client that cannot attest simply lets the order expire.
	var in struct {
		AttObj string `json:"attObj"`
	}
	if p := decodePayload(req.payload, &in); p != nil {
		return p
	}
	if in.AttObj == "" {
		return malformed("device-attest-01 needs attObj in the payload")
	}
	attObj, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(in.AttObj, "="))
	if err != nil {
		return malformed("attObj is not base64url")
	}
	if len(attObj) == 0 || len(attObj) > attest.MaxAttObjSize {
		return malformed("attObj must be 1..%d bytes", attest.MaxAttObjSize)
	}
	if p := s.allow("", req.ip, ""); p != nil {
		return p
	}

	s.orders.mu.Lock()
	if o.challStatus != StatusPending || o.busy {
		v := s.challengeView(base, o)
		s.orders.mu.Unlock()
		writeJSON(w, http.StatusOK, v)
		return nil
	}
	o.busy = true
	s.orders.mu.Unlock()

	keyAuth := token + "." + req.account.Thumbprint
	res, err := s.attester.VerifyACME(req.r.Context(), attObj, keyAuth)
	var fail *Problem
	switch {
	case err != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		s.orders.mu.Lock()
		o.busy = false // the client went away: leave the challenge pending
		s.orders.mu.Unlock()
		return serverInternal("validation interrupted")
	case err != nil:
		fail = problem(ProblemBadAttestationStatement, http.StatusBadRequest, "bad_attestation", "%v", err)
	case !res.Proves(dev):
		req.format = res.Format
		fail = problem(ProblemBadAttestationStatement, http.StatusBadRequest, "rejected_identifier",
			"the attestation does not prove identifier %q", ident.Value)
		idc := ident
		fail.Subproblems = []Subproblem{{Type: ProblemRejectedIdentifier, Detail: "identifier not attested", Identifier: &idc}}
	default:
		req.format = res.Format
		var adm *admission
		if adm, fail = s.admit(req.r.Context(), req, res, profile.Name, named, ident); fail == nil {
			profile = adm.profile
		}
	}

	s.orders.mu.Lock()
	o.busy = false
	if fail != nil {
		o.challStatus, o.authzStatus, o.status = StatusInvalid, StatusInvalid, StatusInvalid
		o.challErr, o.orderErr = fail, fail
		s.orders.mu.Unlock()
		return fail
	}
	o.challStatus, o.authzStatus, o.status = StatusValid, StatusValid, StatusReady
	o.profile = profile.Name // the record's, which the gate checked
	o.validated = s.now()
	o.attested = res
	v := s.challengeView(base, o)
	s.orders.mu.Unlock()
	s.log.Info("device attestation verified", "device", dev, "format", res.Format, "profile", profile.Name, "source", req.ip)
	w.Header().Add("Link", `<`+base+"/authz/"+o.authzID+`>;rel="up"`)
	writeJSON(w, http.StatusOK, v)
	return nil
}

// handleFinalize checks the CSR against the attestation (docs/attestation.md
// §1.3), issues, and records the issuance durably before answering.
func (s *Server) handleFinalize(w http.ResponseWriter, req *request) *Problem {
	base := s.base(req.r)
	o, p := s.lookup(req, 'o', "order")
	if p != nil {
		return p
	}
	if o.status != StatusReady || o.busy {
		st := o.status
		s.orders.mu.Unlock()
		return problem(ProblemOrderNotReady, http.StatusForbidden, "order_not_ready", "order is %s, not ready", st)
	}
	s.orders.mu.Unlock()

	var in struct {
		CSR string `json:"csr"`
	}
	if req.postAsGet {
		return malformed("finalize needs a JSON payload")
	}
	if p := decodePayload(req.payload, &in); p != nil {
		return p
	}
	der, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(in.CSR, "="))
	if err != nil || len(der) == 0 || len(der) > maxCSRBytes {
		return problem(ProblemBadCSR, http.StatusBadRequest, "bad_csr", "csr must be base64url DER of at most %d bytes", maxCSRBytes)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return problem(ProblemBadCSR, http.StatusBadRequest, "bad_csr", "CSR does not parse: %v", err)
	}

	s.orders.mu.Lock()
	if o.status != StatusReady || o.busy {
		st := o.status
		s.orders.mu.Unlock()
		return problem(ProblemOrderNotReady, http.StatusForbidden, "order_not_ready", "order is %s, not ready", st)
	}
	o.busy, o.status = true, StatusProcessing
	res, profile, named, ident, validated := o.attested, s.profiles[o.profile], o.named, o.identifier, o.validated
	s.orders.mu.Unlock()

	cert, p := s.issue(req, csr, res, profile, named, ident, validated)

	s.orders.mu.Lock()
	o.busy = false
	if p != nil {
		o.status, o.orderErr = StatusInvalid, p
		s.orders.mu.Unlock()
		return p
	}
	o.status = StatusValid
	o.chain = []*x509.Certificate{cert, s.issuer.Issuing()}
	v := s.orderView(base, o)
	s.orders.mu.Unlock()
	w.Header().Set("Location", base+"/order/"+o.id)
	writeJSON(w, http.StatusOK, v)
	return nil
}

func badCSR(format string, args ...any) *Problem {
	return problem(ProblemBadCSR, http.StatusBadRequest, "bad_csr", format, args...)
}

func (s *Server) issue(req *request, csr *x509.CertificateRequest, res *attest.Result, profile Profile, named bool, ident Identifier, validated time.Time) (*x509.Certificate, *Problem) {
	ctx := req.r.Context()
	if err := ca.CheckCSR(csr); err != nil {
		return nil, badCSR("%v", err)
	}
	csrKey, err1 := x509.MarshalPKIXPublicKey(csr.PublicKey)
	attKey, err2 := x509.MarshalPKIXPublicKey(res.PublicKey)
	if err1 != nil || err2 != nil || !bytes.Equal(csrKey, attKey) {
		return nil, badCSR("CSR public key is not the attested key")
	}
	if err := checkCSRNames(csr, ident); err != nil {
		return nil, badCSR("%v", err)
	}
	// The gate again: the record may have changed (removed, moved to
	// another profile, revoked) since the challenge. A profile the record
	// moved to since is taken only when the URL did not name one.
	adm, p := s.admit(ctx, req, res, profile.Name, named, ident)
	if p != nil {
		return nil, p
	}
	profile = adm.profile
	devID := res.DeviceID
	if devID == "" {
		devID = req.device
	}
	dev := &store.Device{
		V: store.RecordVersion, ID: devID, Platform: platform(res), Profile: profile.Name,
		Status: store.DeviceActive, Posture: store.Posture{State: store.ComplianceUnknown},
		Aliases: aliases(res), Source: inventory.SourceEnroll,
	}
	if rec := adm.record; rec != nil {
		// The record's id, platform and source stand; the evidence adds
		// the identities it proves.
		devID, dev.ID, dev.Source = rec.ID, rec.ID, ""
		if rec.Platform != "" {
			dev.Platform = ""
		}
	}
	req.device = devID

	start := s.now()
	cert, err := s.issuer.Issue(ctx, ca.IssueRequest{
		CSR: csr, PublicKey: res.PublicKey, DeviceID: devID,
		Profile: ca.Profile{Name: profile.Name, Validity: profile.Validity},
		// device-attest-01 proved the key and the device: the profile's
		// attested names (enroll/ca) apply.
		Attestation: &ca.Attestation{Format: res.Format, Identifiers: res.Identifiers},
	})
	if errors.Is(err, ca.ErrCSRPolicy) {
		return nil, badCSR("%v", err)
	}
	if err != nil {
		s.log.Error("issue failed", "device", devID, "err", err)
		return nil, serverInternal("issuance failed")
	}
	now := s.now().UTC()
	serial := ca.SerialString(cert.SerialNumber)
	attID := randomID(16)
	keySHA := store.HashKey(cert.RawSubjectPublicKeyInfo)
	attKeySHA := res.KeySHA256
	if attKeySHA.IsZero() {
		attKeySHA = keySHA
	}
	dev.CreatedAt, dev.UpdatedAt = now, now
	is := store.Issuance{
		Device: dev,
		Cert: &store.Cert{
			V: store.RecordVersion, SHA256: store.HashCert(cert), Serial: serial, DeviceID: devID,
			KeySHA256: keySHA, NotBefore: cert.NotBefore, NotAfter: cert.NotAfter, Profile: profile.Name,
			Protocol: "acme", AttestationID: attID, Attested: true, DER: cert.Raw,
		},
		Attestation: &store.Attestation{
			V: store.RecordVersion, ID: attID, DeviceID: devID, Format: res.Format,
			KeySHA256: attKeySHA, Facts: adm.facts, VerifiedAt: validated.UTC(),
		},
		Audit: &store.AuditEvent{
			V: store.RecordVersion, Time: now, Actor: "device:" + devID, Action: "enroll.acme",
			Subject: devID, Result: "ok", Source: req.ip,
			Reason: fmt.Sprintf("issued serial %s, profile %s, attestation %s, account %s", serial, profile.Name, res.Format, req.account.ID),
		},
	}
	if err := s.store.RecordIssuance(context.WithoutCancel(ctx), is); err != nil {
		// The certificate exists but is not bound; it is never handed
		// out, and authentication refuses unbound certificates.
		s.log.Error("record issuance failed; certificate discarded", "device", devID, "serial", serial, "err", err)
		return nil, internalErr(err, "recording the issuance failed")
	}
	s.metrics.IssuanceLatency("acme", s.now().Sub(start))
	s.metrics.Enrollment("acme", res.Format, "ok")
	s.log.Info("device certificate issued", "device", devID, "serial", serial, "profile", profile.Name,
		"format", res.Format, "source", req.ip)
	return cert, nil
}

func platform(res *attest.Result) string {
	if p := res.Facts["platform"]; p != "" {
		return p
	}
	switch res.Format {
	case policy.FormatApple:
		return "apple"
	case policy.FormatAndroidKey:
		return "android"
	}
	return ""
}

func aliases(res *attest.Result) map[string]string {
	if len(res.Identifiers) == 0 {
		return nil
	}
	m := make(map[string]string, len(res.Identifiers))
	for k, v := range res.Identifiers {
		if v != "" {
			m[k] = v
		}
	}
	return m
}

// handleCert serves the chain as application/pem-certificate-chain
// (RFC 8555 §7.4.2): the leaf then the issuing CA, without the root.
func (s *Server) handleCert(w http.ResponseWriter, req *request) *Problem {
	o, p := s.lookup(req, 'o', "certificate")
	if p != nil {
		return p
	}
	chain := o.chain
	s.orders.mu.Unlock()
	if len(chain) == 0 {
		return notFound("certificate")
	}
	var buf bytes.Buffer
	for _, c := range chain {
		_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	w.Header().Set("Content-Type", "application/pem-certificate-chain")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes())
	return nil
}
