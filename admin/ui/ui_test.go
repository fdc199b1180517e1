package ui_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"hardbound/admin"
	"hardbound/admin/metrics"
	"hardbound/admin/token"
	"hardbound/admin/ui"
	"hardbound/enroll/ca/catest"
	"hardbound/enroll/devbind"
	"hardbound/posture"
	"hardbound/store"
	"hardbound/store/badger/badgertest"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type env struct {
	st     store.Store
	srv    *httptest.Server
	tokens *token.Set
	clk    *clock
	admin  string
	read   string
	enroll string
	dev    *devbind.Device
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	c := catest.New(t, t.TempDir())
	st := badgertest.Memory(t)
	svc, err := posture.New(st, nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := devbind.Bind(ctx, c, st, time.Now(), devbind.Request{DeviceID: "dev-1"})
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Now()}
	set := token.NewSet(nil)
	e := &env{st: st, tokens: set, clk: clk, dev: d}
	for _, x := range []struct {
		v  *string
		n  string
		sc token.Scope
	}{{&e.admin, "ops", token.Admin}, {&e.read, "viewer", token.Read}, {&e.enroll, "tpm", token.Enroll}} {
		if *x.v, _, err = set.Create(x.n, x.sc, time.Time{}, clk.now()); err != nil {
			t.Fatal(err)
		}
	}
	reg := metrics.New()
	h := reg.NewHistory(10*time.Second, time.Hour, ui.Families...)
	reg.RADIUS().Reject("quarantined")
	h.Sample(clk.now().Add(-20 * time.Second))
	reg.RADIUS().AuthDuration("accept", time.Millisecond)
	h.Sample(clk.now())
	con, err := ui.New(ui.Deps{Store: st, Standing: svc, Tokens: set, Metrics: h, CA: c.Issuing(), Inventory: &admin.Inventory{Store: st},
		Clients: []ui.NASClient{{Name: "sw1", CIDR: "127.0.0.1/32", RequireMessageAuthenticator: true}}},
		ui.Options{IdleTimeout: 15 * time.Minute, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(ui.Prefix, con)
	e.srv = httptest.NewTLSServer(mux)
	t.Cleanup(e.srv.Close)
	return e
}

// browser is a client with a cookie jar that does not follow redirects.
type browser struct {
	t  *testing.T
	e  *env
	hc *http.Client
}

func (e *env) browser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	hc := e.srv.Client()
	hc.Jar = jar
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &browser{t: t, e: e, hc: hc}
}

func (b *browser) get(path string) (int, string, http.Header) {
	b.t.Helper()
	resp, err := b.hc.Get(b.e.srv.URL + path)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

func (b *browser) post(path string, form url.Values, hdr ...string) (int, string, http.Header) {
	b.t.Helper()
	req, _ := http.NewRequest("POST", b.e.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, body string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no csrf field in:\n%s", body)
	}
	return m[1]
}

// signIn signs in with tok and returns the session's CSRF token.
func (b *browser) signIn(tok string) (int, string) {
	b.t.Helper()
	_, body, _ := b.get("/ui/login")
	code, body, hdr := b.post("/ui/login", url.Values{"csrf": {csrfOf(b.t, body)}, "token": {tok}, "next": {"/ui/overview"}})
	if code != http.StatusSeeOther {
		return code, body
	}
	if hdr.Get("Location") != "/ui/overview" {
		b.t.Fatalf("sign-in redirected to %q", hdr.Get("Location"))
	}
	_, body, _ = b.get("/ui/overview")
	return code, csrfOf(b.t, body)
}

func (e *env) lastAudit(t *testing.T) *store.AuditEvent {
	t.Helper()
	evs, err := e.st.TailAudit(context.Background(), 1)
	if err != nil || len(evs) != 1 {
		t.Fatal(err)
	}
	return evs[0]
}

func TestSignInCookieAndPages(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.browser(t)
	if code, _, hdr := b.get("/ui/devices"); code != http.StatusSeeOther || !strings.HasPrefix(hdr.Get("Location"), "/ui/login") {
		t.Fatalf("a page without a session: HTTP %d to %q", code, hdr.Get("Location"))
	}
	_, body, _ := b.get("/ui/login")
	code, _, hdr := b.post("/ui/login", url.Values{"csrf": {csrfOf(t, body)}, "token": {e.read}})
	if code != http.StatusSeeOther {
		t.Fatalf("sign-in: HTTP %d", code)
	}
	ck := hdr.Values("Set-Cookie")
	var sess string
	for _, c := range ck {
		if strings.HasPrefix(c, "hb_session=") {
			sess = c
		}
	}
	for _, want := range []string{"HttpOnly", "Secure", "SameSite=Strict", "Path=/ui/"} {
		if !strings.Contains(sess, want) {
			t.Errorf("session cookie %q lacks %s", sess, want)
		}
	}
	if ev := e.lastAudit(t); ev.Action != "console.login" || ev.Actor != "admin:viewer" || ev.Result != "ok" {
		t.Errorf("sign-in audit %+v", ev)
	}
	pages := []struct{ path, want string }{
		{"/ui/overview", "Authentications per second"},
		{"/ui/devices", "dev-1"},
		{"/ui/devices?status=active&platform=apple", "No device matches"},
		{"/ui/devices/dev-1", e.dev.Binding.Serial},
		{"/ui/certs", e.dev.Binding.Serial},
		{"/ui/sessions", "No session"},
		{"/ui/audit?action=console", "console.login"},
		{"/ui/nas", "127.0.0.1/32"},
	}
	for _, p := range pages {
		code, body, hdr := b.get(p.path)
		if code != 200 || !strings.Contains(body, p.want) {
			t.Errorf("%s: HTTP %d, lacks %q", p.path, code, p.want)
		}
		if csp := hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("%s: CSP %q", p.path, csp)
		}
		if strings.Contains(body, "Quarantine…") {
			t.Errorf("%s: a read session is offered an action", p.path)
		}
	}
	if code, _, hdr := b.get("/ui/devices?q=" + e.dev.ID); code != http.StatusSeeOther || hdr.Get("Location") != "/ui/devices/dev-1" {
		t.Errorf("search by id: HTTP %d to %q", code, hdr.Get("Location"))
	}
	if code, body, _ := b.get("/ui/devices?q=nope"); code != 404 || !strings.Contains(body, "No device has") {
		t.Errorf("search miss: HTTP %d", code)
	}
	if code, _, _ := b.get("/ui/static/app.css"); code != 200 {
		t.Errorf("static: HTTP %d", code)
	}
}

func TestScopeCSRFAndActions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	// A read session sees the confirmation page refused and its POST too.
	rb := e.browser(t)
	_, rcsrf := rb.signIn(e.read)
	if code, _, _ := rb.get("/ui/devices/dev-1/quarantine"); code != 403 {
		t.Errorf("read: confirm page HTTP %d, want 403", code)
	}
	code, _, _ := rb.post("/ui/devices/dev-1/quarantine", url.Values{"csrf": {rcsrf}, "note": {"x"}, "confirm": {"yes"}})
	if ev := e.lastAudit(t); code != 403 || ev.Reason != "scope" || ev.Actor != "admin:viewer" {
		t.Errorf("read: quarantine HTTP %d, audit %+v", code, ev)
	}

	ab := e.browser(t)
	_, csrf := ab.signIn(e.admin)
	// Without (or with a wrong) CSRF token, and from another origin, a change is refused.
	for _, tc := range []struct {
		name string
		form url.Values
		hdr  []string
	}{
		{"none", url.Values{"note": {"x"}, "confirm": {"yes"}}, nil},
		{"wrong", url.Values{"csrf": {"forged"}, "note": {"x"}, "confirm": {"yes"}}, nil},
		{"cross-origin", url.Values{"csrf": {csrf}, "note": {"x"}, "confirm": {"yes"}}, []string{"Origin", "https://evil.example"}},
	} {
		code, body, _ := ab.post("/ui/devices/dev-1/quarantine", tc.form, tc.hdr...)
		if ev := e.lastAudit(t); code != 403 || !strings.Contains(body, "refused") || ev.Reason != "csrf" || ev.Actor != "admin:ops" {
			t.Errorf("csrf %s: HTTP %d, audit %+v", tc.name, code, ev)
		}
	}
	if d, _ := e.st.GetDevice(context.Background(), "dev-1"); d.Status != store.DeviceActive {
		t.Fatalf("a refused request changed the device: %s", d.Status)
	}
	// Without a reason or the confirmation, nothing happens either.
	if code, body, _ := ab.post("/ui/devices/dev-1/quarantine", url.Values{"csrf": {csrf}, "confirm": {"yes"}}); code != 400 || !strings.Contains(body, "say why") {
		t.Errorf("no reason: HTTP %d", code)
	}
	if code, _, _ := ab.post("/ui/devices/dev-1/quarantine", url.Values{"csrf": {csrf}, "note": {"lost"}}); code != 400 {
		t.Errorf("no confirmation: HTTP %d", code)
	}
	code, _, hdr := ab.post("/ui/devices/dev-1/quarantine", url.Values{"csrf": {csrf}, "note": {"reported stolen"}, "confirm": {"yes"}})
	if code != http.StatusSeeOther || !strings.Contains(hdr.Get("Location"), "done=quarantine") {
		t.Fatalf("quarantine: HTTP %d", code)
	}
	if d, _ := e.st.GetDevice(context.Background(), "dev-1"); d.Status != store.DeviceQuarantined {
		t.Fatalf("after quarantine the device is %s", d.Status)
	}
	if ev := e.lastAudit(t); ev.Action != "console.quarantine" || ev.Reason != "reported stolen" || ev.Actor != "admin:ops" {
		t.Errorf("reason event %+v", ev)
	}
	_, body, _ := ab.get("/ui/devices/dev-1")
	if !strings.Contains(body, "device.quarantine") || !strings.Contains(body, "Release…") {
		t.Errorf("device page after quarantine lacks the history or the release action")
	}
	// Revoke a certificate with an RFC 5280 reason.
	serial := e.dev.Binding.Serial
	code, _, _ = ab.post("/ui/certs/"+serial+"/revoke", url.Values{"csrf": {csrf}, "note": {"key left the TPM"}, "confirm": {"yes"}, "crl_reason": {"keyCompromise"}})
	if code != http.StatusSeeOther {
		t.Fatalf("cert revoke: HTTP %d", code)
	}
	c, _ := e.st.GetCertBySerial(context.Background(), serial)
	if c.Revoked == nil || c.Revoked.Reason != 1 || c.Revoked.Actor != "admin:ops" {
		t.Errorf("revocation %+v", c.Revoked)
	}
	// Verify the chain from the audit page.
	if code, body, _ := ab.post("/ui/audit/verify", url.Values{"csrf": {csrf}}); code != 200 || !strings.Contains(body, "Chain OK") {
		t.Errorf("verify: HTTP %d", code)
	}
	if _, body, _ := ab.get("/ui/overview"); !strings.Contains(body, `<span class="ok">OK</span>`) {
		t.Errorf("the overview does not show the verified chain")
	}
	// Sign out: the session is gone.
	if code, _, _ := ab.post("/ui/logout", url.Values{"csrf": {csrf}}); code != 200 {
		t.Errorf("sign out: HTTP %d", code)
	}
	if code, _, _ := ab.get("/ui/overview"); code != http.StatusSeeOther {
		t.Errorf("after sign-out: HTTP %d", code)
	}
}

func TestRefusedSignInsAndSessionEnds(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.browser(t)
	if code, body := b.signIn("hb_wrong"); code != 401 || !strings.Contains(body, "not a valid token") {
		t.Errorf("wrong token: HTTP %d", code)
	}
	if ev := e.lastAudit(t); ev.Action != "console.login" || ev.Reason != "wrong_token" || ev.Result != "denied" {
		t.Errorf("wrong token audit %+v", ev)
	}
	if code, _ := b.signIn(e.enroll); code != 403 {
		t.Errorf("enroll token: HTTP %d", code)
	}
	if ev := e.lastAudit(t); ev.Reason != "scope" || ev.Actor != "admin:tpm" {
		t.Errorf("enroll audit %+v", ev)
	}
	// A sign-in form posted without its login cookie (another site's form) is refused.
	nb := e.browser(t)
	if code, _, _ := nb.post("/ui/login", url.Values{"csrf": {"x"}, "token": {e.admin}}); code != 403 {
		t.Errorf("login without the login cookie: HTTP %d", code)
	}

	if code, _ := b.signIn(e.admin); code != http.StatusSeeOther {
		t.Fatalf("admin sign-in: HTTP %d", code)
	}
	e.clk.add(14 * time.Minute)
	if code, _, _ := b.get("/ui/overview"); code != 200 {
		t.Fatalf("within the idle timeout: HTTP %d", code)
	}
	e.clk.add(14 * time.Minute) // 28 min since sign-in, 14 since last use
	if code, _, _ := b.get("/ui/overview"); code != 200 {
		t.Fatalf("the idle timeout is not sliding: HTTP %d", code)
	}
	e.clk.add(16 * time.Minute)
	if code, _, _ := b.get("/ui/overview"); code != http.StatusSeeOther {
		t.Errorf("idle past the timeout: HTTP %d, want a redirect to sign in", code)
	}
	// Revoking the token ends its session.
	b.signIn(e.admin)
	if _, err := e.tokens.Revoke("ops", e.clk.now()); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := b.get("/ui/overview"); code != http.StatusSeeOther {
		t.Errorf("revoked token's session: HTTP %d", code)
	}
}

func TestInventoryImportDryRunThenImport(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rb := e.browser(t)
	rb.signIn(e.read)
	if code, _, _ := rb.get("/ui/inventory"); code != 403 {
		t.Errorf("read session: inventory page HTTP %d, want 403", code)
	}
	b := e.browser(t)
	_, csrf := b.signIn(e.admin)
	if _, body, _ := b.get("/ui/overview"); !strings.Contains(body, `href="/ui/inventory"`) {
		t.Error("no inventory link for an admin")
	}
	csv := "id,platform,serial,profile\nMAC-1,macos,C02AAA,default\nPC-2,windows,,default\nbad,,,\n"
	code, body, _ := b.post("/ui/inventory", url.Values{"csrf": {csrf}, "text": {csv}, "format": {"auto"}, "dry_run": {"1"}})
	if code != 200 || !strings.Contains(body, "Dry run: nothing was written") || !strings.Contains(body, "2 would be added") || !strings.Contains(body, "1 refused") {
		t.Fatalf("dry run: HTTP %d\n%s", code, body)
	}
	if _, err := e.st.GetDevice(context.Background(), "MAC-1"); err == nil {
		t.Fatal("a dry run wrote a device")
	}
	code, body, _ = b.post("/ui/inventory", url.Values{"csrf": {csrf}, "text": {csv}, "format": {"csv"}})
	if code != 200 || !strings.Contains(body, "Imported") || !strings.Contains(body, "2 added") {
		t.Fatalf("import: HTTP %d\n%s", code, body)
	}
	if d, err := e.st.GetDevice(context.Background(), "MAC-1"); err != nil || d.Platform != "macos" {
		t.Fatalf("after import: %+v, %v", d, err)
	}
	if ev := e.lastAudit(t); ev.Action != "inventory.import" || ev.Actor != "admin:ops" || !strings.Contains(ev.Reason, "2 added") {
		t.Errorf("import audit %+v", ev)
	}
	if code, _, _ := b.post("/ui/inventory", url.Values{"text": {csv}}); code != 403 {
		t.Errorf("import without CSRF: HTTP %d", code)
	}
}
