package eaptls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"testing"
)

// With OmitCANames the server verifies the client chain itself: the same
// certificates pass and fail as with crypto/tls's own verification, the
// Authorizer sees verified chains, and the CertificateRequest carries no CA
// names (checked on the peer side through GetClientCertificate).
func TestOmitCANames(t *testing.T) {
	f := getFixture(t)
	tests := []struct {
		name    string
		cert    *tls.Certificate
		version uint16
		ok      bool
		wantErr func(error) bool
	}{
		{name: "accept/tls12", cert: &f.client, version: tls.VersionTLS12, ok: true},
		{name: "accept/tls13", cert: &f.client, version: tls.VersionTLS13, ok: true},
		{name: "reject/foreign_ca", cert: &f.foreign, version: tls.VersionTLS13, wantErr: func(err error) bool {
			var ua x509.UnknownAuthorityError
			return errors.As(err, &ua)
		}},
		{name: "reject/expired", cert: &f.expired, version: tls.VersionTLS12, wantErr: func(err error) bool {
			var inv x509.CertificateInvalidError
			return errors.As(err, &inv) && inv.Reason == x509.Expired
		}},
		{name: "reject/server_auth_eku", cert: &f.srvEKU, version: tls.VersionTLS13, wantErr: func(err error) bool {
			var inv x509.CertificateInvalidError
			return errors.As(err, &inv) && inv.Reason == x509.IncompatibleUsage
		}},
		{name: "reject/no_cert", version: tls.VersionTLS13, wantErr: func(err error) bool { return err != nil }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := f.newServer(t, func(c *ServerConfig) { c.OmitCANames = true })
			ptls := f.peerTLS(tc.cert, tc.version)
			var sawCAs = -1
			if tc.cert != nil {
				cert := *tc.cert
				ptls.Certificates = nil
				ptls.GetClientCertificate = func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
					sawCAs = len(cri.AcceptableCAs)
					return &cert, nil
				}
			}
			peer := NewPeer(context.Background(), PeerConfig{TLS: ptls, Identity: "x", MTU: 1400})
			defer peer.Close()
			var chains int
			sess := NewSession[string](context.Background(), srv, SessionOptions{MTU: 1400})
			defer sess.Close()
			c := converse(t, sess, peer, func(_ context.Context, cs tls.ConnectionState) (string, error) {
				chains = len(cs.VerifiedChains)
				return "", nil
			})
			if tc.cert != nil && sawCAs != 0 {
				t.Errorf("CertificateRequest carried %d CA names, want none", sawCAs)
			}
			if tc.ok {
				if c.res.Outcome != Success || chains == 0 {
					t.Fatalf("outcome %v err %v, verified chains %d", c.res.Outcome, c.err, chains)
				}
				smsk, _ := sess.Keys()
				pmsk, _ := peer.Keys()
				if string(smsk) != string(pmsk) || len(smsk) != 64 {
					t.Error("MSK mismatch")
				}
				return
			}
			if c.res.Outcome != Failure {
				t.Fatalf("outcome %v, want Failure", c.res.Outcome)
			}
			if chains != 0 {
				t.Error("Authorizer ran for an unverified chain")
			}
			if !tc.wantErr(c.err) {
				t.Errorf("error %v does not carry the expected x509 cause", c.err)
			}
		})
	}
}
