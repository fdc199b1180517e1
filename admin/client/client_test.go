package client_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hardbound/admin"
	"hardbound/admin/client"
	"hardbound/admin/client/table"
	"hardbound/admin/token"
	"hardbound/enroll/ca/catest"
	"hardbound/enroll/devbind"
	"hardbound/enroll/scep"
	"hardbound/posture"
	"hardbound/radius/radsec"
	"hardbound/store"
	"hardbound/store/auditexport"
	"hardbound/store/badger/badgertest"
	"hardbound/store/inventory"
)

// server is the real admin handler over a real store and posture service,
// behind TLS, with every optional dependency the client's calls reach.
type server struct {
	ctx    context.Context
	st     store.Store
	c      *client.Client
	dev    *devbind.Device
	signer *auditexport.Signer
	set    client.Settings
}

func newServer(t *testing.T) *server {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	ca := catest.New(t, filepath.Join(dir, "ca"))
	st := badgertest.Memory(t)
	svc, err := posture.New(st, nil)
	if err != nil {
		t.Fatal(err)
	}
	dev, err := devbind.Bind(ctx, ca, st, time.Now(), devbind.Request{DeviceID: "dev-1", Posture: store.ComplianceCompliant})
	if err != nil {
		t.Fatal(err)
	}
	const value = "s3cret-token"
	tokens := token.NewSet([]token.Token{{Name: "ops", Scope: token.Admin, SHA256: token.Hash(value)}})
	minter, err := scep.NewMinter(scep.MinterConfig{Store: st, DefaultProfile: "default"})
	if err != nil {
		t.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := auditexport.NewSigner(priv)
	if err != nil {
		t.Fatal(err)
	}
	keys := auditexport.KeySet{}
	if err := keys.Add(signer.Public()); err != nil {
		t.Fatal(err)
	}
	a, err := admin.New(admin.Deps{
		Store: st, Standing: svc, Tokens: tokens, Challenges: minter,
		NAS:       &radsec.Issuer{CA: ca, Store: st},
		Inventory: &admin.Inventory{Store: st, KnownProfile: func(p string) bool { return p == "default" }},
		Audit:     auditexport.NewChain(st, keys, "hb-test"),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(a)
	t.Cleanup(srv.Close)
	set := client.Settings{Server: srv.URL + "/", TokenFile: filepath.Join(dir, "token"), CAFile: filepath.Join(dir, "server-ca.crt")}
	writeFile(t, set.TokenFile, value+"\n")
	writeFile(t, set.CAFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})))
	c, err := client.New(set)
	if err != nil {
		t.Fatal(err)
	}
	return &server{ctx: ctx, st: st, c: c, dev: dev, signer: signer, set: set}
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// result is a call's answer and error: of(call()).must(t) is the answer,
// or the end of the test.
type result[T any] struct {
	v   T
	err error
}

func of[T any](v T, err error) result[T] { return result[T]{v, err} }

func (r result[T]) must(t *testing.T) T {
	t.Helper()
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.v
}

func TestResolveTakesFlagThenEnvironmentThenTheFirstFileThatExists(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	conf := filepath.Join(home, "xdg", "hardbound")
	if err := os.MkdirAll(conf, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(conf, "token"), "x")
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	for _, tc := range []struct {
		name  string
		flags client.Settings
		env   map[string]string
		want  client.Settings
	}{
		{"defaults", client.Settings{}, nil,
			client.Settings{Server: "https://127.0.0.1:9443", TokenFile: "./data/admin.token", CAFile: "./data/ca/root.crt"}},
		{"environment", client.Settings{}, map[string]string{"HARDBOUND_SERVER": "https://a:1", "HARDBOUND_TOKEN_FILE": "/t", "HARDBOUND_CA_FILE": "/c"},
			client.Settings{Server: "https://a:1", TokenFile: "/t", CAFile: "/c"}},
		{"flags win", client.Settings{Server: "https://f:2", TokenFile: "/ft", CAFile: "/fc"}, map[string]string{"HARDBOUND_SERVER": "https://a:1", "HARDBOUND_TOKEN_FILE": "/t"},
			client.Settings{Server: "https://f:2", TokenFile: "/ft", CAFile: "/fc"}},
		{"config dir file that exists", client.Settings{}, map[string]string{"XDG_CONFIG_HOME": filepath.Join(home, "xdg")},
			client.Settings{Server: "https://127.0.0.1:9443", TokenFile: filepath.Join(conf, "token"), CAFile: "./data/ca/root.crt"}},
	} {
		if got := tc.flags.Resolve(env(tc.env)); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestNewNamesWhatIsMissing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tok, notPEM := filepath.Join(dir, "token"), filepath.Join(dir, "ca.crt")
	writeFile(t, tok, "v")
	writeFile(t, notPEM, "not a certificate")
	for _, tc := range []struct {
		s    client.Settings
		want string
	}{
		{client.Settings{TokenFile: filepath.Join(dir, "none"), CAFile: notPEM}, "set --token-file or HARDBOUND_TOKEN_FILE"},
		{client.Settings{TokenFile: tok, CAFile: filepath.Join(dir, "none")}, "set --ca-file or HARDBOUND_CA_FILE"},
		{client.Settings{TokenFile: tok, CAFile: notPEM}, "holds no PEM certificate"},
	} {
		if _, err := client.New(tc.s); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want an error with %q", tc.s, err, tc.want)
		}
	}
}

// TestRecordsThroughTheAPI: every typed call of the records reaches its
// endpoint and decodes the API's answer; an error answer is the server's
// message with the status.
func TestRecordsThroughTheAPI(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	ctx, c := s.ctx, s.c
	if _, err := devbind.Bind(ctx, catest.New(t, ""), s.st, time.Now(), devbind.Request{DeviceID: "dev-2"}); err != nil {
		t.Fatal(err)
	}

	page := of(c.Devices(ctx, client.DeviceFilter{Page: client.Page{Limit: 1}})).must(t)
	if len(page.Items) != 1 || page.Items[0].ID != "dev-1" || page.Next != "dev-1" {
		t.Fatalf("first page %+v", page)
	}
	if page = of(c.Devices(ctx, client.DeviceFilter{Page: client.Page{After: page.Next}})).must(t); len(page.Items) != 1 || page.Items[0].ID != "dev-2" {
		t.Fatalf("second page %+v", page)
	}
	if page = of(c.Devices(ctx, client.DeviceFilter{Compliance: "compliant"})).must(t); len(page.Items) != 1 || page.Items[0].ID != "dev-1" {
		t.Fatalf("compliant %+v", page)
	}
	d := of(c.Device(ctx, "dev-1")).must(t)
	if d.Device.ID != "dev-1" || len(d.Certs) != 1 || d.Certs[0].Serial != s.dev.Binding.Serial {
		t.Fatalf("device %+v", d)
	}
	if as := of(c.DeviceAttestations(ctx, "dev-1")).must(t); len(as) != 1 || as[0].CertSerial != s.dev.Binding.Serial {
		t.Fatalf("attestations %+v", as)
	}
	if da := of(c.DeviceWithAttestations(ctx, "dev-1")).must(t); da.Device.ID != "dev-1" || len(da.Certs) != 1 ||
		len(da.Attestations) != 1 || da.Attestations[0].CertSerial != s.dev.Binding.Serial {
		t.Fatalf("device with attestations %+v", da)
	}
	if _, err := c.DeviceWithAttestations(ctx, "ghost"); err == nil || !strings.Contains(err.Error(), `device "ghost"`) {
		t.Fatalf("an unknown device with attestations: %v", err)
	}
	if q := of(c.Quarantine(ctx, "dev-1")).must(t); q.Status != store.DeviceQuarantined {
		t.Fatalf("quarantine %+v", q)
	}
	if r := of(c.Release(ctx, "dev-1")).must(t); r.Status != store.DeviceActive {
		t.Fatalf("release %+v", r)
	}
	if p := of(c.SetPosture(ctx, "dev-1", store.ComplianceNoncompliant)).must(t); p.Posture.State != store.ComplianceNoncompliant {
		t.Fatalf("posture %+v", p)
	}
	certs := of(c.Certs(ctx, client.CertFilter{Device: "dev-2"})).must(t)
	if len(certs.Items) != 1 || certs.Items[0].DeviceID != "dev-2" {
		t.Fatalf("certs %+v", certs)
	}
	// The serial as a person types it: 0x and upper case.
	rc := of(c.RevokeCert(ctx, "0x"+strings.ToUpper(certs.Items[0].Serial), "keyCompromise")).must(t)
	if rc.Revoked == nil || rc.Revoked.Reason != 1 {
		t.Fatalf("revoke cert %+v", rc)
	}
	if revoked := of(c.Certs(ctx, client.CertFilter{Revoked: true})).must(t); len(revoked.Items) != 1 {
		t.Fatalf("revoked certs %+v", revoked)
	}
	rd := of(c.RevokeDevice(ctx, "dev-1", "cessationOfOperation")).must(t)
	if rd.Device.Status != store.DeviceRevoked || len(rd.Certs) != 1 || rd.Certs[0].Revoked == nil {
		t.Fatalf("revoke device %+v", rd)
	}
	if ss := of(c.Sessions(ctx, client.SessionFilter{All: true})).must(t); len(ss.Items) != 0 {
		t.Fatalf("sessions %+v", ss)
	}
	ch := of(c.IssueChallenge(ctx, admin.ChallengeRequest{DeviceID: "dev-2", TTL: "5m"})).must(t)
	if ch.Challenge == "" || ch.DeviceID != "dev-2" || time.Until(ch.ExpiresAt) > 5*time.Minute {
		t.Fatalf("challenge %+v", ch)
	}
	evs := of(c.TailAudit(ctx, 50)).must(t)
	var actions []string
	for _, ev := range evs.Items {
		actions = append(actions, ev.Action)
	}
	for _, want := range []string{"device.quarantine", "device.release", "cert.revoke", "device.revoke"} {
		if !strings.Contains(strings.Join(actions, " "), want) {
			t.Errorf("audit %v lacks %s", actions, want)
		}
	}

	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"unknown device", second(c.Device(ctx, "ghost")), `server: not found: device "ghost" (HTTP 404)`},
		{"unknown certificate", second(c.RevokeCert(ctx, "abcdef", "")), `not found: certificate "abcdef"`},
		{"unknown reason", second(c.RevokeDevice(ctx, "dev-2", "bored")), `unknown revocation reason "bored"`},
	} {
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, tc.err, tc.want)
		}
	}
}

func second[T any](_ T, err error) error { return err }

// TestAnswersPrintAsTheServerSentThem: the CLI's --json output of a
// standing change is the typed answer encoded again, which must be the
// server's own bytes.
func TestAnswersPrintAsTheServerSentThem(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	for _, path := range []string{"/api/v1/devices/dev-1/quarantine", "/api/v1/devices/dev-1/release", "/api/v1/devices/dev-1/revoke"} {
		var raw json.RawMessage
		if err := s.c.Do(s.ctx, "POST", path, nil, &raw); err != nil {
			t.Fatal(err)
		}
		var typed any = new(admin.Device)
		if strings.HasSuffix(path, "/revoke") {
			typed = new(admin.DeviceDetail)
		}
		if err := json.Unmarshal(raw, typed); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := table.Write(&out, true, typed, nil); err != nil {
			t.Fatal(err)
		}
		if out.String() != string(raw)+"\n" {
			t.Errorf("%s: printed\n%s\nserver sent\n%s", path, out.String(), raw)
		}
	}
}

// TestImportInventoryKeepsTheFileLines: an import larger than one batch
// is sent in batches and its report names the refused row by its line in
// the file, not in its batch.
func TestImportInventoryKeepsTheFileLines(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	var csv strings.Builder
	csv.WriteString("serial,platform\n")
	n := client.ImportBatch + 3
	for i := range n {
		platform := "windows"
		if i == client.ImportBatch+1 {
			platform = "amiga"
		}
		fmt.Fprintf(&csv, "SER%05d,%s\n", i, platform)
	}
	rows, err := inventory.ParseNamed(strings.NewReader(csv.String()), "devices.csv", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, dry := range []bool{true, false} {
		rep := of(s.c.ImportInventory(s.ctx, rows, dry)).must(t)
		badLine := client.ImportBatch + 3 // the header, then 0-based row ImportBatch+1
		if rep.DryRun != dry || rep.Added != n-1 || rep.Failed != 1 || len(rep.Errors) != 1 || rep.Errors[0].Line != badLine {
			t.Fatalf("dry run %t: added %d failed %d errors %+v", dry, rep.Added, rep.Failed, rep.Errors)
		}
	}
	page := of(s.c.Devices(s.ctx, client.DeviceFilter{Page: client.Page{Limit: 1000}})).must(t)
	if page.Next == "" {
		t.Fatalf("the import did not apply: %d devices", len(page.Items))
	}
	add := of(s.c.AddDevice(s.ctx, admin.InventoryRecord{Serial: "C02ADD", Platform: "macos", Owner: "alice"})).must(t)
	if add.Device.ID != "C02ADD" || add.Device.Owner != "alice" || add.Report.Added != 1 {
		t.Fatalf("add %+v", add)
	}
}

func TestTokensThroughTheAPI(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	created := of(s.c.CreateToken(s.ctx, admin.TokenRequest{Name: "grafana", Scope: "read", Expires: "90d"})).must(t)
	if created.Token == "" || created.Scope != "read" || created.ExpiresAt.IsZero() {
		t.Fatalf("create %+v", created)
	}
	list := of(s.c.Tokens(s.ctx)).must(t)
	if len(list.Items) != 2 || list.Items[0].Name != "grafana" || list.Items[1].Name != "ops" {
		t.Fatalf("list %+v", list)
	}
	if err := s.c.RevokeToken(s.ctx, "grafana"); err != nil {
		t.Fatal(err)
	}
	if err := s.c.RevokeToken(s.ctx, "grafana"); err == nil || !strings.Contains(err.Error(), `token "grafana" (HTTP 404)`) {
		t.Fatalf("second revoke: %v", err)
	}
}

// TestIssueNASWritesTheKeyItKept: the key stays here, mode 0600, and is
// the key of the certificate the server issued.
func TestIssueNASWritesTheKeyItKept(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	dir := filepath.Join(t.TempDir(), "nas")
	resp := of(s.c.IssueNAS(s.ctx, "wlc-1", []string{"wlc-1.example.org"}, dir)).must(t)
	keyPath, certPath, caPath := client.NASFiles(dir, "wlc-1")
	kp, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(kp.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprintf("%x", leaf.SerialNumber) != resp.Serial || !leaf.PublicKey.(*ecdsa.PublicKey).Equal(kp.PrivateKey.(*ecdsa.PrivateKey).Public()) {
		t.Fatalf("certificate %x for answer %+v", leaf.SerialNumber, resp)
	}
	for path, mode := range map[string]os.FileMode{keyPath: 0o600, certPath: 0o644, caPath: 0o644, dir: 0o700} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: %v %v, want mode %v", path, fi.Mode().Perm(), err, mode)
		}
	}
}

// TestVerifyAndExportAudit: verification against the server's own
// checkpoints or against those a sink received, and the export streamed
// line by line with its progress.
func TestVerifyAndExportAudit(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	for range 3 {
		if err := s.st.AppendAudit(s.ctx, &store.AuditEvent{Actor: "system", Action: "test", Subject: "x", Result: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	head := of(s.st.TailAudit(s.ctx, 1)).must(t)[0]
	cp := of(s.signer.Sign(head.Seq, head.Hash)).must(t)
	if err := s.st.PutAuditCheckpoint(s.ctx, cp); err != nil {
		t.Fatal(err)
	}
	forged := *cp
	forged.Hash[0] ^= 1
	for _, tc := range []struct {
		name    string
		full    bool
		against []store.AuditCheckpoint
		ok      bool
		from    uint64
	}{
		{"newest checkpoint", false, nil, true, head.Seq},
		{"full", true, nil, true, 1},
		{"what a sink received", false, []store.AuditCheckpoint{*cp}, true, head.Seq},
		{"a forged checkpoint", false, []store.AuditCheckpoint{forged}, false, 1},
	} {
		res := of(s.c.VerifyAudit(s.ctx, tc.full, tc.against)).must(t)
		if res.OK != tc.ok || res.FromSeq != tc.from {
			t.Errorf("%s: %+v", tc.name, res)
		}
	}

	var out bytes.Buffer
	var calls []bool
	lines := of(s.c.ExportAudit(s.ctx, client.ExportQuery{FromSeq: 2, Format: "jsonl"}, &out, func(_ int, done bool) { calls = append(calls, done) })).must(t)
	var seqs []uint64
	if err := auditexport.ReadRecords(&out, func(ev *store.AuditEvent, _ *store.AuditCheckpoint) error {
		if ev != nil {
			seqs = append(seqs, ev.Seq)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if lines != len(seqs)+1 || seqs[0] != 2 || seqs[len(seqs)-1] != head.Seq || len(calls) != 1 || !calls[0] {
		t.Fatalf("%d lines, seqs %v, progress %v", lines, seqs, calls)
	}
	if _, err := s.c.ExportAudit(s.ctx, client.ExportQuery{Format: "csv"}, &out, nil); err == nil || !strings.Contains(err.Error(), "HTTP 400") {
		t.Fatalf("csv export: %v", err)
	}

	// Into a file: created 0600, truncated when it exists.
	file := filepath.Join(t.TempDir(), "audit.jsonl")
	writeFile(t, file, strings.Repeat("stale\n", 100))
	if err := os.Chmod(file, 0o644); err != nil {
		t.Fatal(err)
	}
	if n := of(s.c.ExportAuditFile(s.ctx, client.ExportQuery{FromSeq: 2, Format: "jsonl"}, file, nil)).must(t); n != lines {
		t.Fatalf("%d lines into the file, %d to a writer", n, lines)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(string(b), "\n") != lines || strings.Contains(string(b), "stale") {
		t.Fatalf("file %q", b)
	}
	fresh := filepath.Join(t.TempDir(), "new.jsonl")
	of(s.c.ExportAuditFile(s.ctx, client.ExportQuery{Format: "jsonl"}, fresh, nil)).must(t)
	if fi, err := os.Stat(fresh); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("a new export file: %v %v", fi.Mode(), err)
	}
	if _, err := s.c.ExportAuditFile(s.ctx, client.ExportQuery{Format: "jsonl"}, filepath.Join(t.TempDir(), "absent", "x.jsonl"), nil); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a file in a missing directory: %v", err)
	}
}

// TestSaveTokenIsWhatNewReads: the value in a 0600 file, its directories
// made 0700, which New takes as the token.
func TestSaveTokenIsWhatNewReads(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	dir := filepath.Join(t.TempDir(), "config", "hardbound")
	path := filepath.Join(dir, "token")
	tok, err := os.ReadFile(s.set.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := client.SaveToken(path, strings.TrimSpace(string(tok))); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{path: 0o600, dir: 0o700 | os.ModeDir} {
		if fi, err := os.Stat(p); err != nil || fi.Mode() != want {
			t.Errorf("%s: %v, want %v (%v)", p, fi.Mode(), want, err)
		}
	}
	set := s.set
	set.TokenFile = path
	c := of(client.New(set)).must(t)
	if _, err := c.Tokens(s.ctx); err != nil {
		t.Fatalf("the saved token does not authenticate: %v", err)
	}
}
