package est_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/smallstep/pkcs7"

	"hardbound/enroll/ca"
	"hardbound/enroll/ca/catest"
	"hardbound/enroll/est"
	"hardbound/enroll/gate"
	"hardbound/enroll/scep"
	"hardbound/posture"
	"hardbound/store"
	"hardbound/store/badger/badgertest"
	"hardbound/store/config"
	"hardbound/store/policy"
)

type env struct {
	ctx      context.Context
	ca       *ca.CA
	st       store.Store
	pos      *posture.Service
	minter   *scep.Minter
	srv      *httptest.Server
	dir      string
	rootFile string
	metrics  *recorder
}

var profiles = []est.Profile{
	{Name: policy.DefaultProfile, Formats: []string{policy.FormatTPM, policy.FormatNone}, RevokeOnRenew: true},
	{Name: "attested", Formats: []string{policy.FormatTPM}, RequireAttestation: true},
	{Name: "bound", Formats: []string{policy.FormatTPM, policy.FormatNone}, RequireChannelBinding: true},
}

func newEnv(t *testing.T) *env {
	t.Helper()
	c := catest.New(t, "", ca.WithNames(map[string]ca.Names{"attested": {PermanentIdentifier: true, HardwareModuleName: true}}))
	st := badgertest.Memory(t)
	pos, err := posture.New(st, []posture.Profile{
		{Name: policy.DefaultProfile, Formats: []string{policy.FormatTPM, policy.FormatNone}},
		{Name: "attested", Formats: []string{policy.FormatTPM}},
		{Name: "bound", Formats: []string{policy.FormatTPM, policy.FormatNone}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pos.Close)
	g, err := gate.New(st, []gate.Profile{{Name: policy.DefaultProfile, RequireInventory: true}, {Name: "attested", RequireInventory: true},
		{Name: "bound", RequireInventory: true}}, policy.DefaultProfile)
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	s, err := est.New(est.Config{Profiles: profiles, Gate: g, Metrics: rec}, c, st, pos)
	if err != nil {
		t.Fatal(err)
	}
	m, err := scep.NewMinter(scep.MinterConfig{Store: st, Profiles: []string{policy.DefaultProfile, "attested", "bound"}, DefaultProfile: policy.DefaultProfile})
	if err != nil {
		t.Fatal(err)
	}
	kp, err := c.IssueServerTLS(t.Context(), []string{"localhost"}, []net.IP{net.ParseIP("127.0.0.1")}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/.well-known/est/", s.Handler())
	srv := httptest.NewUnstartedServer(mux)
	// As the enrollment listener: client certificates requested, not
	// required; simplereenroll verifies them itself.
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{kp}, ClientAuth: tls.RequestClientCert, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	root := filepath.Join(dir, "root.pem")
	writePEM(t, root, "CERTIFICATE", c.Root().Raw)
	return &env{ctx: context.Background(), ca: c, st: st, pos: pos, minter: m, srv: srv, dir: dir, rootFile: root, metrics: rec}
}

func writePEM(t *testing.T, path, typ string, der ...[]byte) {
	t.Helper()
	var b []byte
	for _, d := range der {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: d})...)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// inventory puts a device in inventory, as `hardbound device add` or an
// import does.
func (e *env) inventory(t *testing.T, id string, profile ...string) {
	t.Helper()
	now := time.Now().UTC()
	p := ""
	if len(profile) > 0 {
		p = profile[0]
	}
	if err := e.st.PutDevice(e.ctx, &store.Device{V: store.RecordVersion, ID: id, Status: store.DeviceActive, Source: "admin", Profile: p,
		Posture: store.Posture{State: store.ComplianceUnknown}, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
}

func (e *env) challenge(t *testing.T, req scep.MintRequest) string {
	t.Helper()
	v, _, err := e.minter.Mint(e.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func need(t *testing.T, bin string) string {
	t.Helper()
	p, err := exec.LookPath(bin)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required in CI", bin)
		}
		t.Skipf("%s not installed", bin)
	}
	return p
}

func run(t *testing.T, stdin []byte, name string, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Logf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return out, err
}

// TestCurlOpenSSL is RFC 7030's own client: curl for the HTTPS exchanges
// and openssl for the CSRs and for reading the base64 PKCS#7 answers.
func TestCurlOpenSSL(t *testing.T) {
	t.Parallel()
	curl, openssl := need(t, "curl"), need(t, "openssl")
	e := newEnv(t)
	base := e.srv.URL + "/.well-known/est"
	// curl -w prints the status after the body.
	get := func(t *testing.T, stdin []byte, args ...string) (int, []byte) {
		t.Helper()
		out, err := run(t, stdin, curl, append([]string{"-sS", "--cacert", e.rootFile, "-w", "\n%{http_code}"}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		i := bytes.LastIndexByte(out, '\n')
		code := 0
		for _, c := range out[i+1:] {
			code = code*10 + int(c-'0')
		}
		return code, out[:i]
	}
	printCerts := func(t *testing.T, b64 []byte) string {
		t.Helper()
		der, err := run(t, b64, openssl, "base64", "-d")
		if err != nil {
			t.Fatal(err)
		}
		out, err := run(t, der, openssl, "pkcs7", "-inform", "DER", "-print_certs")
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	csr := func(t *testing.T, name string) (keyFile string, body []byte) {
		t.Helper()
		keyFile = filepath.Join(e.dir, name+".key")
		der, err := run(t, nil, openssl, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
			"-keyout", keyFile, "-subj", "/CN="+name, "-outform", "DER")
		if err != nil {
			t.Fatal(err)
		}
		return keyFile, []byte(base64.StdEncoding.EncodeToString(der))
	}

	// cacerts
	code, body := get(t, nil, base+"/cacerts")
	if code != 200 || !strings.Contains(printCerts(t, body), e.ca.Issuing().Subject.CommonName) {
		t.Fatalf("cacerts: %d", code)
	}
	// csrattrs: the key to make
	code, body = get(t, nil, base+"/csrattrs")
	if code != 200 {
		t.Fatalf("csrattrs: %d", code)
	}
	der, _ := base64.StdEncoding.DecodeString(string(body))
	if out, err := run(t, der, openssl, "asn1parse", "-inform", "DER"); err != nil || !strings.Contains(string(out), "prime256v1") {
		t.Fatalf("csrattrs: %s", out)
	}

	// simpleenroll with a one-time challenge
	e.inventory(t, "dev1")
	ch := e.challenge(t, scep.MintRequest{DeviceID: "dev1"})
	key1, req1 := csr(t, "dev1")
	enroll := func(t *testing.T, auth []string, csrBody []byte, op string) (int, []byte) {
		t.Helper()
		args := append([]string{"-H", "Content-Type: application/pkcs10", "--data-binary", "@-"}, auth...)
		return get(t, csrBody, append(args, base+"/"+op)...)
	}
	code, body = enroll(t, []string{"--user", "dev1:" + ch}, req1, "simpleenroll")
	if code != 200 {
		t.Fatalf("simpleenroll: %d %s", code, body)
	}
	cert1 := filepath.Join(e.dir, "dev1.pem")
	if err := os.WriteFile(cert1, []byte(printCerts(t, body)), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, _ := run(t, nil, openssl, "x509", "-in", cert1, "-noout", "-ext", "subjectAltName"); !strings.Contains(string(out), "dev1") {
		t.Fatalf("issued cert does not name dev1: %s", out)
	}

	e.inventory(t, "devp", "attested")
	refusals := []struct {
		name string
		auth []string
		op   string
		want int
	}{
		{"reused challenge", []string{"--user", "dev1:" + ch}, "simpleenroll", 401},
		{"no auth", nil, "simpleenroll", 401},
		{"wrong device for challenge", []string{"--user", "dev9:" + e.challenge(t, scep.MintRequest{DeviceID: "dev1"})}, "simpleenroll", 401},
		{"not in inventory", []string{"--user", "ghost:" + e.challenge(t, scep.MintRequest{DeviceID: "ghost"})}, "simpleenroll", 403},
		{"reenroll without client cert", nil, "simplereenroll", 401},
		{"record in another profile (gate)", []string{"--user", "devp:" + e.challenge(t, scep.MintRequest{DeviceID: "devp"})}, "simpleenroll", 403},
	}
	for _, r := range refusals {
		code, body := enroll(t, r.auth, req1, r.op)
		if code != r.want {
			t.Errorf("%s: %d %s, want %d", r.name, code, body, r.want)
		}
		if strings.Contains(r.name, "(gate)") && !bytes.Contains(body, []byte("profile_mismatch")) {
			t.Errorf("%s: %s, want profile_mismatch", r.name, body)
		}
	}
	// Channel binding (RFC 7030 §3.5): curl cannot hand its session's
	// tls-unique to openssl, so curl shows the refusals (TestChannelBinding
	// the bound enrollments): no challengePassword on a profile that
	// requires the binding, and one that is not this session's.
	e.inventory(t, "devb", "bound")
	_, plain := csr(t, "devb")
	code, body = enroll(t, []string{"--user", "devb:" + e.challenge(t, scep.MintRequest{DeviceID: "devb", Profile: "bound"})}, plain, "bound/simpleenroll")
	if code != 401 || !bytes.Contains(body, []byte("channel_binding_missing")) {
		t.Errorf("CSR without a binding on a binding profile: %d %s", code, body)
	}
	cfg := filepath.Join(e.dir, "bound.cnf")
	if err := os.WriteFile(cfg, []byte("[req]\nprompt = no\ndistinguished_name = dn\nattributes = attrs\n[dn]\nCN = devb\n"+
		"[attrs]\nchallengePassword = "+base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x5a}, 32))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wrong, err := run(t, nil, openssl, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", filepath.Join(e.dir, "devb.key"), "-config", cfg, "-outform", "DER")
	if err != nil {
		t.Fatal(err)
	}
	code, body = enroll(t, []string{"--user", "devb:" + e.challenge(t, scep.MintRequest{DeviceID: "devb", Profile: "bound"})},
		[]byte(base64.StdEncoding.EncodeToString(wrong)), "bound/simpleenroll")
	if code != 401 || !bytes.Contains(body, []byte("channel_binding_mismatch")) {
		t.Errorf("CSR with another binding: %d %s", code, body)
	}
	if code, _ := get(t, nil, base+"/serverkeygen"); code != 404 {
		t.Errorf("serverkeygen: %d, want 404", code)
	}

	// simplereenroll with the issued certificate over mutual TLS, new key
	_, req2 := csr(t, "dev1b")
	code, body = enroll(t, []string{"--cert", cert1, "--key", key1}, req2, "simplereenroll")
	if code != 200 {
		t.Fatalf("simplereenroll: %d %s", code, body)
	}
	old := mustCert(t, cert1)
	b, err := e.st.GetCert(e.ctx, store.HashCert(old))
	if err != nil || b.Revoked == nil || b.Revoked.Reason != 4 {
		t.Fatalf("old certificate not revoked as superseded: %+v %v", b, err)
	}
	// the revoked one cannot renew again
	if code, body := enroll(t, []string{"--cert", cert1, "--key", key1}, req2, "simplereenroll"); code != 403 {
		t.Fatalf("renewal with a revoked cert: %d %s", code, body)
	}
	// a quarantined device cannot renew
	cert2 := filepath.Join(e.dir, "dev1b.pem")
	if err := os.WriteFile(cert2, []byte(printCerts(t, body)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := e.pos.Quarantine(e.ctx, "dev1", "test"); err != nil {
		t.Fatal(err)
	}
	if code, body := enroll(t, []string{"--cert", cert2, "--key", filepath.Join(e.dir, "dev1b.key")}, req2, "simplereenroll"); code != 403 {
		t.Fatalf("renewal while quarantined: %d %s", code, body)
	}
}

func mustCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// client is the Go client of the tests.
type client struct {
	t    *testing.T
	e    *env
	http *http.Client
}

func (e *env) client(t *testing.T, cert *tls.Certificate) *client {
	pool := x509.NewCertPool()
	pool.AddCert(e.ca.Root())
	tc := &tls.Config{RootCAs: pool}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	return &client{t: t, e: e, http: &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}}
}

func newCSR(t testing.TB, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "x"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return []byte(base64.StdEncoding.EncodeToString(der))
}

func (c *client) post(op, user, pass string, body []byte) (int, *x509.Certificate, string) {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, c.e.srv.URL+"/.well-known/est/"+op, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/pkcs10")
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	res, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		return res.StatusCode, nil, string(b)
	}
	der, err := base64.StdEncoding.DecodeString(string(b))
	if err != nil {
		c.t.Fatal(err)
	}
	p7, err := pkcs7.Parse(der)
	if err != nil || len(p7.Certificates) != 1 {
		c.t.Fatalf("certs-only: %v", err)
	}
	return 200, p7.Certificates[0], ""
}

func key(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestAttestedEnrollAndRenewal: a challenge bound to an attested key (what
// the TPM activation flow mints) enrolls that key only, attested; renewal
// with the same key stays attested, with another key on an
// attestation-required profile is refused; a quarantined device cannot
// renew.
func TestAttestedEnrollAndRenewal(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.inventory(t, "tpm1", "attested")
	k := key(t)
	spki, _ := x509.MarshalPKIXPublicKey(k.Public())
	att := &store.Attestation{V: store.RecordVersion, ID: "att1", DeviceID: "tpm1", Format: policy.FormatTPM,
		KeySHA256: store.HashKey(spki), VerifiedAt: time.Now(), Facts: map[string]string{"ek_sha256": ekHash}}
	if err := e.st.PutAttestation(e.ctx, att); err != nil {
		t.Fatal(err)
	}
	ch := e.challenge(t, scep.MintRequest{DeviceID: "tpm1", Profile: "attested", KeySHA256: att.KeySHA256, AttestationID: att.ID,
		Source: scep.SourceAttestation})
	c := e.client(t, nil)
	if code, _, msg := c.post("attested/simpleenroll", "tpm1", ch, newCSR(t, key(t))); code != 403 || !strings.Contains(msg, "key_mismatch") {
		t.Fatalf("CSR key not the attested one: %d %s", code, msg)
	}
	code, cert, msg := c.post("attested/simpleenroll", "tpm1", ch, newCSR(t, k))
	if code != 200 {
		t.Fatalf("attested enroll: %d %s", code, msg)
	}
	b, err := e.st.GetCert(e.ctx, store.HashCert(cert))
	if err != nil || !b.Attested || b.Protocol != est.Protocol {
		t.Fatalf("binding %+v %v", b, err)
	}
	// The attested names of the profile (RFC 4043, RFC 4108), built by
	// enroll/ca as for ACME and SCEP.
	checkAttestedNames(t, cert, "tpm1", ekHash)
	tc := &tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: k}
	mc := e.client(t, tc)
	if code, _, msg := mc.post("simplereenroll", "", "", newCSR(t, key(t))); code != 403 || !strings.Contains(msg, "attestation_required") {
		t.Fatalf("renewal with an unattested new key: %d %s", code, msg)
	}
	code, renewed, msg := mc.post("simplereenroll", "", "", newCSR(t, k))
	if code != 200 {
		t.Fatalf("renewal with the attested key: %d %s", code, msg)
	}
	if b, _ := e.st.GetCert(e.ctx, store.HashCert(renewed)); b == nil || !b.Attested {
		t.Fatal("renewed binding not attested")
	}
	checkAttestedNames(t, renewed, "tpm1", ekHash)
	if _, err := e.pos.Quarantine(e.ctx, "tpm1", "test"); err != nil {
		t.Fatal(err)
	}
	if code, _, msg := mc.post("simplereenroll", "", "", newCSR(t, k)); code != 403 || !strings.Contains(msg, "device_quarantined") {
		t.Fatalf("renewal while quarantined: %d %s", code, msg)
	}
}

// newHandler is an EST handler over a fresh store, for the fuzz targets.
func newHandler(t testing.TB) http.Handler {
	c := catest.New(t, "")
	st := badgertest.Memory(t)
	pos, err := posture.New(st, []posture.Profile{{Name: policy.DefaultProfile}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := est.New(est.Config{Profiles: profiles[:1]}, c, st, pos)
	if err != nil {
		t.Fatal(err)
	}
	return s.Handler()
}

func TestFileConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name  string
		cfg   est.FileConfig
		field string
	}{
		{name: "defaults", cfg: est.DefaultFileConfig()},
		{name: "require_attestation", cfg: est.FileConfig{RequireAttestation: []string{"nope"}}, field: "enroll.est.require_attestation"},
		{name: "permanent_identifier", cfg: est.FileConfig{PermanentIdentifier: []string{"nope"}}, field: "enroll.est.permanent_identifier"},
		{name: "require_channel_binding", cfg: est.FileConfig{RequireChannelBinding: []string{"nope"}}, field: "enroll.est.require_channel_binding"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := config.MatchField(tt.cfg.Validate("enroll.est", []string{"default"}), tt.field); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestBootstrapIDevID: a manufacturer certificate (another CA, named in
// Config.Bootstrap) authenticates a first enrollment for the device in
// inventory under its serial number; unknown serials and certificates of
// untrusted CAs are refused.
func TestBootstrapIDevID(t *testing.T) {
	t.Parallel()
	maker := catest.New(t, "")
	c := catest.New(t, "")
	st := badgertest.Memory(t)
	pos, err := posture.New(st, []posture.Profile{{Name: policy.DefaultProfile, Formats: []string{policy.FormatNone}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pos.Close)
	roots := x509.NewCertPool()
	roots.AddCert(maker.Root())
	s, err := est.New(est.Config{Profiles: []est.Profile{{Name: policy.DefaultProfile, Formats: []string{policy.FormatNone}}}, Bootstrap: roots}, c, st, pos)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := c.IssueServerTLS(t.Context(), []string{"localhost"}, []net.IP{net.ParseIP("127.0.0.1")}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/.well-known/est/", s.Handler())
	srv := httptest.NewUnstartedServer(mux)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{kp}, ClientAuth: tls.RequestClientCert}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	e := &env{ctx: context.Background(), ca: c, st: st, pos: pos, srv: srv}
	e.inventory(t, "SN-0001")

	idevid := func(t *testing.T, auth *ca.CA, serial string) *tls.Certificate {
		k := key(t)
		leaf, err := auth.Issue(t.Context(), ca.IssueRequest{PublicKey: k.Public(), DeviceID: "maker-" + serial,
			Subject: pkix.Name{CommonName: "IDevID", SerialNumber: serial}})
		if err != nil {
			t.Fatal(err)
		}
		return &tls.Certificate{Certificate: [][]byte{leaf.Raw, auth.Issuing().Raw}, PrivateKey: k}
	}
	for _, tt := range []struct {
		name string
		cert *tls.Certificate
		want int
	}{
		{"trusted maker, in inventory", idevid(t, maker, "SN-0001"), 200},
		{"trusted maker, not in inventory", idevid(t, maker, "SN-9999"), 403},
		{"untrusted maker", idevid(t, catest.New(t, ""), "SN-0001"), 401},
	} {
		if code, _, msg := e.client(t, tt.cert).post("simpleenroll", "", "", newCSR(t, key(t))); code != tt.want {
			t.Errorf("%s: %d %s, want %d", tt.name, code, msg, tt.want)
		}
	}
}
