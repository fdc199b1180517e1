package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"hardbound/enroll/devbind"
	"hardbound/radius/eapclient"
	"hardbound/store"
)

// TestE2EConsoleInChromium drives the admin console in headless Chromium
// against a running server: a wrong token is refused; an admin signs in
// from the keyboard, finds a device, quarantines it with a reason, sees its
// next authentication (a real EAP-TLS conversation) rejected with the
// reason on the device page; a form posted without the CSRF token is
// refused; signing out ends the session.
//
// With HARDBOUND_SCREENSHOTS=DIR it first runs a minute of mixed traffic,
// so the overview has charts, and writes a PNG of each page into DIR
// (make screenshots writes docs/screenshots).
func TestE2EConsoleInChromium(t *testing.T) {
	t.Parallel()
	requireTools(t, "chromium")
	chromium, _ := exec.LookPath("chromium")
	shots := os.Getenv("HARDBOUND_SCREENSHOTS")

	in := startE2E(t, nil)
	nas := in.nasClient(t, "", nil)
	target := in.bind(t, devbind.Request{DeviceID: "LAPTOP-0042", Posture: store.ComplianceCompliant,
		Aliases: map[string]string{"serial": "C02ZK1ABMD6T"}})
	others := []*devbind.Device{
		in.bind(t, devbind.Request{DeviceID: "LAPTOP-0007", Posture: store.ComplianceCompliant}),
		in.bind(t, devbind.Request{DeviceID: "PHONE-0311", Posture: store.ComplianceCompliant}),
	}
	stale := in.bind(t, devbind.Request{DeviceID: "LAPTOP-0099", Posture: store.ComplianceNoncompliant})
	in.mustAccept(t, nas, target.Certificate)

	adminTok := strings.TrimSpace(in.cliOK(t, "token", "create", "alice", "--scope", "admin", "--expires", "1d"))

	if shots != "" {
		if err := os.MkdirAll(shots, 0o755); err != nil {
			t.Fatal(err)
		}
		traffic(t, in, nas, 65*time.Second, append(others, target), stale)
		in.mustAccept(t, nas, target.Certificate)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	actx, acancel := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.Flag("disable-dev-shm-usage", true),
		// The admin listener's certificate is from the server's own CA.
		chromedp.Flag("ignore-certificate-errors", true), chromedp.WindowSize(1280, 900))...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()
	base := "https://" + in.Addr("admin")
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(bctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	location := func() string {
		t.Helper()
		l, err := chromedp.Run(bctx, chromedp.Location())
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimPrefix(l, base)
	}
	shot := func(name string) {
		t.Helper()
		if shots == "" {
			return
		}
		png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(shots, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// A wrong token is refused, and audited.
	do("open the console", chromedp.Navigate(base+"/ui/"), chromedp.WaitVisible(chromedp.ID("token")))
	if l := location(); l != "/ui/login" {
		t.Fatalf("/ui/ without a session went to %s", l)
	}
	shot("login")
	do("wrong token", chromedp.SendKeys(chromedp.ID("token"), "hb_not-a-token"), chromedp.Click(chromedp.ID("signin")),
		chromedp.WaitVisible(chromedp.ID("error")))
	if e := text("#error"); !strings.Contains(e, "not a valid token") {
		t.Fatalf("wrong token: %q", e)
	}
	if in.countAudit(t, "console.login", "console", "denied", "wrong_token") != 1 {
		t.Fatalf("the refused sign-in is not audited:\n%s", in.auditDump(t, 5))
	}

	// Sign in from the keyboard: the token field has focus, Enter submits.
	do("sign in", chromedp.SendKeys(chromedp.ID("token"), adminTok+"\r"), chromedp.WaitVisible(chromedp.ID("auth-rate")))
	if w := text("#who"); !strings.Contains(w, "alice") || !strings.Contains(w, "admin") {
		t.Fatalf("signed in as %q", w)
	}
	shot("overview")

	// Find the device by its serial.
	do("devices", chromedp.Click(chromedp.CSS(`nav a[href="/ui/devices"]`)), chromedp.WaitVisible(chromedp.ID("devices")))
	if d := text("#devices"); !strings.Contains(d, "LAPTOP-0042") || !strings.Contains(d, "PHONE-0311") {
		t.Fatalf("device list: %q", d)
	}
	shot("devices")
	do("find", chromedp.SendKeys(chromedp.ID("q"), "C02ZK1ABMD6T"), chromedp.Click(chromedp.ID("find")),
		chromedp.WaitVisible(chromedp.ID("device-status")))
	if id, st := text("#device-id"), text("#device-status"); id != "LAPTOP-0042" || st != "active" {
		t.Fatalf("found %q (%s)", id, st)
	}

	// Quarantine it, with a reason and the confirmation.
	do("quarantine", chromedp.Click(chromedp.ID("quarantine")), chromedp.WaitVisible(chromedp.ID("note")),
		chromedp.SendKeys(chromedp.ID("note"), "reported stolen, ticket 4711"), chromedp.Click(chromedp.ID("confirm")))
	shot("confirm")
	do("confirm", chromedp.Click(chromedp.ID("do")), chromedp.WaitVisible(chromedp.ID("done")))
	if st := text("#device-status"); st != "quarantined" {
		t.Fatalf("after quarantine the page shows %q", st)
	}
	if d := in.device(t, "LAPTOP-0042"); d.Status != store.DeviceQuarantined {
		t.Fatalf("the API says %s", d.Status)
	}
	if in.countAudit(t, "console.quarantine", "LAPTOP-0042", "ok", "reported stolen, ticket 4711") != 1 ||
		in.countAudit(t, "device.quarantine", "LAPTOP-0042", "ok", "") != 1 {
		t.Fatalf("the quarantine and its reason are not audited:\n%s", in.auditDump(t, 5))
	}

	// Its next authentication is rejected, and the page says why.
	in.mustReject(t, nas, target.Certificate, "LAPTOP-0042", "device_quarantined")
	do("reload", chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("auths")))
	auths := text("#auths")
	if first, _, _ := strings.Cut(strings.TrimSpace(strings.SplitN(auths, "\n", 2)[1]), "\n"); !strings.Contains(first, "reject") || !strings.Contains(first, "device_quarantined") {
		t.Fatalf("the newest authentication on the device page is %q; table:\n%s", first, auths)
	}
	shot("device")

	// A form posted without the CSRF token is refused and changes nothing.
	if _, err := chromedp.Run(bctx, chromedp.Evaluate[bool](`(() => {
		const f = document.createElement("form");
		f.method = "post"; f.action = "/ui/devices/LAPTOP-0042/release";
		for (const [k, v] of [["note", "forged"], ["confirm", "yes"]]) {
			const i = document.createElement("input"); i.name = k; i.value = v; f.appendChild(i);
		}
		document.body.appendChild(f); f.submit(); return true;
	})()`)); err != nil {
		t.Fatal(err)
	}
	do("csrf refusal", chromedp.WaitVisible(chromedp.ID("error")))
	if e := text("#error"); !strings.Contains(e, "anti-forgery") {
		t.Fatalf("post without CSRF: %q", e)
	}
	if d := in.device(t, "LAPTOP-0042"); d.Status != store.DeviceQuarantined {
		t.Fatalf("a forged form released the device")
	}
	if in.countAudit(t, "console.request", "POST /ui/devices/LAPTOP-0042/release", "denied", "csrf") != 1 {
		t.Fatalf("the refused form is not audited:\n%s", in.auditDump(t, 5))
	}

	// The other pages.
	for _, p := range []struct{ nav, wait, name string }{
		{"/ui/certs", "certlist", "certs"},
		{"/ui/sessions", "sessions", "sessions"},
		{"/ui/audit", "audit", "audit"},
		{"/ui/nas", "nas", "nas"},
	} {
		do(p.name, chromedp.Click(chromedp.CSS(`nav a[href="`+p.nav+`"]`)), chromedp.WaitVisible(chromedp.ID(p.wait)))
		if p.name == "audit" {
			do("verify", chromedp.Click(chromedp.ID("verify")), chromedp.WaitVisible(chromedp.CSS("#verify-result[data-fresh]")))
			if v := text("#verify-result"); !strings.Contains(v, "Chain OK") {
				t.Fatalf("verify: %q", v)
			}
		}
		shot(p.name)
	}
	if n := text("#nas"); !strings.Contains(n, "127.0.0.0/8") {
		t.Fatalf("NAS clients page: %q", n)
	}
	if shots != "" {
		do("phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile), chromedp.Navigate(base+"/ui/overview"),
			chromedp.WaitVisible(chromedp.ID("auth-rate")))
		shot("overview-phone")
		do("desktop", chromedp.EmulateViewport(1280, 900))
	}

	// Sign out: the session ends.
	do("sign out", chromedp.Click(chromedp.ID("signout")), chromedp.WaitVisible(chromedp.ID("notice")))
	do("after sign-out", chromedp.Navigate(base+"/ui/devices/LAPTOP-0042"), chromedp.WaitVisible(chromedp.ID("token")))
	if l := location(); !strings.HasPrefix(l, "/ui/login") {
		t.Fatalf("after sign-out a device page went to %s", l)
	}
}

// traffic authenticates the devices of ok (accepts) and bad (rejects) in
// turn for d, so the overview's charts have a minute of history; halfway
// it revokes a certificate so that a second reject reason appears.
func traffic(t *testing.T, in *instance, nas *eapclient.Client, d time.Duration, ok []*devbind.Device, bad *devbind.Device) {
	t.Helper()
	start := time.Now()
	revoked := false
	for i := 0; time.Since(start) < d; i++ {
		dev := ok[i%len(ok)]
		if i%4 == 3 {
			dev = bad
		}
		in.authenticate(t, nas, dev.Certificate)
		if !revoked && time.Since(start) > d/2 {
			in.cliOK(t, "cert", "revoke", ok[0].Binding.Serial, "--reason", "keyCompromise")
			revoked = true
		}
		time.Sleep(time.Duration(50+(i%7)*40) * time.Millisecond)
	}
}
