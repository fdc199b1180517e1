package mdm

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hardbound/posture/mdm/mdmtest"
	"hardbound/store"
	"hardbound/store/badger"
)

// childDirEnv makes TestWebhookReplayChild the webhook server process of
// TestWebhookReplayIsRefusedAfterKill9.
const childDirEnv = "HARDBOUND_WEBHOOK_CHILD_DIR"

// TestWebhookReplayChild serves the signed webhook over the Badger store in
// $HARDBOUND_WEBHOOK_CHILD_DIR on 127.0.0.1 until it is killed; it writes
// its address to addr in that directory. Without the variable it does
// nothing (it is a helper process, not a test).
func TestWebhookReplayChild(t *testing.T) {
	dir := os.Getenv(childDirEnv)
	if dir == "" {
		return
	}
	st, err := badger.Open(context.Background(), filepath.Join(dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewWebhook(WebhookConfig{Secret: testSecret, Nonces: st, Auditor: &mdmtest.Auditor{}, Metrics: &mdmtest.Metrics{},
		Updater: mdmtest.NewUpdater(map[string]string{"id:dev-1": "dev-1"})})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "addr.tmp")
	if err := os.WriteFile(tmp, []byte(ln.Addr().String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "addr")); err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { time.Sleep(60 * time.Second); os.Exit(3) }() // never outlive the parent for long
	_ = srv.Serve(ln)
}

// TestWebhookReplayIsRefusedAfterKill9: a signed report accepted by one
// server process is refused as replayed by the next, after the first was
// killed with SIGKILL (no shutdown, no flush): the replay claim was durable
// before the 200.
func TestWebhookReplayIsRefusedAfterKill9(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	start := func() (*exec.Cmd, string) {
		t.Helper()
		_ = os.Remove(filepath.Join(dir, "addr"))
		cmd := exec.Command(os.Args[0], "-test.run=^TestWebhookReplayChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), childDirEnv+"="+dir)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if b, err := os.ReadFile(filepath.Join(dir, "addr")); err == nil {
				return cmd, string(b)
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("webhook process did not start:\n%s", out.String())
		return nil, ""
	}
	body := `{"device_id":"dev-1","state":"noncompliant"}`
	ts, sig := Sign(testSecret, time.Now(), []byte(body))
	send := func(addr string) int {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/mdm/webhook", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set(DefaultTimestampHeader, ts)
		req.Header.Set(DefaultSignatureHeader, sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	cmd, addr := start()
	if got := send(addr); got != http.StatusOK {
		t.Fatalf("first delivery: %d, want 200", got)
	}
	if err := cmd.Process.Signal(os.Kill); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	_, addr = start()
	if got := send(addr); got != http.StatusConflict {
		t.Fatalf("the same signed bytes after kill -9 and restart: %d, want 409 (replayed)", got)
	}
}

type failingNonces struct{}

func (failingNonces) ClaimNonce(context.Context, string, store.Hash, time.Time) error {
	return errors.New("disk gone")
}

// A replay claim that cannot be recorded fails closed: 503, nothing applied.
func TestWebhookReplayClaimFailureRefuses(t *testing.T) {
	t.Parallel()
	h, u, _, _ := newTestWebhook(t, func(c *WebhookConfig) { c.Nonces = failingNonces{} })
	w := httptest.NewRecorder()
	h.ServeHTTP(w, signedRequest(`{"device_id":"dev-1","state":"compliant"}`, time.Unix(1_790_000_000, 0), testSecret))
	if w.Code != http.StatusServiceUnavailable || len(u.Reports()) != 0 {
		t.Fatalf("status %d, applied %v", w.Code, u.Reports())
	}
}
