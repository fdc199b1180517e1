package admin

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net/http"
	"time"

	"hardbound/enroll/attest"
	"hardbound/enroll/ca"
	"hardbound/enroll/devbind"
	"hardbound/enroll/scep"
	"hardbound/store"
)

func (s *Server) mintChallenge(w http.ResponseWriter, r *http.Request) {
	if s.deps.Challenges == nil {
		writeErr(w, http.StatusNotImplemented, "SCEP challenges are not enabled")
		return
	}
	var req ChallengeRequest
	if err := decode(r, &req, false); err != nil {
		s.fail(w, r, err)
		return
	}
	if req.DeviceID == "" {
		s.fail(w, r, fmt.Errorf("%w: device_id is required", errBadRequest))
		return
	}
	const action = "scep.challenge"
	ttl, err := parseTTL(req.TTL)
	if err != nil {
		s.refuse(w, r, action, req.DeviceID, err)
		return
	}
	v, c, err := s.deps.Challenges.Mint(r.Context(), scep.MintRequest{DeviceID: req.DeviceID, KeySHA256: req.KeySHA256,
		Profile: req.Profile, TTL: ttl, Source: scep.SourceAdmin, Actor: actorOf(r.Context())})
	if err != nil {
		s.refuse(w, r, action, req.DeviceID, err)
		return
	}
	writeJSON(w, http.StatusCreated, challengeOf(v, c))
}

func (s *Server) activate(w http.ResponseWriter, r *http.Request) {
	const action = "attestation.activate"
	if s.deps.TPM == nil {
		writeErr(w, http.StatusNotImplemented, action+" is not enabled")
		return
	}
	var req attest.TPMActivationRequest
	if err := decode(r, &req, false); err != nil {
		s.refuse(w, r, action, "", err)
		return
	}
	act, err := s.deps.TPM.ActivateTPM(r.Context(), req)
	if err != nil {
		s.refuse(w, r, action, "", err)
		return
	}
	writeJSON(w, http.StatusCreated, act)
}

func (s *Server) attest(w http.ResponseWriter, r *http.Request) {
	const action = "attestation.verify"
	if s.deps.TPM == nil {
		writeErr(w, http.StatusNotImplemented, action+" is not enabled")
		return
	}
	var req AttestRequest
	err := decode(r, &req, false)
	var ttl time.Duration
	if err == nil {
		ttl, err = parseTTL(req.TTL)
	}
	if err != nil {
		s.refuse(w, r, action, "", err)
		return
	}
	v, c, _, err := s.deps.TPM.MintFromTPM(r.Context(), req.Evidence, req.Nonce, scep.MintRequest{DeviceID: req.DeviceID,
		Profile: req.Profile, TTL: ttl, Actor: actorOf(r.Context())})
	if err != nil {
		s.refuse(w, r, action, "", err)
		return
	}
	writeJSON(w, http.StatusCreated, challengeOf(v, c))
}

func (s *Server) devEnroll(w http.ResponseWriter, r *http.Request) {
	if s.deps.DevEnroll == nil {
		writeErr(w, http.StatusForbidden, "test enrollment is only available in --dev mode")
		return
	}
	const action = "dev.enroll"
	var req DevEnrollRequest
	err := decode(r, &req, false)
	var csr *x509.CertificateRequest
	if err == nil {
		csr, err = parseCSR(req.CSR)
	}
	if err != nil {
		s.refuse(w, r, action, "", err)
		return
	}
	var validity time.Duration
	if req.Validity != "" {
		if validity, err = time.ParseDuration(req.Validity); err != nil || validity <= 0 {
			s.refuse(w, r, action, req.DeviceID, fmt.Errorf("%w: validity %q is not a positive Go duration", errBadRequest, req.Validity))
			return
		}
	}
	d, err := s.deps.DevEnroll.Enroll(r.Context(), csr, devbind.Request{DeviceID: req.DeviceID, Format: req.Format,
		Profile: req.Profile, Posture: store.Compliance(req.Posture), Validity: validity, NoBinding: req.Unbound,
		Aliases: req.Aliases})
	if err != nil {
		s.refuse(w, r, action, "", err)
		return
	}
	var chain []byte
	for _, der := range d.Certificate.Certificate {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	// An unbound device has no binding record; its serial is the leaf's.
	serial := ""
	if d.Binding != nil {
		serial = d.Binding.Serial
	} else if d.Leaf != nil {
		serial = ca.SerialString(d.Leaf.SerialNumber)
	}
	writeJSON(w, http.StatusCreated, DevEnrollResponse{DeviceID: d.ID, Serial: serial, Certificate: string(chain)})
}

// parseCSR reads DevEnrollRequest.CSR, base64 (standard) DER PKCS#10.
func parseCSR(b64 string) (*x509.CertificateRequest, error) {
	der, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("%w: csr: %v", errBadRequest, err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("%w: csr: %v", errBadRequest, err)
	}
	return csr, nil
}
