package acme

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
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
	list, err := s.orders.ListACMEOrders(req.r.Context(), req.account.ID)
	if err != nil {
		s.log.Error("list acme orders failed", "account", req.account.ID, "err", err)
		return internalErr(err, "order lookup failed")
	}
	now := s.now()
	urls := make([]string, 0, len(list))
	for _, o := range list {
		if now.Before(o.ExpiresAt) {
			urls = append(urls, s.base(req.r)+"/order/"+o.ID)
		}
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

func (s *Server) orderView(base string, o *store.ACMEOrder) orderJSON {
	v := orderJSON{
		Status: o.Status, Expires: o.ExpiresAt.UTC().Format(time.RFC3339),
		Identifiers:    []Identifier{identifierOf(o)},
		Authorizations: []string{base + "/authz/" + o.ID},
		Finalize:       base + "/order/" + o.ID + "/finalize",
		Error:          decodeProblem(o.Error),
	}
	if o.Status == StatusValid {
		v.Certificate = base + "/cert/" + o.ID
	}
	return v
}

func (s *Server) challengeView(base string, o *store.ACMEOrder) challengeJSON {
	c := challengeJSON{Type: ChallengeDeviceAttest01, URL: base + "/chall/" + o.ID, Status: o.ChallStatus, Token: o.Token}
	if o.ChallStatus == StatusInvalid {
		c.Error = decodeProblem(o.Error)
	}
	if !o.ValidatedAt.IsZero() {
		c.Validated = o.ValidatedAt.UTC().Format(time.RFC3339)
	}
	return c
}

func (s *Server) authzView(base string, o *store.ACMEOrder) authzJSON {
	return authzJSON{
		Identifier: identifierOf(o), Status: o.AuthzStatus, Expires: o.ExpiresAt.UTC().Format(time.RFC3339),
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
	now := s.now().UTC()
	o := &store.ACMEOrder{
		ID: randomID(16), Account: req.account.ID, Profile: name, Named: req.r.PathValue("profile") != "",
		IdentifierType: id.Type, IdentifierValue: id.Value, DeviceID: dev,
		// 256-bit token: the draft asks for at least 128 bits.
		Token:  randomID(32),
		Status: StatusPending, AuthzStatus: StatusPending, ChallStatus: StatusPending,
		CreatedAt: now, ExpiresAt: now.Add(s.cfg.OrderTTL),
	}
	switch err := s.orders.CreateACMEOrder(context.WithoutCancel(req.r.Context()), o, s.cfg.MaxOrdersPerAccount); {
	case errors.Is(err, store.ErrLimit):
		p := problem(ProblemRateLimited, http.StatusTooManyRequests, "rate_limited",
			"the account holds %d unexpired orders, the most allowed", s.cfg.MaxOrdersPerAccount)
		p.retryAfter = s.cfg.OrderTTL
		return p
	case err != nil:
		s.log.Error("create acme order failed", "device", dev, "err", err)
		return internalErr(err, "order create failed")
	}
	base := s.base(req.r)
	w.Header().Set("Location", base+"/order/"+o.ID)
	writeJSON(w, http.StatusCreated, s.orderView(base, o))
	return nil
}

// lookup reads the order the URL names (order, authorization, challenge
// and certificate share its id) and checks that it is live and that the
// account owns it.
func (s *Server) lookup(req *request, what string) (*store.ACMEOrder, *Problem) {
	o, err := s.orders.GetACMEOrder(req.r.Context(), req.r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound(what)
	}
	if err != nil {
		s.log.Error("acme order lookup failed", "err", err)
		return nil, internalErr(err, "order lookup failed")
	}
	if !s.now().Before(o.ExpiresAt) {
		return nil, notFound(what)
	}
	req.device = o.DeviceID
	if o.Account != req.account.ID {
		return nil, unauthorized("%s belongs to another account", what)
	}
	req.format = evidenceFormat(o.Evidence)
	return o, nil
}

// orderWriteProblem maps a failed order write onto the client's answer.
func (s *Server) orderWriteProblem(what string, err error) *Problem {
	if errors.Is(err, errOrderGone) {
		return notFound(what)
	}
	s.log.Error("acme order write failed", "err", err)
	return internalErr(err, "order update failed")
}

func (s *Server) handleOrder(w http.ResponseWriter, req *request) *Problem {
	o, p := s.lookup(req, "order")
	if p != nil {
		return p
	}
	w.Header().Set("Location", s.base(req.r)+"/order/"+o.ID)
	writeJSON(w, http.StatusOK, s.orderView(s.base(req.r), o))
	return nil
}

func (s *Server) handleAuthz(w http.ResponseWriter, req *request) *Problem {
	o, p := s.lookup(req, "authorization")
	if p != nil {
		return p
	}
	if !req.postAsGet {
		var in struct {
			Status string `json:"status"`
		}
		if p := decodePayload(req.payload, &in); p != nil {
			return p
		}
		if in.Status == "deactivated" {
			var err error
			if o, err = s.updateOrder(req.r.Context(), o, func(o *store.ACMEOrder) bool {
				if o.AuthzStatus == "deactivated" || o.Status == StatusValid {
					return false
				}
				o.AuthzStatus, o.Status = "deactivated", StatusInvalid
				return true
			}); err != nil {
				return s.orderWriteProblem("authorization", err)
			}
		}
	}
	writeJSON(w, http.StatusOK, s.authzView(s.base(req.r), o))
	return nil
}

// handleChallenge validates device-attest-01 synchronously
// (docs/attestation.md §1.2): the payload {"attObj": base64url(CBOR)} is
// verified against this challenge's key authorization, the format must be
// allowed by the profile, and the attestation must prove the order's device
// identity. A failure invalidates challenge, authorization and order.
// Two nodes answering one challenge at once may both verify; the order's
// compare-and-swap lets the first result stand.
func (s *Server) handleChallenge(w http.ResponseWriter, req *request) *Problem {
	base := s.base(req.r)
	o, p := s.lookup(req, "challenge")
	if p != nil {
		return p
	}
	if req.postAsGet || o.ChallStatus != StatusPending || o.Status != StatusPending {
		w.Header().Add("Link", `<`+base+"/authz/"+o.ID+`>;rel="up"`)
		writeJSON(w, http.StatusOK, s.challengeView(base, o))
		return nil
	}
	profile, named, dev, ident := s.profiles[o.Profile], o.Named, o.DeviceID, identifierOf(o)

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

	keyAuth := o.Token + "." + req.account.Thumbprint
	res, err := s.attester.VerifyACME(req.r.Context(), attObj, keyAuth)
	var fail *Problem
	switch {
	case err != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		return serverInternal("validation interrupted") // the challenge stays pending
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

	var ev json.RawMessage
	if fail == nil {
		if ev, err = encodeEvidence(res); err != nil {
			s.log.Error("encode attestation failed", "device", dev, "err", err)
			return serverInternal("recording the attestation failed")
		}
	}
	wrote := false
	o, err = s.updateOrder(req.r.Context(), o, func(o *store.ACMEOrder) bool {
		wrote = false // fn runs again after a conflict: only its last run counts
		if o.ChallStatus != StatusPending || o.Status != StatusPending {
			return false // another node decided first: its result stands
		}
		wrote = true
		if fail != nil {
			o.ChallStatus, o.AuthzStatus, o.Status = StatusInvalid, StatusInvalid, StatusInvalid
			o.Error = encodeProblem(fail)
			return true
		}
		o.ChallStatus, o.AuthzStatus, o.Status = StatusValid, StatusValid, StatusReady
		o.Profile = profile.Name // the record's, which the gate checked
		o.ValidatedAt = s.now().UTC()
		o.Evidence = ev
		return true
	})
	if err != nil {
		return s.orderWriteProblem("challenge", err)
	}
	if wrote && fail != nil {
		return fail
	}
	if wrote {
		s.log.Info("device attestation verified", "device", dev, "format", res.Format, "profile", profile.Name, "source", req.ip)
	}
	w.Header().Add("Link", `<`+base+"/authz/"+o.ID+`>;rel="up"`)
	writeJSON(w, http.StatusOK, s.challengeView(base, o))
	return nil
}

func orderNotReady(st string) *Problem {
	return problem(ProblemOrderNotReady, http.StatusForbidden, "order_not_ready", "order is %s, not ready", st)
}

// handleFinalize checks the CSR against the attestation (docs/attestation.md
// §1.3), issues, and records the issuance durably before answering. The
// order moves ready -> processing by compare-and-swap, so of two nodes
// finalizing one order one issues; the issuance's transaction makes the
// order valid and names the certificate, so a valid order's certificate
// is always bound and downloadable, on any node, after any restart.
func (s *Server) handleFinalize(w http.ResponseWriter, req *request) *Problem {
	base := s.base(req.r)
	o, p := s.lookup(req, "order")
	if p != nil {
		return p
	}
	if o.Status != StatusReady {
		return orderNotReady(o.Status)
	}

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

	res, err := decodeEvidence(o.Evidence)
	if err != nil {
		s.log.Error("acme order attestation unreadable", "order", o.ID, "err", err)
		return serverInternal("order attestation unreadable")
	}
	won := false
	o, err = s.updateOrder(req.r.Context(), o, func(o *store.ACMEOrder) bool {
		won = false // fn runs again after a conflict: only its last run counts
		if o.Status != StatusReady {
			return false
		}
		won, o.Status = true, StatusProcessing
		return true
	})
	if err != nil {
		return s.orderWriteProblem("order", err)
	}
	if !won {
		return orderNotReady(o.Status) // another node is finalizing it
	}

	cert, p := s.issue(req, csr, res, o)
	if p != nil {
		if _, err := s.updateOrder(req.r.Context(), o, func(o *store.ACMEOrder) bool {
			if o.Status != StatusProcessing {
				return false
			}
			o.Status, o.Error = StatusInvalid, encodeProblem(p)
			return true
		}); err != nil {
			s.log.Error("acme order left processing", "order", o.ID, "err", err)
		}
		return p
	}
	w.Header().Set("Location", base+"/order/"+o.ID)
	writeJSON(w, http.StatusOK, s.orderView(base, cert))
	return nil
}

func badCSR(format string, args ...any) *Problem {
	return problem(ProblemBadCSR, http.StatusBadRequest, "bad_csr", format, args...)
}

// issue signs for the CSR and records the issuance together with order o
// (processing) made valid, which it returns.
func (s *Server) issue(req *request, csr *x509.CertificateRequest, res *attest.Result, o *store.ACMEOrder) (*store.ACMEOrder, *Problem) {
	ctx := req.r.Context()
	profile, named, ident, validated := s.profiles[o.Profile], o.Named, identifierOf(o), o.ValidatedAt
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
	fin := store.CloneACMEOrder(o)
	fin.Status, fin.Error, fin.CertSHA256, fin.CertSerial = StatusValid, nil, is.Cert.SHA256, serial
	is.Order, is.OrderPrev = fin, o.Version
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
	return fin, nil
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
// (RFC 8555 §7.4.2): the leaf then the issuing CA, without the root. The
// leaf is the binding's DER, which the order names.
func (s *Server) handleCert(w http.ResponseWriter, req *request) *Problem {
	o, p := s.lookup(req, "certificate")
	if p != nil {
		return p
	}
	if o.Status != StatusValid || o.CertSHA256.IsZero() {
		return notFound("certificate")
	}
	rec, err := s.store.GetCert(req.r.Context(), o.CertSHA256)
	if err == nil && len(rec.DER) == 0 {
		err = errors.New("the binding holds no DER")
	}
	if err != nil {
		s.log.Error("certificate of a valid order unreadable", "order", o.ID, "serial", o.CertSerial, "err", err)
		return internalErr(err, "certificate lookup failed")
	}
	var buf bytes.Buffer
	_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: rec.DER})
	_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: s.issuer.Issuing().Raw})
	w.Header().Set("Content-Type", "application/pem-certificate-chain")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes())
	return nil
}
