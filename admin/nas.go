package admin

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"

	"hardbound/enroll/ca"
	"hardbound/radius/radsec"
)

// NASIssuer issues NAS certificates for RADIUS/TLS (*radsec.Issuer): each
// is recorded as a binding of the NAS, so the RADIUS/TLS listener knows
// the NAS without configuration and `cert revoke` applies to it.
type NASIssuer interface {
	Issue(ctx context.Context, req radsec.IssueRequest) (*radsec.Issued, error)
}

// NASRequest is POST /api/v1/nas: the NAS's name, optional DNS names, and
// its CSR (base64 standard DER PKCS#10): the key never leaves the NAS.
type NASRequest struct {
	Name string   `json:"name"`
	DNS  []string `json:"dns,omitempty"`
	CSR  string   `json:"csr"`
}

// NASResponse is the issued certificate: Certificate is the PEM chain the
// NAS presents (leaf, issuing CA), CABundle the PEM CAs it trusts for
// hardbound's server certificate.
type NASResponse struct {
	Name        string `json:"name"`
	Serial      string `json:"serial"`
	NotAfter    string `json:"not_after"`
	Certificate string `json:"certificate"`
	CABundle    string `json:"ca_bundle"`
}

func (s *Server) issueNAS(w http.ResponseWriter, r *http.Request) {
	const action = "nas.issue"
	if s.deps.NAS == nil {
		writeErr(w, http.StatusNotImplemented, "NAS certificates are not enabled")
		return
	}
	var req NASRequest
	err := decode(r, &req, false)
	var csr *x509.CertificateRequest
	if err == nil {
		csr, err = parseCSR(req.CSR)
	}
	if err != nil {
		s.refuse(w, r, action, req.Name, err)
		return
	}
	is, err := s.deps.NAS.Issue(r.Context(), radsec.IssueRequest{Name: req.Name, DNS: req.DNS, CSR: csr, Actor: actorOf(r.Context())})
	if errors.Is(err, radsec.ErrBadRequest) || errors.Is(err, ca.ErrCSRPolicy) {
		err = fmt.Errorf("%w: %w", errBadRequest, err)
	}
	if err != nil {
		s.refuse(w, r, action, req.Name, err)
		return
	}
	pemOf := func(cs []*x509.Certificate) string {
		var b []byte
		for _, c := range cs {
			b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
		}
		return string(b)
	}
	writeJSON(w, http.StatusCreated, NASResponse{Name: req.Name, Serial: is.Cert.SerialNumber.Text(16),
		NotAfter: is.Cert.NotAfter.UTC().Format("2006-01-02T15:04:05Z"), Certificate: pemOf(is.Chain), CABundle: pemOf(is.CAs)})
}
