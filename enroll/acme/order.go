package acme

import (
	"container/list"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"sync"
	"time"

	"hardbound/enroll/attest"
)

// Statuses of orders, authorizations and challenges (RFC 8555 §7.1.6).
const (
	StatusPending    = "pending"
	StatusReady      = "ready"
	StatusProcessing = "processing"
	StatusValid      = "valid"
	StatusInvalid    = "invalid"
)

// ChallengeDeviceAttest01 is the only challenge type this server offers.
const ChallengeDeviceAttest01 = "device-attest-01"

// order is one enrollment attempt: an order with exactly one identifier,
// its authorization and its device-attest-01 challenge. All three live and
// die together, so one record holds them and the table indexes it by each
// of the three ids. Fields are guarded by orders.mu.
type order struct {
	id, authzID, challID string
	account              string
	profile              string
	named                bool // the URL named the profile (/profile/NAME/new-order)
	identifier           Identifier
	deviceID             string // the identity the attestation must prove
	token                string
	created, expires     time.Time

	status      string // order status
	authzStatus string
	challStatus string
	validated   time.Time
	challErr    *Problem
	orderErr    *Problem
	busy        bool // a challenge validation or finalize is running

	attested *attest.Result
	chain    []*x509.Certificate // leaf, issuing
}

// orders is the bounded TTL table of live orders. Orders are created in
// time order with one TTL, so the list front is the next to expire; when
// the table is full the oldest order is dropped.
type orders struct {
	ttl time.Duration
	max int
	now func() time.Time

	mu    sync.Mutex
	order *list.List // of *order, oldest first
	byID  map[string]*list.Element
	byAz  map[string]*list.Element
	byCh  map[string]*list.Element
}

func newOrders(ttl time.Duration, max int, now func() time.Time) *orders {
	return &orders{ttl: ttl, max: max, now: now, order: list.New(),
		byID: map[string]*list.Element{}, byAz: map[string]*list.Element{}, byCh: map[string]*list.Element{}}
}

func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (t *orders) create(account, profile string, named bool, id Identifier, deviceID string) *order {
	now := t.now()
	o := &order{
		id: randomID(16), authzID: randomID(16), challID: randomID(16),
		account: account, profile: profile, named: named, identifier: id, deviceID: deviceID,
		// 256-bit token: the draft asks for at least 128 bits.
		token:   randomID(32),
		created: now, expires: now.Add(t.ttl),
		status: StatusPending, authzStatus: StatusPending, challStatus: StatusPending,
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweepLocked(now)
	for t.order.Len() >= t.max {
		t.removeLocked(t.order.Front())
	}
	el := t.order.PushBack(o)
	t.byID[o.id], t.byAz[o.authzID], t.byCh[o.challID] = el, el, el
	return o
}

// lookup finds a live order by one of its ids; kind is 'o', 'a' or 'c'.
// The caller must hold t.mu while touching the returned order's fields.
func (t *orders) lookupLocked(kind byte, id string) *order {
	var m map[string]*list.Element
	switch kind {
	case 'o':
		m = t.byID
	case 'a':
		m = t.byAz
	default:
		m = t.byCh
	}
	el, ok := m[id]
	if !ok {
		return nil
	}
	o := el.Value.(*order)
	if !t.now().Before(o.expires) {
		t.removeLocked(el)
		return nil
	}
	return o
}

// byAccount lists the ids of live orders of an account (bounded by the table).
func (t *orders) byAccountLocked(account string) []string {
	var ids []string
	now := t.now()
	for el := t.order.Front(); el != nil; el = el.Next() {
		o := el.Value.(*order)
		if o.account == account && now.Before(o.expires) {
			ids = append(ids, o.id)
		}
	}
	return ids
}

func (t *orders) sweepLocked(now time.Time) {
	for el := t.order.Front(); el != nil && !now.Before(el.Value.(*order).expires); el = t.order.Front() {
		t.removeLocked(el)
	}
}

func (t *orders) removeLocked(el *list.Element) {
	o := el.Value.(*order)
	t.order.Remove(el)
	delete(t.byID, o.id)
	delete(t.byAz, o.authzID)
	delete(t.byCh, o.challID)
}

func (t *orders) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.order.Len()
}

// requestsValidity reports whether a newOrder notBefore/notAfter value
// (RFC 8555 §7.4, RFC 3339) asks for a validity. Absent, empty and the
// zero time do not: smallstep's step CLI always sends the zero time
// ("0001-01-01T00:00:00Z") when no validity was asked for, and refusing it
// would refuse that client outright.
func requestsValidity(v string) bool {
	if v == "" {
		return false
	}
	t, err := time.Parse(time.RFC3339, v)
	return err != nil || !t.IsZero()
}
