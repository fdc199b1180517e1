package node

import (
	"crypto/x509"
	"net/http"

	"hardbound/enroll/akca"
	"hardbound/enroll/attest"
	"hardbound/enroll/limit"
)

// akcaPrefix is where the TPM attestation CA is mounted on the enrollment
// HTTPS listener: the step CLI's --attestation-ca-url is
// https://<enroll>/tpm-ak.
const akcaPrefix = "/tpm-ak"

// trustOwnAKs makes the issuing CA an AK certificate root when hardbound
// certifies AKs itself (enroll.certify_tpm_aks with EK roots configured).
// It must run before the verifier is built from roots.
func (in *Node) trustOwnAKs(roots *attest.Roots) bool {
	if roots.TPM == nil {
		// There is no universal TPM root: without the vendors' EK roots
		// no TPM evidence verifies.
		in.log.Info("enroll.tpm_roots is not set: TPM devices cannot enroll (ACME tpm, TPM-attested SCEP)")
		return false
	}
	if !in.cfg.Enroll.CertifyTPMAKs {
		return false
	}
	if roots.TPMAK == nil {
		roots.TPMAK = x509.NewCertPool()
	}
	roots.TPMAK.AddCert(in.ca.Issuing())
	return true
}

// newAKCA is the attestation CA handler, with its prefix stripped.
func (in *Node) newAKCA(v *attest.Verifier, lim *limit.Limiter) (http.Handler, error) {
	s, err := akca.New(akca.Config{EK: v, Signer: in.ca, Audit: in.auditor, Limiter: lim, Logger: in.log})
	if err != nil {
		return nil, err
	}
	in.log.Info("TPM attestation CA enabled: AKs of TPMs whose EK chains to enroll.tpm_roots are certified by the issuing CA", "path", akcaPrefix)
	return http.StripPrefix(akcaPrefix, s.Handler()), nil
}
