package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"

	"hardbound/eaptls"
	"hardbound/enroll/devbind"
	"hardbound/radius/eapclient"
	"hardbound/store"
)

// A typical authentication against `serve` (ECDSA P-256 certificates,
// Framed-MTU 1400 as eapol_test and hostapd send it) takes 4 RADIUS round
// trips under TLS 1.2 and TLS 1.3: Identity, ClientHello, client flight,
// final ACK. With send_ca_names the TLS 1.3 server flight no longer fits
// one fragment and a fifth round trip appears.
func TestRoundTrips(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		sendCANames bool
		version     uint16
		want        int
	}{
		{"tls12", false, tls.VersionTLS12, 4},
		{"tls13", false, tls.VersionTLS13, 4},
		{"tls12-ca-names", true, tls.VersionTLS12, 4},
		{"tls13-ca-names", true, tls.VersionTLS13, 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t)
			cfg.RADIUS.SendCANames = tc.sendCANames
			in := startTest(t, cfg)
			d := in.bind(t, devbind.Request{DeviceID: "rt-" + tc.name, Posture: store.ComplianceCompliant})
			c, err := eapclient.New(eapclient.Config{Server: in.Addr("radius-auth"), Secret: []byte(in.radiusSecret), FramedMTU: 1400})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			roots := x509.NewCertPool()
			roots.AddCert(in.ca.Root())
			var hint int
			peer := eaptls.NewPeer(ctx, eaptls.PeerConfig{Identity: "anonymous", MTU: 1400, TLS: &tls.Config{
				RootCAs: roots, ServerName: "localhost", MinVersion: tc.version, MaxVersion: tc.version,
				GetClientCertificate: func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
					hint = len(cri.AcceptableCAs)
					return &d.Certificate, nil
				},
			}})
			defer peer.Close()
			res, err := c.Authenticate(ctx, peer)
			if err != nil || !res.Accepted || !res.KeysMatch {
				t.Fatalf("authenticate: %v, accepted %v keys match %v", err, res.Accepted, res.KeysMatch)
			}
			if res.RoundTrips != tc.want {
				t.Errorf("%d RADIUS round trips, want %d", res.RoundTrips, tc.want)
			}
			if (hint > 0) != tc.sendCANames {
				t.Errorf("CertificateRequest carried %d CA names with send_ca_names=%v", hint, tc.sendCANames)
			}
		})
	}
}
