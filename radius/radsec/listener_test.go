package radsec_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"

	lradius "layeh.com/radius"

	"hardbound/eaptls"
	"hardbound/enroll/ca/catest"
	"hardbound/enroll/devbind"
	"hardbound/radius/eapclient"
	"hardbound/radius/packet"
	"hardbound/radius/radsec"
)

// TestGoNASAccept runs EAP-TLS over RADIUS/TLS with a NAS certificate from
// hardbound's CA, on TLS 1.2 and 1.3, to an Access-Accept with matching
// MPPE keys; Status-Server is answered on the same connection.
func TestGoNASAccept(t *testing.T) {
	e := newEnv(t, nil)
	nas := e.nasCert(t, "ap1")
	dev := e.device(t, "dev-ok", devbind.Request{})
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			tc, err := e.dial(t, nas, v)
			if err != nil {
				t.Fatal(err)
			}
			if got := tc.ConnectionState().Version; got != v {
				t.Fatalf("TLS version %s", tls.VersionName(got))
			}
			res := authenticate(t, e, tc, dev)
			if !res.Accepted || !res.KeysMatch {
				t.Fatalf("accepted %v keys match %v (%s)", res.Accepted, res.KeysMatch, res.ReplyMessage)
			}
			status := statusServer(t, tc, 77)
			if status.Code != lradius.CodeAccessAccept {
				t.Fatalf("Status-Server answered %v", status.Code)
			}
		})
	}
	if e.metrics.get("accepted/hardbound") != 2 {
		t.Fatalf("metrics %v", e.metrics.c)
	}
}

func authenticate(t *testing.T, e *env, tc *tls.Conn, dev *devbind.Device) eapclient.Result {
	t.Helper()
	c, err := eapclient.New(eapclient.Config{Stream: tc, Secret: []byte(radsec.Secret), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	peer := eaptls.NewPeer(e.ctx, eaptls.PeerConfig{TLS: &tls.Config{RootCAs: e.ca.Pool(), ServerName: "localhost",
		Certificates: []tls.Certificate{dev.Certificate}}, Identity: dev.ID})
	defer peer.Close()
	res, err := c.Authenticate(e.ctx, peer)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func statusServer(t *testing.T, tc *tls.Conn, id byte) *lradius.Packet {
	t.Helper()
	sec := packet.NewSecret([]byte(radsec.Secret))
	req, err := sec.EncodeRequest(lradius.CodeStatusServer, id, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
	defer tc.SetDeadline(time.Time{})
	if _, err := tc.Write(req); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, packet.MaxLen)
	b, err := packet.ReadStream(tc, buf, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := packet.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := sec.VerifyResponse(&p, req[4:20], packet.Policy{}); err != nil {
		t.Fatal(err)
	}
	out, err := lradius.Parse(b, []byte(radsec.Secret))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRefusedIdentities: certificates that name no NAS fail the TLS
// handshake, each for its reason.
func TestRefusedIdentities(t *testing.T) {
	e := newEnv(t, nil)
	dev := e.device(t, "dev-1", devbind.Request{})
	revoked := e.nasCert(t, "gone")
	if _, err := e.posture.RevokeCert(e.ctx, revoked.Leaf.SerialNumber.Text(16), 1, "admin:test"); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, reason string
		cert         tls.Certificate
	}{
		{"device certificate", "not_nas", dev.Certificate},
		{"revoked NAS certificate", "revoked", revoked},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := e.metrics.get("refused/" + tt.reason)
			tc, err := e.dial(t, tt.cert, 0)
			if err == nil {
				// TLS 1.3: the client learns of the alert on its first read.
				_ = tc.SetReadDeadline(time.Now().Add(5 * time.Second))
				_, err = tc.Read(make([]byte, 1))
			}
			if err == nil || errors.Is(err, errors.ErrUnsupported) {
				t.Fatalf("connection not refused: %v", err)
			}
			eventually(t, "refusal counted", func() bool { return e.metrics.get("refused/"+tt.reason) == before+1 })
		})
	}
}

// TestExternalCA: a NAS with a certificate of a configured external CA is
// known by its SAN; another certificate of that CA is not.
func TestExternalCA(t *testing.T) {
	other := catest.New(t, filepath.Join(t.TempDir(), "ext"))
	e := newEnv(t, func(c *radsec.Config) {
		c.External = []radsec.ExternalClient{{Name: "wlc", Roots: other.Pool(), DNS: "wlc.example.org"}}
	})
	issue := func(dns string) tls.Certificate {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := other.Sign(e.ctx, &x509.Certificate{Subject: pkix.Name{CommonName: dns}, DNSNames: []string{dns},
			NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, key.Public())
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{leaf.Raw, other.Issuing().Raw}, PrivateKey: key, Leaf: leaf}
	}
	tc, err := e.dial(t, issue("wlc.example.org"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if p := statusServer(t, tc, 1); p.Code != lradius.CodeAccessAccept {
		t.Fatalf("Status-Server: %v", p.Code)
	}
	if e.ls.Connected("wlc") != 1 || e.metrics.get("accepted/external") != 1 {
		t.Fatalf("external NAS not identified: %v", e.metrics.c)
	}
	if c, err := e.dial(t, issue("ap.example.org"), 0); err == nil {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _ = c.Read(make([]byte, 1))
	}
	eventually(t, "unmatched SAN refused", func() bool { return e.metrics.get("refused/unknown_ca") == 1 })
}

// TestNASCertIsNoDeviceCredential: a NAS certificate is a binding of
// hardbound's CA with clientAuth, so an EAP-TLS supplicant could present
// it; posture must refuse it whatever the default profile admits.
func TestNASCertIsNoDeviceCredential(t *testing.T) {
	e := newEnv(t, nil)
	nas := e.nasCert(t, "ap-x")
	if v := e.posture.Decide(e.ctx, nas.Leaf); v.Allow {
		t.Fatalf("posture admits a NAS certificate as a device: %+v", v)
	}
}

// TestHandshakeTimeout: a peer that connects and never completes the TLS
// handshake is closed after HandshakeTimeout.
func TestHandshakeTimeout(t *testing.T) {
	e := newEnv(t, func(c *radsec.Config) { c.HandshakeTimeout = 300 * time.Millisecond })
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte{0x16, 0x03}); err != nil { // half a record header
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("not closed: %v", err)
	}
	eventually(t, "handshake timeout counted", func() bool { return e.metrics.get("refused/handshake") == 1 })
}
