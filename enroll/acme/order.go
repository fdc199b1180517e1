package acme

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"hardbound/enroll/attest"
	"hardbound/store"
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

// Orders live in the store (store.ACMEOrder), one record per order with
// its one authorization and its one challenge, which have the order's id
// (their URLs differ: /order/ID, /authz/ID, /chall/ID). Every node reads
// and writes them there, so each request of an enrollment may reach
// another node; every write is a compare-and-swap on the order's version,
// so two nodes acting on one order at once cannot both succeed.

// OrderStore is the part of store.Store that holds orders.
type OrderStore interface {
	CreateACMEOrder(ctx context.Context, o *store.ACMEOrder, maxPerAccount int) error
	GetACMEOrder(ctx context.Context, id string) (*store.ACMEOrder, error)
	UpdateACMEOrder(ctx context.Context, o *store.ACMEOrder, prev uint64) error
	ListACMEOrders(ctx context.Context, account string) ([]*store.ACMEOrder, error)
}

func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

func identifierOf(o *store.ACMEOrder) Identifier {
	return Identifier{Type: o.IdentifierType, Value: o.IdentifierValue}
}

// evidence is the verified attestation as an order stores it between the
// challenge and finalize: what finalize and the issuance need, the public
// key as SPKI DER.
type evidence struct {
	Format      string            `json:"format"`
	SPKI        []byte            `json:"spki"`
	KeySHA256   store.Hash        `json:"key_sha256,omitzero"`
	DeviceID    string            `json:"device_id,omitempty"`
	Identifiers map[string]string `json:"identifiers,omitempty"`
	Facts       map[string]string `json:"facts,omitempty"`
}

func encodeEvidence(res *attest.Result) (json.RawMessage, error) {
	spki, err := x509.MarshalPKIXPublicKey(res.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("acme: encode attested key: %w", err)
	}
	return json.Marshal(evidence{Format: res.Format, SPKI: spki, KeySHA256: res.KeySHA256, DeviceID: res.DeviceID,
		Identifiers: res.Identifiers, Facts: res.Facts})
}

func decodeEvidence(b json.RawMessage) (*attest.Result, error) {
	if len(b) == 0 {
		return nil, errors.New("acme: order holds no attestation")
	}
	var e evidence
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("acme: decode order attestation: %w", err)
	}
	pub, err := x509.ParsePKIXPublicKey(e.SPKI)
	if err != nil {
		return nil, fmt.Errorf("acme: decode attested key: %w", err)
	}
	return &attest.Result{Format: e.Format, PublicKey: pub, KeySHA256: e.KeySHA256, DeviceID: e.DeviceID,
		Identifiers: e.Identifiers, Facts: e.Facts}, nil
}

// evidenceFormat is the attestation format an order holds, for labels.
func evidenceFormat(b json.RawMessage) string {
	var e struct {
		Format string `json:"format"`
	}
	if len(b) == 0 || json.Unmarshal(b, &e) != nil {
		return ""
	}
	return e.Format
}

func encodeProblem(p *Problem) json.RawMessage {
	b, err := json.Marshal(p)
	if err != nil {
		return nil
	}
	return b
}

func decodeProblem(b json.RawMessage) *Problem {
	if len(b) == 0 {
		return nil
	}
	p := new(Problem)
	if json.Unmarshal(b, p) != nil {
		return nil
	}
	return p
}

// errOrderGone is returned by updateOrder when the order vanished or
// expired in between.
var errOrderGone = errors.New("acme: order is gone")

// updateOrder applies fn to the stored order and writes it with a
// compare-and-swap, reading again and reapplying fn when another node
// wrote first. fn returns false to write nothing (the order is no longer
// in a state it changes); updateOrder then returns the order as read.
func (s *Server) updateOrder(ctx context.Context, o *store.ACMEOrder, fn func(o *store.ACMEOrder) bool) (*store.ACMEOrder, error) {
	ctx = context.WithoutCancel(ctx) // the client going away must not leave half a decision
	for range 5 {
		next := store.CloneACMEOrder(o)
		if !fn(next) {
			return o, nil
		}
		err := s.orders.UpdateACMEOrder(ctx, next, o.Version)
		if err == nil {
			return next, nil
		}
		if !errors.Is(err, store.ErrConflict) {
			if errors.Is(err, store.ErrNotFound) {
				return nil, fmt.Errorf("%w: %w", errOrderGone, err)
			}
			return nil, err
		}
		if o, err = s.orders.GetACMEOrder(ctx, o.ID); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return nil, fmt.Errorf("%w: %w", errOrderGone, err)
			}
			return nil, err
		}
	}
	return nil, fmt.Errorf("acme: order %s: still conflicting after 5 attempts", o.ID)
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
