package e2e

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"hardbound/admin"
	"hardbound/cmd/hardbound/internal/node"
	"hardbound/enroll/acme/acmetest"
	"hardbound/enroll/devbind"
	"hardbound/radius/eapclient"
	"hardbound/store"
	"hardbound/store/config"
	"hardbound/store/postgres/pgtest"
)

// TestE2EPostgresAway: PostgreSQL stopped for 20 s (`pg_ctl stop -m fast`)
// under authentication load on one node with store.unavailable.grace 5s
// and the default policy, reject, then started again (docs/ha.md, "When
// the database is away"). Within the grace every conversation of a warm
// device is accepted from the caches; after it every one is rejected
// with store_unavailable; an admin write and an ACME request meanwhile get
// 503 with Retry-After. Once the database is back the node answers from
// the store again, a revocation made then is enforced, and the audit
// chain verifies and holds every decision the clients were told, the ones
// answered while the database was away marked store=unavailable and in
// their place: the chain's decisions stay in time order, so the held ones
// were appended before anything decided after the restart. It runs its
// own server, since it stops it.
func TestE2EPostgresAway(t *testing.T) {
	t.Parallel()
	cl, err := pgtest.Start()
	if err != nil {
		pgtest.Require(t, nil, err)
	}
	t.Cleanup(cl.Stop)
	const grace = 5 * time.Second
	in := startNodesWith(t, cl, 1, func(c *node.Config) {
		c.Store.Unavailable.Grace = config.Duration(grace)
	})[0]
	ctx := e2eContext(t)

	var devs []*devbind.Device
	nas := in.nasClient(t, "", nil)
	for i := range 4 {
		d := in.bind(t, devbind.Request{DeviceID: fmt.Sprintf("away-%d", i), Posture: store.ComplianceCompliant})
		in.mustAccept(t, nas, d.Certificate) // warm: its standing is cached
		devs = append(devs, d)
	}
	// A RadSec NAS identified before the outage (its identity is then
	// remembered), to reconnect during it.
	nasDir := t.TempDir()
	in.cliOK(t, "nas", "issue", "away-nas", "--out", nasDir)
	if err := in.radsecStatus(t, nasDir, "away-nas"); err != nil {
		t.Fatalf("RadSec NAS before the outage: %v", err)
	}
	late := in.bind(t, devbind.Request{DeviceID: "away-late", Posture: store.ComplianceCompliant})
	in.mustAccept(t, nas, late.Certificate)
	warmups := len(devs) + 1
	accountKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	acl, err := acmetest.New(ctx, in.httpsClient(t), "https://"+in.Addr("enroll-https")+"/acme/directory", accountKey, jose.ES256)
	if err != nil {
		t.Fatal(err)
	}

	// The load: two workers, each its own NAS client, a short pause
	// between conversations so that the chain stays small enough to read.
	type result struct {
		start, end time.Time
		accepted   bool
		err        error
	}
	var (
		mu      sync.Mutex
		results []result
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 2 {
		c := in.nasClient(t, "", func(c *eapclient.Config) { c.Timeout, c.Retries = 2*time.Second, 2 })
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
				start := time.Now()
				res, err := in.authOnce(c, devs[(w+2*i)%len(devs)].Certificate, 10*time.Second)
				mu.Lock()
				results = append(results, result{start: start, end: time.Now(), accepted: err == nil && res.Accepted, err: err})
				mu.Unlock()
			}
		})
	}
	count := func(from time.Time, accepted bool) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, r := range results {
			if r.err == nil && r.accepted == accepted && !r.start.Before(from) {
				n++
			}
		}
		return n
	}
	eventually(t, 30*time.Second, "accepts under load", func() bool { return count(time.Time{}, true) >= 10 })

	stopped := time.Now()
	if err := cl.StopFast(); err != nil {
		t.Fatal(err)
	}
	t.Logf("PostgreSQL stopped (pg_ctl stop -m fast took %v)", time.Since(stopped).Round(time.Millisecond))
	var since time.Time
	eventually(t, 5*time.Second, "the node to report the database unavailable", func() bool {
		m := in.scrape(t)
		if !strings.Contains(m, "\nhardbound_store_unavailable 1\n") {
			return false
		}
		since = metricTime(t, m, "hardbound_store_unavailable_since_seconds")
		return true
	})
	t.Logf("outage seen by the node %v after the stop began", since.Sub(stopped).Round(time.Millisecond))

	// Within the grace a NAS known from before reconnects over RadSec
	// (docs/ha.md); past it, under the default reject, it is refused.
	if err := in.radsecStatus(t, nasDir, "away-nas"); err != nil {
		t.Errorf("RadSec NAS reconnecting within the grace: %v", err)
	}
	if n := metricSum(t, in.scrape(t), "hardbound_radsec_accepted_total", `source="hardbound_cached"`); n != 1 {
		t.Errorf("hardbound_radsec_accepted_total{source=hardbound_cached} = %v, want 1", n)
	}

	// Writes fail cleanly, with a retriable answer.
	status, hdr, body := in.rawAdmin(t, http.MethodPost, "/api/v1/devices/"+devs[0].ID+"/quarantine", nil)
	if status != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" || !json.Valid(body) {
		t.Errorf("admin quarantine with the database away: HTTP %d Retry-After %q %s; want 503 with Retry-After and a JSON error",
			status, hdr.Get("Retry-After"), body)
	}
	r, err := acl.Post(ctx, acl.Dir.NewAccount, map[string]any{"termsOfServiceAgreed": true}, nil)
	if r == nil || r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
		t.Errorf("ACME newAccount with the database away: %+v, %v; want 503 with Retry-After", r, err)
	}
	// A refusal decided without the database is audited through the
	// node's hold like the RADIUS decisions (checked in the chain below).
	if status, _, _ := in.rawAdminToken(t, "wrong-token-during-the-outage", http.MethodGet, "/api/v1/devices"); status != http.StatusUnauthorized {
		t.Errorf("admin request with a wrong token, database away: HTTP %d, want 401", status)
	}

	time.Sleep(time.Until(since.Add(grace + time.Second)))
	if err := in.radsecStatus(t, nasDir, "away-nas"); err == nil {
		t.Error("RadSec NAS reconnecting past the grace (policy reject) was admitted")
	}
	time.Sleep(time.Until(stopped.Add(20 * time.Second)))
	restarted := time.Now()
	if err := cl.Restart(); err != nil {
		t.Fatal(err)
	}
	t.Logf("PostgreSQL started again after %v", restarted.Sub(stopped).Round(time.Millisecond))
	eventually(t, 30*time.Second, "accepts after the restart", func() bool { return count(restarted, true) >= 10 })
	close(stop)
	wg.Wait()

	// What the clients were told, by phase (a margin either side of the
	// grace's end: a conversation spans several round trips).
	var inGrace, inGraceRejected, afterGrace, afterGraceAccepted, accepted, failed int
	graceEnd := since.Add(grace)
	mu.Lock()
	for _, r := range results {
		switch {
		case r.err != nil:
			failed++
			if r.start.After(since) && r.end.Before(restarted) {
				t.Errorf("a conversation during the outage got no answer: %v", r.err)
			}
			continue
		case r.accepted:
			accepted++
		}
		switch {
		case r.start.After(since) && r.end.Before(graceEnd.Add(-500*time.Millisecond)):
			inGrace++
			if !r.accepted {
				inGraceRejected++
			}
		case r.start.After(graceEnd.Add(500*time.Millisecond)) && r.end.Before(restarted):
			afterGrace++
			if r.accepted {
				afterGraceAccepted++
			}
		}
	}
	mu.Unlock()
	t.Logf("%d conversations within the grace (%d rejected), %d after it (%d accepted); %d accepted in all, %d unanswered",
		inGrace, inGraceRejected, afterGrace, afterGraceAccepted, accepted, failed)
	if inGrace < 3 || inGraceRejected != 0 {
		t.Errorf("within the grace: %d conversations, %d rejected; want at least 3, all accepted", inGrace, inGraceRejected)
	}
	if afterGrace < 3 || afterGraceAccepted != 0 {
		t.Errorf("after the grace: %d conversations, %d accepted; want at least 3, all rejected", afterGrace, afterGraceAccepted)
	}

	m := in.scrape(t)
	for _, want := range []string{`hardbound_store_unavailable_answers_total{result="cached"}`, `hardbound_store_unavailable_answers_total{result="rejected"}`} {
		if metricValue(t, m, want) < 1 {
			t.Errorf("%s is 0 after the outage", want)
		}
	}
	eventually(t, 20*time.Second, "the held audit events to be appended", func() bool {
		m := in.scrape(t)
		return strings.Contains(m, "\nhardbound_store_unavailable 0\n") && strings.Contains(m, "\nhardbound_audit_held_events 0\n")
	})

	// The store is the source of truth again: a revocation is enforced.
	if err := in.api(http.MethodPost, "/api/v1/devices/"+late.ID+"/revoke", admin.RevokeRequest{Reason: "keyCompromise"}, nil); err != nil {
		t.Fatalf("revoke after the restart: %v", err)
	}
	in.mustReject(t, nas, late.Certificate, late.ID, "device_revoked")

	if out := in.cliOK(t, "audit", "verify"); !strings.Contains(out, "audit chain OK") {
		t.Fatalf("audit verify after the outage: %s", out)
	}
	// One line per transition, not one per request.
	logs := in.stderr.String()
	for _, msg := range []string{
		`level=WARN msg="database unavailable:`, `level=INFO msg="database available again"`,
		`level=WARN msg="store unavailable: answering`, `level=WARN msg="store unavailable past the grace`,
		`level=INFO msg="store available again`,
	} {
		if n := strings.Count(logs, msg); n != 1 {
			t.Errorf("%d log lines %s, want 1", n, msg)
		}
	}
	if n := strings.Count(logs, `msg="audit checkpoint failed"`); n > 1 {
		t.Errorf("%d log lines for failed audit checkpoints during one outage, want at most 1", n)
	}
	evs := in.exportAudit(t)
	var (
		oks, heldOK, heldReject int
		prev                    time.Time
		prevSeq                 uint64
		refusals                = map[string]bool{}
	)
	for _, ev := range evs {
		if ev.Seq != prevSeq+1 {
			t.Fatalf("audit export jumps from seq %d to %d", prevSeq, ev.Seq)
		}
		prevSeq = ev.Seq
		if (ev.Action == "admin.auth" || ev.Action == "enroll.acme") && !ev.Time.Before(since.Add(-time.Second)) && ev.Time.Before(restarted) {
			refusals[ev.Action+"/"+ev.Result] = true
		}
		if ev.Action != "radius.auth" {
			continue
		}
		// Decisions are recorded in the order they were made, give or
		// take two workers racing for the writer: a held event appended
		// after a later decision would be seconds out of place.
		if ev.Time.Before(prev.Add(-250 * time.Millisecond)) {
			t.Errorf("audit event %d (%s %s) at %v follows one at %v: out of order", ev.Seq, ev.Result, ev.Reason, ev.Time, prev)
		}
		if ev.Time.After(prev) {
			prev = ev.Time
		}
		held := strings.Contains(ev.Reason, " store=unavailable")
		switch {
		case ev.Result == "ok":
			oks++
			if held {
				heldOK++
			}
		case held && strings.HasPrefix(ev.Reason, "store_unavailable"):
			heldReject++
		}
		if held && (ev.Time.Before(since.Add(-time.Second)) || ev.Time.After(restarted.Add(10*time.Second))) {
			t.Errorf("audit event %d marked store=unavailable at %v, outside the outage (%v to %v)", ev.Seq, ev.Time, since, restarted)
		}
	}
	t.Logf("audit chain: %d events, %d accepts (%d answered while the database was away), %d store_unavailable rejects written",
		len(evs), oks, heldOK, heldReject)
	// Every Accept a client saw is in the chain (a conversation the
	// client gave up on may have been accepted too).
	if oks < accepted+warmups || oks > accepted+warmups+failed {
		t.Errorf("%d accepts in the chain, clients saw %d (+%d unanswered)", oks, accepted+warmups, failed)
	}
	// The admin's and ACME's refusals of the outage were held, not lost.
	for _, want := range []string{"admin.auth/denied", "enroll.acme/error"} {
		if !refusals[want] {
			t.Errorf("no %s audit event from the outage in the chain (have %v)", want, refusals)
		}
	}
	if heldOK < inGrace || heldReject < 1 {
		t.Errorf("the chain holds %d accepts and %d rejects answered while the database was away; want at least %d and 1",
			heldOK, heldReject, inGrace)
	}
}

// rawAdmin calls the admin API with the dev token and returns the answer
// whatever its status.
func (in *instance) rawAdmin(t *testing.T, method, path string, body []byte) (int, http.Header, []byte) {
	t.Helper()
	tok, err := os.ReadFile(in.adminTokenPath)
	if err != nil {
		t.Fatal(err)
	}
	return in.rawAdminRequest(t, strings.TrimSpace(string(tok)), method, path, body)
}

// rawAdminToken is rawAdmin with another bearer token and no body.
func (in *instance) rawAdminToken(t *testing.T, token, method, path string) (int, http.Header, []byte) {
	t.Helper()
	return in.rawAdminRequest(t, token, method, path, nil)
}

func (in *instance) rawAdminRequest(t *testing.T, token, method, path string, body []byte) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, "https://"+in.Addr("admin")+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := in.httpsClient(t).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, resp.Header, b.Bytes()
}

// exportAudit reads the whole chain's events through the admin export.
func (in *instance) exportAudit(t *testing.T) []*store.AuditEvent {
	t.Helper()
	status, _, body := in.rawAdmin(t, http.MethodGet, "/api/v1/audit/export", nil)
	if status != http.StatusOK {
		t.Fatalf("audit export: HTTP %d %s", status, body)
	}
	var evs []*store.AuditEvent
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var rec struct {
			Type string `json:"type"`
			store.AuditEvent
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("audit export line %q: %v", sc.Text(), err)
		}
		if rec.Type == "audit_event" {
			ev := rec.AuditEvent
			evs = append(evs, &ev)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return evs
}

// metricValue is the value of the exposition line starting with series
// (name and labels), 0 if absent.
func metricValue(t *testing.T, exposition, series string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(exposition)
	if m == nil {
		return 0
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatalf("%s: %v", series, err)
	}
	return v
}

// metricTime is a gauge holding a Unix time in seconds.
func metricTime(t *testing.T, exposition, series string) time.Time {
	t.Helper()
	v := metricValue(t, exposition, series)
	return time.Unix(0, int64(v*1e9))
}

// TestE2EPostgresAwayRestart: a node stopped while its database is away
// keeps the decisions it answered meanwhile in its spill file
// (<data_dir>/audit/held.jsonl, 0600); started again once the database
// is back, it appends them first, and the chain verifies.
func TestE2EPostgresAwayRestart(t *testing.T) {
	t.Parallel()
	cl, err := pgtest.Start()
	if err != nil {
		pgtest.Require(t, nil, err)
	}
	t.Cleanup(cl.Stop)
	in := startNodesWith(t, cl, 1, func(c *node.Config) {
		c.Store.Unavailable.Grace = config.Duration(time.Minute)
	})[0]
	nas := in.nasClient(t, "", nil)
	d := in.bind(t, devbind.Request{DeviceID: "away-restart", Posture: store.ComplianceCompliant})
	in.mustAccept(t, nas, d.Certificate)

	if err := cl.StopFast(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the node to report the database unavailable", func() bool {
		return strings.Contains(in.scrape(t), "\nhardbound_store_unavailable 1\n")
	})
	const answered = 5
	for range answered {
		in.mustAccept(t, nas, d.Certificate)
	}
	// At least those; the Accept just before the stop may be held too,
	// if its group was written after the database went.
	var heldN int
	eventually(t, 5*time.Second, "the decisions to be held", func() bool {
		heldN = int(metricValue(t, in.scrape(t), "hardbound_audit_held_events"))
		return heldN >= answered
	})
	in.Shutdown()
	spill := filepath.Join(in.cfg.DataDir, "audit", "held.jsonl")
	fi, err := os.Stat(spill)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s is mode %v, want 0600", spill, fi.Mode().Perm())
	}
	b, err := os.ReadFile(spill)
	if err != nil {
		t.Fatal(err)
	}
	// Every event held before the stop is in the file, and so is any
	// decision whose audit group was still being gathered when the
	// metric was read (the shutdown flushes it into the hold); no more
	// than the node decided. The chain after the restart is checked
	// exactly below.
	if n := bytes.Count(b, []byte("\n")); n < heldN || n > answered+1 {
		t.Fatalf("%s holds %d events after the stop, want the %d held and at most %d", spill, n, heldN, answered+1)
	}

	if err := cl.Restart(); err != nil {
		t.Fatal(err)
	}
	again := startTest(t, in.cfg)
	eventually(t, 20*time.Second, "the spilled events to be appended", func() bool {
		return strings.Contains(again.scrape(t), "\nhardbound_audit_held_events 0\n")
	})
	if out := again.cliOK(t, "audit", "verify"); !strings.Contains(out, "audit chain OK") {
		t.Fatalf("audit verify after the restart: %s", out)
	}
	held, oks := 0, 0
	for _, ev := range again.exportAudit(t) {
		if ev.Action != "radius.auth" || ev.Result != "ok" {
			continue
		}
		oks++
		if strings.Contains(ev.Reason, " store=unavailable") {
			held++
		}
	}
	if held != answered || oks != answered+1 {
		t.Errorf("%d accepts in the chain, %d marked store=unavailable; want %d and %d", oks, held, answered+1, answered)
	}
	if fi, err := os.Stat(spill); err != nil || fi.Size() != 0 {
		t.Errorf("spill file after the drain: %v, %v; want empty", fi, err)
	}
}
