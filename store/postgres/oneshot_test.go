package postgres_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"hardbound/store"
)

// TestTwoNodesConsumeOnce: what is one-time across a cluster is one-time
// between two nodes' stores on one database, each with its own pool: of
// concurrent redemptions of one SCEP/EST challenge (ConsumeChallenge, or
// an issuance that consumes it), of claims of one nonce (ACME
// Replay-Nonces, webhook replays, Disconnect/CoA claims), exactly one
// wins, on whichever node, and every other attempt on either node is
// told so (docs/ha.md, "What is shared, what is per node").
func TestTwoNodesConsumeOnce(t *testing.T) {
	t.Parallel()
	dsn := newDB(t)
	nodes := []store.Store{openDSN(t, dsn), openDSN(t, dsn)}
	ctx := t.Context()
	now := time.Now()
	const perNode = 8

	// race runs perNode attempts on each node at once and counts the wins;
	// every other attempt must fail with one of lost.
	race := func(t *testing.T, attempt func(node, i int) error, lost ...error) {
		t.Helper()
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make([]error, 2*perNode)
		for n := range nodes {
			for i := range perNode {
				wg.Go(func() {
					<-start
					errs[n*perNode+i] = attempt(n, i)
				})
			}
		}
		close(start)
		wg.Wait()
		wins := 0
		for i, err := range errs {
			if err == nil {
				wins++
				continue
			}
			ok := false
			for _, l := range lost {
				ok = ok || errors.Is(err, l)
			}
			if !ok {
				t.Errorf("node %d attempt %d: %v, want nil or one of %v", i/perNode, i%perNode, err, lost)
			}
		}
		if wins != 1 {
			t.Fatalf("%d attempts won across both nodes, want exactly 1", wins)
		}
	}

	t.Run("consume_challenge", func(t *testing.T) {
		c := h("challenge-race")
		if err := nodes[0].PutChallenge(ctx, &store.Challenge{SHA256: c, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		race(t, func(n, _ int) error { _, err := nodes[n].ConsumeChallenge(ctx, c, now); return err }, store.ErrConsumed)
	})
	t.Run("issuance_consumes_challenge", func(t *testing.T) {
		c := h("issuance-race")
		if err := nodes[1].PutChallenge(ctx, &store.Challenge{SHA256: c, DeviceID: "d-race", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		race(t, func(n, i int) error {
			is := issuance("d-race", n*perNode+i)
			is.Challenge = &c
			return nodes[n].RecordIssuance(ctx, is)
		}, store.ErrConsumed)
		certs, _, err := nodes[0].ListCerts(ctx, store.CertFilter{DeviceID: "d-race"}, store.Page{})
		if err != nil || len(certs) != 1 {
			t.Fatalf("%d certificates bound for the one challenge (%v), want 1", len(certs), err)
		}
	})
	t.Run("claim_nonce", func(t *testing.T) {
		for _, scope := range []string{"acme", "dynauth"} {
			nonce := h(fmt.Sprintf("nonce-%s", scope))
			race(t, func(n, _ int) error { return nodes[n].ClaimNonce(ctx, scope, nonce, now.Add(time.Hour)) }, store.ErrExists)
		}
	})
	if r, err := nodes[1].VerifyAudit(ctx); err != nil || !r.OK || r.Events != 1 {
		t.Fatalf("audit chain after the races: %+v %v, want one issuance event", r, err)
	}
}
