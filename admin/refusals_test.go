package admin_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"hardbound/admin"
	"hardbound/posture"
	"hardbound/store/badger/badgertest"
)

type deniedCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (d *deniedCounter) AuthDenied(reason string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.n[reason]++
}

// TestUnauthenticatedFloodIsAuditedOnBudget: 1,000 requests without a
// valid token cost a handful of audit writes and a metric of 1,000.
func TestUnauthenticatedFloodIsAuditedOnBudget(t *testing.T) {
	t.Parallel()
	st := badgertest.Memory(t)
	svc, err := posture.New(st, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := &deniedCounter{n: map[string]int{}}
	a, err := admin.New(admin.Deps{Store: st, Standing: svc}, []admin.Token{{Name: "ops", SHA256: admin.HashToken(token)}}, admin.WithMetrics(m))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a)
	defer srv.Close()
	before, err := st.TailAudit(context.Background(), 10000)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/devices", nil)
		if i%2 == 1 {
			req.Header.Set("Authorization", "Bearer wrong")
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("request %d: %d", i, resp.StatusCode)
		}
	}
	after, err := st.TailAudit(context.Background(), 10000)
	if err != nil {
		t.Fatal(err)
	}
	if writes := len(after) - len(before); writes < 1 || writes > 4 {
		t.Fatalf("%d audit writes for 1,000 unauthenticated requests, want a handful", writes)
	}
	if m.n["missing_token"]+m.n["wrong_token"] != 1000 {
		t.Fatalf("metric counted %v, want 1,000 in all", m.n)
	}
	t.Logf("1,000 unauthenticated requests: %d audit writes, metric %v", len(after)-len(before), m.n)
}

// TestOversizedBodyIs413: a 10 MiB body is refused as too large, not as
// malformed.
func TestOversizedBodyIs413(t *testing.T) {
	t.Parallel()
	e, _ := newEnv(t, nil)
	code, body := e.call(t, "POST", "/api/v1/devices/dev-1/posture", token, `{"state":"`+strings.Repeat("x", 10<<20)+`"}`)
	if code != http.StatusRequestEntityTooLarge {
		t.Fatalf("HTTP %d %s, want 413", code, body)
	}
}
