package acme

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"hardbound/store"
)

// ErrAccountNotFound is returned by AccountStore lookups that find nothing.
var ErrAccountNotFound = errors.New("acme: account not found")

// Account statuses (RFC 8555 §7.1.2).
const (
	AccountValid       = "valid"
	AccountDeactivated = "deactivated"
)

// Account is a registered ACME account key.
type Account struct {
	ID         string
	Key        *jose.JSONWebKey // public
	Thumbprint string           // base64url RFC 7638 SHA-256 thumbprint of Key
	Contact    []string
	Status     string
	CreatedAt  time.Time
}

// AccountStore persists accounts. Accounts only authenticate requests:
// enrollment is authorised by the attestation, so losing an account costs a
// client a new newAccount (it gets accountDoesNotExist), nothing more.
type AccountStore interface {
	// Create stores a; if an account with the same thumbprint exists, it
	// returns that one and created=false.
	Create(ctx context.Context, a *Account) (stored *Account, created bool, err error)
	Get(ctx context.Context, id string) (*Account, error)
	ByThumbprint(ctx context.Context, thumbprint string) (*Account, error)
	Update(ctx context.Context, a *Account) error
}

// MemAccounts is the in-memory AccountStore, bounded to max accounts in LRU
// order: the least recently used account is forgotten when the table is full.
type MemAccounts struct {
	max int

	mu    sync.Mutex
	order *list.List // of *Account, front = most recent
	byID  map[string]*list.Element
	byTP  map[string]*list.Element
}

// NewMemAccounts returns an in-memory store of at most max accounts
// (default 100000 when max <= 0).
func NewMemAccounts(max int) *MemAccounts {
	if max <= 0 {
		max = 100000
	}
	return &MemAccounts{max: max, order: list.New(), byID: map[string]*list.Element{}, byTP: map[string]*list.Element{}}
}

func (m *MemAccounts) Create(_ context.Context, a *Account) (*Account, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if el, ok := m.byTP[a.Thumbprint]; ok {
		m.order.MoveToFront(el)
		return copyAccount(el.Value.(*Account)), false, nil
	}
	for m.order.Len() >= m.max {
		old := m.order.Back()
		m.order.Remove(old)
		oa := old.Value.(*Account)
		delete(m.byID, oa.ID)
		delete(m.byTP, oa.Thumbprint)
	}
	c := copyAccount(a)
	el := m.order.PushFront(c)
	m.byID[c.ID] = el
	m.byTP[c.Thumbprint] = el
	return copyAccount(c), true, nil
}

func (m *MemAccounts) Get(_ context.Context, id string) (*Account, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	el, ok := m.byID[id]
	if !ok {
		return nil, ErrAccountNotFound
	}
	m.order.MoveToFront(el)
	return copyAccount(el.Value.(*Account)), nil
}

func (m *MemAccounts) ByThumbprint(_ context.Context, tp string) (*Account, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	el, ok := m.byTP[tp]
	if !ok {
		return nil, ErrAccountNotFound
	}
	m.order.MoveToFront(el)
	return copyAccount(el.Value.(*Account)), nil
}

func (m *MemAccounts) Update(_ context.Context, a *Account) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	el, ok := m.byID[a.ID]
	if !ok {
		return ErrAccountNotFound
	}
	el.Value = copyAccount(a)
	return nil
}

// Len reports the number of stored accounts.
func (m *MemAccounts) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.order.Len()
}

func copyAccount(a *Account) *Account {
	c := *a
	c.Contact = append([]string(nil), a.Contact...)
	return &c
}

// AccountRecords is the part of store.Store that persists ACME accounts.
type AccountRecords interface {
	PutACMEAccount(ctx context.Context, a *store.ACMEAccount) error
	GetACMEAccount(ctx context.Context, id string) (*store.ACMEAccount, error)
	FindACMEAccountByThumbprint(ctx context.Context, thumbprint string) (*store.ACMEAccount, error)
}

// StoreAccounts is the AccountStore over the durable store, so accounts
// outlive a restart (the in-memory default forgets them and clients get
// accountDoesNotExist). It keeps no state of its own: every lookup reads
// the store, so several servers over one store agree.
func StoreAccounts(st AccountRecords) AccountStore { return &storeAccounts{st: st} }

type storeAccounts struct{ st AccountRecords }

// Create returns the account already holding a's key, or stores a. The
// store refuses a second account for one thumbprint (store.ErrExists), so
// two concurrent newAccount requests for one key end with one account.
// a.ID must be fresh (randomID): the store replaces by ID.
func (s *storeAccounts) Create(ctx context.Context, a *Account) (*Account, bool, error) {
	switch old, err := s.ByThumbprint(ctx, a.Thumbprint); {
	case err == nil:
		return old, false, nil
	case !errors.Is(err, ErrAccountNotFound):
		return nil, false, err
	}
	rec, err := toRecord(a)
	if err != nil {
		return nil, false, err
	}
	err = s.st.PutACMEAccount(ctx, rec)
	if errors.Is(err, store.ErrExists) {
		// Another request created the account for this key in between.
		old, err := s.ByThumbprint(ctx, a.Thumbprint)
		if err != nil {
			return nil, false, err
		}
		return old, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("acme: store account: %w", err)
	}
	out, err := fromRecord(rec)
	if err != nil {
		return nil, false, err
	}
	return out, true, nil
}

func (s *storeAccounts) Get(ctx context.Context, id string) (*Account, error) {
	rec, err := s.st.GetACMEAccount(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: %w", ErrAccountNotFound, err)
	}
	if err != nil {
		return nil, fmt.Errorf("acme: load account: %w", err)
	}
	return fromRecord(rec)
}

func (s *storeAccounts) ByThumbprint(ctx context.Context, tp string) (*Account, error) {
	rec, err := s.st.FindACMEAccountByThumbprint(ctx, tp)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: %w", ErrAccountNotFound, err)
	}
	if err != nil {
		return nil, fmt.Errorf("acme: find account: %w", err)
	}
	a, err := fromRecord(rec)
	if err != nil {
		return nil, err
	}
	if a.Thumbprint != tp {
		return nil, fmt.Errorf("acme: account %s found for thumbprint %s holds another key", a.ID, tp)
	}
	return a, nil
}

// Update rewrites an existing account (contact, status).
func (s *storeAccounts) Update(ctx context.Context, a *Account) error {
	if _, err := s.Get(ctx, a.ID); err != nil {
		return err
	}
	rec, err := toRecord(a)
	if err != nil {
		return err
	}
	if err := s.st.PutACMEAccount(ctx, rec); err != nil {
		return fmt.Errorf("acme: store account: %w", err)
	}
	return nil
}

// toRecord converts a for the store; only a public key is ever written.
func toRecord(a *Account) (*store.ACMEAccount, error) {
	if a.Key == nil || !a.Key.Valid() || !a.Key.IsPublic() {
		return nil, errors.New("acme: account key must be a valid public JWK")
	}
	jwk, err := a.Key.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("acme: encode account key: %w", err)
	}
	return &store.ACMEAccount{
		V: store.RecordVersion, ID: a.ID, Thumbprint: a.Thumbprint, JWK: jwk,
		Status: a.Status, Contact: append([]string(nil), a.Contact...), CreatedAt: a.CreatedAt,
	}, nil
}

// fromRecord decodes a stored account and checks that its key still has
// the thumbprint it is indexed under: the key authenticates every request.
func fromRecord(r *store.ACMEAccount) (*Account, error) {
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON(r.JWK); err != nil {
		return nil, fmt.Errorf("acme: account %s: decode key: %w", r.ID, err)
	}
	if !k.Valid() || !k.IsPublic() {
		return nil, fmt.Errorf("acme: account %s: stored key is not a valid public key", r.ID)
	}
	tp, err := thumbprint(&k)
	if err != nil {
		return nil, fmt.Errorf("acme: account %s: key thumbprint: %w", r.ID, err)
	}
	if tp != r.Thumbprint {
		return nil, fmt.Errorf("acme: account %s: stored key does not match its thumbprint", r.ID)
	}
	return &Account{
		ID: r.ID, Key: &k, Thumbprint: r.Thumbprint, Contact: append([]string(nil), r.Contact...),
		Status: r.Status, CreatedAt: r.CreatedAt,
	}, nil
}
