package est_test

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/smallstep/pkcs7"

	"hardbound/enroll/attest"
	"hardbound/enroll/ca"
	"hardbound/enroll/est"
	"hardbound/enroll/scep"
	"hardbound/store"
)

const ekHash = "9d4c0f8a7b6e5d4c3b2a19080706050403020100f0e0d0c0b0a0908070605040"

// recorder is est.Metrics counting in memory.
type recorder struct {
	mu sync.Mutex
	n  map[string]int
}

func newRecorder() *recorder { return &recorder{n: map[string]int{}} }

func (r *recorder) add(k string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n[k]++
}
func (r *recorder) Request(op, result string) { r.add("request/" + op + "/" + result) }
func (r *recorder) Refusal(reason string)     { r.add("refusal/" + reason) }
func (r *recorder) Enrollment(p, format, res string) {
	r.add("enrollment/" + p + "/" + format + "/" + res)
}
func (r *recorder) get(k string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n[k]
}

// checkAttestedNames reads the SAN back in Go and with openssl.
func checkAttestedNames(t *testing.T, cert *x509.Certificate, deviceID, hwSerial string) {
	t.Helper()
	var san *attest.SANNames
	for _, ext := range cert.Extensions {
		if ext.Id.Equal(asn1.ObjectIdentifier{2, 5, 29, 17}) {
			var err error
			if san, err = attest.ParseSAN(ext.Value); err != nil {
				t.Fatal(err)
			}
		}
	}
	if san == nil || len(san.PermanentIdentifiers) != 1 || san.PermanentIdentifiers[0].Value != deviceID {
		t.Fatalf("permanentIdentifier: %+v", san)
	}
	if len(san.HardwareModules) != 1 || !san.HardwareModules[0].Type.Equal(ca.HWTypeTPM20) || string(san.HardwareModules[0].Serial) != hwSerial {
		t.Fatalf("hardwareModuleName: %+v", san.HardwareModules)
	}
	openssl := need(t, "openssl")
	p := filepath.Join(t.TempDir(), "c.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, nil, openssl, "x509", "-in", p, "-noout", "-text")
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	if !strings.Contains(s, "othername: Permanent Identifier::") ||
		!(strings.Contains(s, "othername: Hardware Module Name::") || strings.Contains(s, "othername: 1.3.6.1.5.5.7.8.4::")) {
		t.Fatalf("openssl x509 -text does not show both otherNames:\n%s", s)
	}
}

// TestCSRAttrs: openssl parses every profile's csrattrs answer; the
// attestation requirement (id-aa-evidence) appears exactly for the
// profiles that refuse unattested keys, challengePassword exactly for the
// one that requires the channel binding.
func TestCSRAttrs(t *testing.T) {
	t.Parallel()
	openssl := need(t, "openssl")
	e := newEnv(t)
	c := e.client(t, nil)
	cases := []struct {
		path                 string
		attestation, binding bool
	}{
		{"csrattrs", false, false}, // the default profile
		{"default/csrattrs", false, false},
		{"attested/csrattrs", true, false},
		{"bound/csrattrs", false, true},
	}
	for _, tc := range cases {
		t.Run(tc.path, func(t *testing.T) {
			res, err := c.http.Get(e.srv.URL + "/.well-known/est/" + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != 200 || res.Header.Get("Content-Type") != "application/csrattrs" {
				t.Fatalf("%d %q", res.StatusCode, res.Header.Get("Content-Type"))
			}
			der, err := run(t, body, openssl, "base64", "-d")
			if err != nil {
				t.Fatal(err)
			}
			out, err := run(t, der, openssl, "asn1parse", "-inform", "DER")
			if err != nil {
				t.Fatalf("openssl asn1parse: %v", err)
			}
			s := string(out)
			for _, want := range []string{"ecdsa-with-SHA256", "id-ecPublicKey", "prime256v1"} {
				if !strings.Contains(s, want) {
					t.Errorf("no %s in\n%s", want, s)
				}
			}
			if got := strings.Contains(s, est.OIDEvidence.String()); got != tc.attestation {
				t.Errorf("id-aa-evidence announced: %v, want %v\n%s", got, tc.attestation, s)
			}
			if got := strings.Contains(s, "challengePassword"); got != tc.binding {
				t.Errorf("challengePassword announced: %v, want %v\n%s", got, tc.binding, s)
			}
		})
	}
	if n := e.metrics.get("request/csrattrs/ok"); n != len(cases) {
		t.Errorf("csrattrs requests counted %d, want %d", n, len(cases))
	}
}

// csrWithPassword is a PKCS#10 request with a challengePassword attribute
// (PrintableString), which crypto/x509 cannot write. The ASN.1 is built
// with encoding/asn1 and signed with ECDSA over SHA-256.
func csrWithPassword(t testing.TB, key *ecdsa.PrivateKey, password string) []byte {
	t.Helper()
	spki, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	subject, _ := asn1.Marshal(pkix.Name{CommonName: "x"}.ToRDNSequence())
	type attr struct {
		Type   asn1.ObjectIdentifier
		Values []asn1.RawValue `asn1:"set"`
	}
	var attrs []asn1.RawValue
	if password != "" {
		pw, _ := asn1.MarshalWithParams(password, "printable")
		a, _ := asn1.Marshal(attr{Type: asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 7}, Values: []asn1.RawValue{{FullBytes: pw}}})
		attrs = append(attrs, asn1.RawValue{FullBytes: a})
	}
	tbs, err := asn1.Marshal(struct {
		Version    int
		Subject    asn1.RawValue
		PublicKey  asn1.RawValue
		Attributes []asn1.RawValue `asn1:"set,tag:0"`
	}{0, asn1.RawValue{FullBytes: subject}, asn1.RawValue{FullBytes: spki}, attrs})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(tbs)
	sig, err := ecdsa.SignASN1(rand.Reader, key, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	der, err := asn1.Marshal(struct {
		TBS asn1.RawValue
		Alg pkix.AlgorithmIdentifier
		Sig asn1.BitString
	}{asn1.RawValue{FullBytes: tbs}, pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}},
		asn1.BitString{Bytes: sig, BitLength: 8 * len(sig)}})
	if err != nil {
		t.Fatal(err)
	}
	if csr, err := x509.ParseCertificateRequest(der); err != nil || csr.CheckSignature() != nil {
		t.Fatalf("test CSR: %v", err)
	}
	return []byte(base64.StdEncoding.EncodeToString(der))
}

// boundConn is one TLS connection of the Go client and its channel
// binding, computed here independently of the server: tls-unique on TLS
// 1.2 (RFC 5929), tls-exporter on TLS 1.3 (RFC 9266).
type boundConn struct {
	conn    *tls.Conn
	binding string
}

func (e *env) dialBound(t *testing.T, version uint16, cert *tls.Certificate) *boundConn {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(e.ca.Root())
	tc := &tls.Config{RootCAs: pool, MinVersion: version, MaxVersion: version, ServerName: "127.0.0.1"}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	conn, err := tls.Dial("tcp", e.srv.Listener.Addr().String(), tc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	cs := conn.ConnectionState()
	var raw []byte
	if version == tls.VersionTLS13 {
		if raw, err = cs.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32); err != nil {
			t.Fatal(err)
		}
	} else {
		raw = cs.TLSUnique
	}
	if len(raw) == 0 {
		t.Fatal("no channel binding on the client side")
	}
	return &boundConn{conn: conn, binding: base64.StdEncoding.EncodeToString(raw)}
}

// post sends one EST request on the connection.
func (b *boundConn) post(t *testing.T, e *env, op, user, pass string, body []byte) (int, *x509.Certificate, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/.well-known/est/"+op, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/pkcs10")
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	if err := req.Write(b.conn); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(b.conn), req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		return res.StatusCode, nil, string(out)
	}
	der, err := base64.StdEncoding.DecodeString(string(out))
	if err != nil {
		t.Fatal(err)
	}
	p7, err := pkcs7.Parse(der)
	if err != nil || len(p7.Certificates) != 1 {
		t.Fatalf("certs-only: %v", err)
	}
	return 200, p7.Certificates[0], ""
}

// TestChannelBinding: on a profile that requires it, a CSR carrying the
// tls-unique (TLS 1.2) or tls-exporter (TLS 1.3) of its own session
// enrolls and renews; a missing binding, one from another session, or the
// binding of the other TLS version is refused with 401 and audited. On a
// profile that does not require it, a challengePassword is still checked.
func TestChannelBinding(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	versions := []struct {
		name string
		v    uint16
	}{{"TLS1.2", tls.VersionTLS12}, {"TLS1.3", tls.VersionTLS13}}
	for i, ver := range versions {
		dev := "bound" + ver.name
		e.inventory(t, dev, "bound")
		other := e.dialBound(t, versions[1-i].v, nil) // another session, the other version
		cases := []struct {
			name, password, reason string
		}{
			{"missing", "", "channel_binding_missing"},
			{"another session", other.binding, "channel_binding_mismatch"},
			{"not base64", "not a binding", "channel_binding_mismatch"},
		}
		for _, tc := range cases {
			ch := e.challenge(t, scep.MintRequest{DeviceID: dev, Profile: "bound"})
			bc := e.dialBound(t, ver.v, nil)
			code, _, msg := bc.post(t, e, "bound/simpleenroll", dev, ch, csrWithPassword(t, key(t), tc.password))
			if code != http.StatusUnauthorized || !strings.Contains(msg, tc.reason) {
				t.Errorf("%s %s: %d %s, want 401 %s", ver.name, tc.name, code, msg, tc.reason)
			}
		}
		ch := e.challenge(t, scep.MintRequest{DeviceID: dev, Profile: "bound"})
		bc := e.dialBound(t, ver.v, nil)
		k := key(t)
		code, cert, msg := bc.post(t, e, "bound/simpleenroll", dev, ch, csrWithPassword(t, k, bc.binding))
		if code != 200 {
			t.Fatalf("%s: bound simpleenroll: %d %s", ver.name, code, msg)
		}
		// Renewal over mutual TLS, bound to that session.
		rc := e.dialBound(t, ver.v, &tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: k})
		if code, _, msg := rc.post(t, e, "simplereenroll", "", "", csrWithPassword(t, key(t), other.binding)); code != 401 {
			t.Fatalf("%s: renewal with another session's binding: %d %s", ver.name, code, msg)
		}
		rc = e.dialBound(t, ver.v, &tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: k})
		if code, _, msg := rc.post(t, e, "simplereenroll", "", "", csrWithPassword(t, key(t), rc.binding)); code != 200 {
			t.Fatalf("%s: bound renewal: %d %s", ver.name, code, msg)
		}
	}
	// Not required, but present and wrong: refused all the same.
	e.inventory(t, "plain1")
	bc := e.dialBound(t, tls.VersionTLS13, nil)
	ch := e.challenge(t, scep.MintRequest{DeviceID: "plain1"})
	if code, _, msg := bc.post(t, e, "simpleenroll", "plain1", ch, csrWithPassword(t, key(t), "c29tZXRoaW5nIGVsc2U=")); code != 401 ||
		!strings.Contains(msg, "channel_binding_mismatch") {
		t.Fatalf("wrong binding on a profile without the requirement: %d %s", code, msg)
	}

	audited := map[string]int{}
	err := e.st.ScanAudit(e.ctx, 1, func(ev *store.AuditEvent) error {
		if strings.HasPrefix(ev.Action, "enroll.est.") && ev.Result == "reject" {
			audited[strings.SplitN(ev.Reason, ":", 2)[0]]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if audited["channel_binding_missing"] != 2 || audited["channel_binding_mismatch"] != 7 {
		t.Errorf("audited refusals %v", audited)
	}
	if n := e.metrics.get("refusal/channel_binding_mismatch"); n != 7 {
		t.Errorf("channel_binding_mismatch refusals counted %d, want 7", n)
	}
	if n := e.metrics.get("request/simplereenroll/ok"); n != 2 {
		t.Errorf("simplereenroll ok counted %d, want 2", n)
	}
}
