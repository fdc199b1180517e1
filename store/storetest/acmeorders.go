package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"hardbound/store"
)

// acmeOrder is a pending order of account, created now and living an hour.
func acmeOrder(id, account string, created time.Time) *store.ACMEOrder {
	return &store.ACMEOrder{
		ID: id, Account: account, Profile: "corp", IdentifierType: "permanent-identifier",
		IdentifierValue: "SN-" + id, DeviceID: "SN-" + id, Token: "token-" + id,
		Status: "pending", AuthzStatus: "pending", ChallStatus: "pending",
		CreatedAt: created, ExpiresAt: created.Add(time.Hour),
	}
}

func testACMEOrders(t *testing.T, open func(t *testing.T) store.Store) {
	s := newStore(t, open)
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Second)

	o := acmeOrder("ord-1", "acct-1", now)
	o.Named = true
	noErr(t, "CreateACMEOrder", s.CreateACMEOrder(ctx, o, 10))
	if o.Version != 1 || o.V != store.RecordVersion || o.UpdatedAt.IsZero() {
		t.Fatalf("created order = %+v, want version 1, V and UpdatedAt set", o)
	}
	got, err := s.GetACMEOrder(ctx, "ord-1")
	noErr(t, "GetACMEOrder", err)
	sameJSON(t, "order as read back", got, o)
	wantErr(t, "CreateACMEOrder(same id)", s.CreateACMEOrder(ctx, acmeOrder("ord-1", "acct-2", now), 10), store.ErrExists)
	_, err = s.GetACMEOrder(ctx, "ord-none")
	wantErr(t, "GetACMEOrder(absent)", err, store.ErrNotFound)
	_, err = s.GetACMEOrder(ctx, "bad\x00id")
	wantErr(t, "GetACMEOrder(NUL)", err, store.ErrNotFound)

	// The challenge answered: a compare-and-swap from version 1.
	up := store.CloneACMEOrder(got)
	up.Status, up.AuthzStatus, up.ChallStatus = "ready", "valid", "valid"
	up.ValidatedAt = now.Add(time.Minute)
	up.Evidence = json.RawMessage(`{"format":"apple","facts":{"os":"17.4"}}`)
	noErr(t, "UpdateACMEOrder(from 1)", s.UpdateACMEOrder(ctx, up, 1))
	if up.Version != 2 {
		t.Fatalf("updated order at version %d, want 2", up.Version)
	}
	stale := store.CloneACMEOrder(got)
	stale.Status = "invalid"
	wantErr(t, "UpdateACMEOrder(stale version)", s.UpdateACMEOrder(ctx, stale, 1), store.ErrConflict)
	got, err = s.GetACMEOrder(ctx, "ord-1")
	noErr(t, "GetACMEOrder after update", err)
	sameJSON(t, "order after update", got, up)

	for _, tc := range []struct {
		name string
		mod  func(o *store.ACMEOrder)
	}{
		{"account", func(o *store.ACMEOrder) { o.Account = "acct-other" }},
		{"created_at", func(o *store.ACMEOrder) { o.CreatedAt = o.CreatedAt.Add(-time.Second) }},
		{"expires_at", func(o *store.ACMEOrder) { o.ExpiresAt = o.ExpiresAt.Add(time.Hour) }},
	} {
		bad := store.CloneACMEOrder(got)
		tc.mod(bad)
		if err := s.UpdateACMEOrder(ctx, bad, 2); err == nil {
			t.Errorf("UpdateACMEOrder changing %s succeeded", tc.name)
		}
	}
	missing := acmeOrder("ord-missing", "acct-1", now)
	wantErr(t, "UpdateACMEOrder(absent)", s.UpdateACMEOrder(ctx, missing, 1), store.ErrNotFound)

	// Listing: the account's own orders, oldest first.
	noErr(t, "CreateACMEOrder(2)", s.CreateACMEOrder(ctx, acmeOrder("ord-2", "acct-1", now.Add(time.Second)), 10))
	noErr(t, "CreateACMEOrder(other account)", s.CreateACMEOrder(ctx, acmeOrder("ord-3", "acct-2", now), 10))
	list, err := s.ListACMEOrders(ctx, "acct-1")
	noErr(t, "ListACMEOrders", err)
	if len(list) != 2 || list[0].ID != "ord-1" || list[1].ID != "ord-2" || list[0].Version != 2 {
		t.Fatalf("ListACMEOrders(acct-1) = %v", orderIDs(list))
	}
	if list, err := s.ListACMEOrders(ctx, "acct-none"); err != nil || len(list) != 0 {
		t.Fatalf("ListACMEOrders(no orders) = %v, %v", orderIDs(list), err)
	}

	for _, tc := range []struct {
		name string
		mod  func(o *store.ACMEOrder)
	}{
		{"empty_id", func(o *store.ACMEOrder) { o.ID = "" }},
		{"nul_in_account", func(o *store.ACMEOrder) { o.Account = "a\x00b" }},
		{"no_status", func(o *store.ACMEOrder) { o.Status = "" }},
		{"expiry_before_creation", func(o *store.ACMEOrder) { o.ExpiresAt = o.CreatedAt }},
		{"error_not_json", func(o *store.ACMEOrder) { o.Error = json.RawMessage("{") }},
		{"evidence_too_large", func(o *store.ACMEOrder) {
			o.Evidence = json.RawMessage(`"` + string(make([]byte, store.MaxACMEOrderBlob)) + `"`)
		}},
		{"bad_serial", func(o *store.ACMEOrder) { o.CertSerial = "00AB" }},
	} {
		t.Run("rejects_"+tc.name, func(t *testing.T) {
			bad := acmeOrder("ord-bad-"+tc.name, "acct-9", now)
			tc.mod(bad)
			if err := s.CreateACMEOrder(ctx, bad, 10); err == nil || errors.Is(err, store.ErrExists) {
				t.Fatalf("CreateACMEOrder = %v, want an input error", err)
			}
		})
	}
	if err := s.CreateACMEOrder(ctx, acmeOrder("ord-nolimit", "acct-9", now), 0); err == nil {
		t.Fatal("CreateACMEOrder with maxPerAccount 0 succeeded")
	}
}

func orderIDs(os []*store.ACMEOrder) []string {
	var ids []string
	for _, o := range os {
		ids = append(ids, o.ID)
	}
	return ids
}

// testACMEOrderBounds: an account holds at most maxPerAccount unexpired
// orders, expired ones do not count and are dropped by the store, so
// abandoned orders do not accumulate.
func testACMEOrderBounds(t *testing.T, open func(t *testing.T) store.Store) {
	s := newStore(t, open)
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Second)
	for i := range 3 {
		noErr(t, "CreateACMEOrder", s.CreateACMEOrder(ctx, acmeOrder(fmt.Sprintf("b-%d", i), "acct-b", now), 3))
	}
	wantErr(t, "CreateACMEOrder(4th of 3)", s.CreateACMEOrder(ctx, acmeOrder("b-3", "acct-b", now), 3), store.ErrLimit)
	if _, err := s.GetACMEOrder(ctx, "b-3"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the refused order was stored: %v", err)
	}
	noErr(t, "CreateACMEOrder(another account)", s.CreateACMEOrder(ctx, acmeOrder("c-0", "acct-c", now), 3))
	// An order created after the three expired finds room.
	noErr(t, "CreateACMEOrder(after expiry)", s.CreateACMEOrder(ctx, acmeOrder("b-4", "acct-b", now.Add(time.Hour)), 3))

	// Orders that already expired: not listed, and gone from the store
	// once it pruned (Badger: its TTL, one-second granularity;
	// PostgreSQL: the next creation).
	past := now.Add(-2 * time.Hour)
	for i := range 5 {
		noErr(t, "CreateACMEOrder(expired)", s.CreateACMEOrder(ctx, acmeOrder(fmt.Sprintf("old-%d", i), "acct-old", past), 10))
	}
	if list, err := s.ListACMEOrders(ctx, "acct-old"); err != nil || len(list) != 0 {
		t.Fatalf("ListACMEOrders lists expired orders: %v, %v", orderIDs(list), err)
	}
	time.Sleep(2100 * time.Millisecond)
	noErr(t, "CreateACMEOrder(prunes)", s.CreateACMEOrder(ctx, acmeOrder("new-0", "acct-new", time.Now()), 10))
	for i := range 5 {
		if _, err := s.GetACMEOrder(ctx, fmt.Sprintf("old-%d", i)); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("expired order old-%d still stored: %v", i, err)
		}
	}
}

// testACMEOrderConcurrency: of nodes updating one order from one version
// at once exactly one writes; of creations racing for an account's last
// place exactly one gets it.
func testACMEOrderConcurrency(t *testing.T, open func(t *testing.T) store.Store) {
	s := newStore(t, open)
	ctx := t.Context()
	now := time.Now().UTC()
	noErr(t, "CreateACMEOrder", s.CreateACMEOrder(ctx, acmeOrder("race", "acct-r", now), 10))
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			o := acmeOrder("race", "acct-r", now)
			o.Status, o.Token = "processing", fmt.Sprintf("node-%d", i)
			errs[i] = s.UpdateACMEOrder(ctx, o, 1)
		})
	}
	wg.Wait()
	if won := countWins(t, errs, store.ErrConflict); won != 1 {
		t.Fatalf("%d concurrent updates from version 1 won, want 1", won)
	}
	if got, err := s.GetACMEOrder(ctx, "race"); err != nil || got.Version != 2 || got.Status != "processing" {
		t.Fatalf("after the race: %+v, %v", got, err)
	}

	for i := range n {
		wg.Go(func() {
			errs[i] = s.CreateACMEOrder(ctx, acmeOrder(fmt.Sprintf("place-%d", i), "acct-one", now), 1)
		})
	}
	wg.Wait()
	if won := countWins(t, errs, store.ErrLimit); won != 1 {
		t.Fatalf("%d concurrent creations won the one place, want 1", won)
	}
}

func countWins(t *testing.T, errs []error, lose error) int {
	t.Helper()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, lose):
			t.Fatalf("concurrent call: %v", err)
		}
	}
	return won
}

// testACMEOrderIssuance: RecordIssuance with an order writes the order in
// the issuance's transaction. A stale order version aborts the whole
// issuance, so two nodes finalizing one order bind exactly one
// certificate, and an order that says valid always names a bound one.
func testACMEOrderIssuance(t *testing.T, open func(t *testing.T) store.Store) {
	s := newStore(t, open)
	ctx := t.Context()
	now := time.Now().UTC()
	o := acmeOrder("fin", "acct-f", now)
	noErr(t, "CreateACMEOrder", s.CreateACMEOrder(ctx, o, 10))
	o.Status = "processing"
	noErr(t, "UpdateACMEOrder(processing)", s.UpdateACMEOrder(ctx, o, 1))

	before := auditCount(t, s)
	const n = 6
	var wg sync.WaitGroup
	errs := make([]error, n)
	certs := make([]*store.Cert, n)
	for i := range n {
		wg.Go(func() {
			c := cert("dev-fin", i)
			certs[i] = c
			fin := store.CloneACMEOrder(o)
			fin.Status, fin.CertSHA256, fin.CertSerial = "valid", c.SHA256, c.Serial
			errs[i] = s.RecordIssuance(ctx, store.Issuance{Device: device("dev-fin"), Cert: c,
				Audit: auditEv("enroll.acme", "dev-fin"), Order: fin, OrderPrev: 2})
		})
	}
	wg.Wait()
	if won := countWins(t, errs, store.ErrConflict); won != 1 {
		t.Fatalf("%d concurrent issuances for one order won, want 1", won)
	}
	got, err := s.GetACMEOrder(ctx, "fin")
	noErr(t, "GetACMEOrder", err)
	if got.Status != "valid" || got.Version != 3 {
		t.Fatalf("order after issuance: %+v", got)
	}
	bound := 0
	for i, c := range certs {
		rec, err := s.GetCert(ctx, c.SHA256)
		switch {
		case err == nil:
			bound++
			if rec.SHA256 != got.CertSHA256 || rec.Serial != got.CertSerial || errs[i] != nil {
				t.Fatalf("bound cert %s is not the one the order names (%s)", rec.SHA256, got.CertSHA256)
			}
		case !errors.Is(err, store.ErrNotFound):
			t.Fatal(err)
		}
	}
	if bound != 1 || auditCount(t, s) != before+1 {
		t.Fatalf("%d certs bound and %d audit events appended, want 1 and 1", bound, auditCount(t, s)-before)
	}

	// An order that is gone aborts the issuance with ErrNotFound.
	c := cert("dev-fin", 99)
	gone := acmeOrder("fin-gone", "acct-f", now)
	gone.Status = "valid"
	err = s.RecordIssuance(ctx, store.Issuance{Device: device("dev-fin"), Cert: c, Audit: auditEv("enroll.acme", "dev-fin"), Order: gone, OrderPrev: 1})
	wantErr(t, "RecordIssuance(absent order)", err, store.ErrNotFound)
	if _, err := s.GetCert(ctx, c.SHA256); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("cert of the aborted issuance was bound: %v", err)
	}
	if err := s.RecordIssuance(ctx, store.Issuance{Device: device("dev-fin"), Cert: c, Audit: auditEv("enroll.acme", "dev-fin"), Order: gone}); err == nil {
		t.Fatal("RecordIssuance with an order and no expected version succeeded")
	}
}
