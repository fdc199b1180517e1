package loadgen

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Certs says where the supplicants' certificates and the server's trust
// anchor come from. It is shared by the EAP-TLS run and the TLS baseline
// so both present the same certificates in the same handshake.
type Certs struct {
	// CA is a PEM bundle that verifies the server certificate; default
	// <Dir>/ca.crt.
	CA string
	// Cert and Key are one client certificate chain and its key (PEM).
	Cert, Key string
	// Dir, instead of Cert and Key, holds <id>.crt/<id>.key pairs and
	// ca.crt: the layout enroll/loadgen's MakeDevices writes. Each
	// conversation takes the next certificate in turn.
	Dir string
	// ServerName is the name the server certificate must carry (like
	// wpa_supplicant's domain_match); empty checks the chain only.
	ServerName string
	// TLSVersion is "1.2" or "1.3"; the handshake is pinned to it.
	TLSVersion string
}

// supplicant is one client certificate, ready for the supplicant.
type supplicant struct {
	name string
	tls  *tls.Config
}

// tlsVersion maps Certs.TLSVersion to its crypto/tls constant.
func tlsVersion(v string) (uint16, error) {
	switch v {
	case "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("tls version %q: want 1.2 or 1.3", v)
}

// load reads the trust anchor and every client certificate.
func (c Certs) load() ([]supplicant, error) {
	version, err := tlsVersion(c.TLSVersion)
	if err != nil {
		return nil, err
	}
	caPath := c.CA
	if caPath == "" && c.Dir != "" {
		caPath = filepath.Join(c.Dir, "ca.crt")
	}
	if caPath == "" {
		return nil, errors.New("a CA is required to verify the RADIUS server certificate")
	}
	pemCA, err := os.ReadFile(caPath)
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pemCA) {
		return nil, fmt.Errorf("ca: %s holds no PEM certificate", caPath)
	}
	type pair struct{ name, cert, key string }
	var pairs []pair
	switch {
	case c.Dir != "" && (c.Cert != "" || c.Key != ""):
		return nil, errors.New("use a certificate and key or a certificate directory, not both")
	case c.Dir != "":
		ents, err := os.ReadDir(c.Dir)
		if err != nil {
			return nil, fmt.Errorf("cert dir: %w", err)
		}
		for _, de := range ents {
			name, ok := strings.CutSuffix(de.Name(), ".crt")
			if !ok || name == "ca" || de.IsDir() {
				continue
			}
			pairs = append(pairs, pair{name, filepath.Join(c.Dir, de.Name()), filepath.Join(c.Dir, name+".key")})
		}
		if len(pairs) == 0 {
			return nil, fmt.Errorf("cert dir %s: no <id>.crt files", c.Dir)
		}
	case c.Cert != "" && c.Key != "":
		pairs = []pair{{filepath.Base(c.Cert), c.Cert, c.Key}}
	default:
		return nil, errors.New("client certificates are required: a certificate and key, or a certificate directory")
	}
	sups := make([]supplicant, 0, len(pairs))
	for _, p := range pairs {
		kp, err := tls.LoadX509KeyPair(p.cert, p.key)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.name, err)
		}
		sups = append(sups, supplicant{name: p.name, tls: supplicantTLS(roots, c.ServerName, version, kp)})
	}
	return sups, nil
}

// supplicantTLS is the supplicant's config for one certificate. Without a
// server name it verifies only the chain, as a supplicant configured with a
// CA certificate and no domain does.
func supplicantTLS(roots *x509.CertPool, serverName string, version uint16, kp tls.Certificate) *tls.Config {
	c := &tls.Config{
		RootCAs: roots, ServerName: serverName, MinVersion: version, MaxVersion: version,
		// GetClientCertificate rather than Certificates: the client must
		// present its cert even when the server names other CAs.
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &kp, nil },
		// Small ClientHello (no hybrid post-quantum share): what common
		// supplicants send today; eaptls.Peer defaults to the same.
		CurvePreferences: []tls.CurveID{tls.X25519, tls.CurveP256},
	}
	if serverName == "" {
		c.InsecureSkipVerify = true // replaced by the chain check below
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("server sent no certificate")
			}
			inter := x509.NewCertPool()
			for _, ic := range cs.PeerCertificates[1:] {
				inter.AddCert(ic)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
				Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			})
			return err
		}
	}
	return c
}
