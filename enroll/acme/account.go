package acme

import (
	"container/list"
	"context"
	"errors"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
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
