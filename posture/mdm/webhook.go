package mdm

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"hardbound/store"
)

// Defaults of the generic webhook.
const (
	DefaultTimestampHeader = "X-Hardbound-Timestamp"
	DefaultSignatureHeader = "X-Hardbound-Signature"
	DefaultWindow          = 5 * time.Minute
	DefaultReplayEntries   = 100_000
	DefaultMaxBody         = 64 << 10
	minSecretLen           = 16
)

// WebhookConfig configures the generic signed compliance webhook.
//
// The sender signs each request: header TimestampHeader carries the unix
// time in seconds, header SignatureHeader the lower-case hex
// HMAC-SHA256(Secret, timestamp + "." + body) (an optional "sha256=" prefix
// is accepted). The body is JSON:
//
//	{"device_id": "...", "state": "compliant|noncompliant|unknown"}
//
// where device_id may be replaced by one or more of "serial", "udid",
// "intune_id", "azure_ad_id" (tried in that order after device_id).
type WebhookConfig struct {
	// Source names the connector (posture source, metric label); default "webhook".
	Source string
	// Secret is the shared HMAC key, at least 16 bytes.
	Secret          []byte
	TimestampHeader string
	SignatureHeader string
	// Window is how far the timestamp may be from now, either way (default 5m).
	Window time.Duration
	// ReplayEntries bounds the cache of signatures seen inside the window
	// (default 100,000). When it is full of unexpired entries new requests
	// are refused (503) rather than letting a replay through.
	ReplayEntries int
	// MaxBody caps the request body (default 64 KiB).
	MaxBody int64
	// Nonces makes replay protection survive a restart (store.Store
	// satisfies it): every accepted signature is claimed durably for the
	// window before the report is applied. nil: the memory cache only, and
	// a request accepted before a restart is accepted again after it.
	Nonces  Nonces
	Updater Updater
	Auditor Auditor
	Metrics Metrics
	Logger  *slog.Logger
	Now     func() time.Time
}

// Nonces claims a nonce once until it expires (store.Store.ClaimNonce): a
// second claim fails with store.ErrExists.
type Nonces interface {
	ClaimNonce(ctx context.Context, scope string, nonce store.Hash, expires time.Time) error
}

// Webhook is an http.Handler for signed compliance reports.
type Webhook struct {
	cfg    WebhookConfig
	edge   *Edge
	replay *replayCache
}

// NewWebhook validates cfg and fills defaults.
func NewWebhook(cfg WebhookConfig) (*Webhook, error) {
	if cfg.Updater == nil {
		return nil, errors.New("mdm: webhook: Updater is required")
	}
	if len(cfg.Secret) < minSecretLen {
		return nil, fmt.Errorf("mdm: webhook: secret must be at least %d bytes", minSecretLen)
	}
	if cfg.Source == "" {
		cfg.Source = "webhook"
	}
	if cfg.TimestampHeader == "" {
		cfg.TimestampHeader = DefaultTimestampHeader
	}
	if cfg.SignatureHeader == "" {
		cfg.SignatureHeader = DefaultSignatureHeader
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.ReplayEntries <= 0 {
		cfg.ReplayEntries = DefaultReplayEntries
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Webhook{
		cfg:    cfg,
		edge:   NewEdge(EdgeConfig{Source: cfg.Source, Auditor: cfg.Auditor, Metrics: cfg.Metrics, Logger: cfg.Logger, Now: cfg.Now}),
		replay: newReplayCache(cfg.ReplayEntries),
	}, nil
}

// Sign returns the signature header value for body at ts; senders and tests use it.
func Sign(secret []byte, ts time.Time, body []byte) (timestamp, signature string) {
	timestamp = strconv.FormatInt(ts.Unix(), 10)
	return timestamp, hex.EncodeToString(mac(secret, timestamp, body))
}

func mac(secret []byte, timestamp string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Report is the generic webhook body.
type Report struct {
	DeviceID  string `json:"device_id,omitempty"`
	Serial    string `json:"serial,omitempty"`
	UDID      string `json:"udid,omitempty"`
	IntuneID  string `json:"intune_id,omitempty"`
	AzureADID string `json:"azure_ad_id,omitempty"`
	State     string `json:"state"`
	// Reason is free text from the MDM, logged only (at most 256 bytes).
	Reason string `json:"reason,omitempty"`
}

// Identities lists the report's identities in resolution order.
func (r *Report) Identities() []Identity {
	return []Identity{
		{KindID, r.DeviceID}, {KindSerial, r.Serial}, {KindUDID, r.UDID},
		{KindIntuneID, r.IntuneID}, {KindAzureADID, r.AzureADID},
	}
}

// ParseReport decodes and validates a generic webhook body. Unknown fields,
// trailing data, a missing identity or an unknown state are errors.
func ParseReport(body []byte) (*Report, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var r Report
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("mdm: report: %w", err)
	}
	if dec.More() {
		return nil, errors.New("mdm: report: trailing data after JSON object")
	}
	if _, ok := ParseState(r.State); !ok {
		return nil, fmt.Errorf("mdm: report: %w %q", errBadState, truncate(r.State, 32))
	}
	if len(r.Reason) > 256 {
		return nil, errors.New("mdm: report: reason longer than 256 bytes")
	}
	for _, id := range r.Identities() {
		if len(id.Value) > 256 {
			return nil, fmt.Errorf("mdm: report: %s longer than 256 bytes", id.Kind)
		}
		if id.Value != "" {
			return &r, nil
		}
	}
	return nil, errNoIdentity
}

var (
	errBadState   = errors.New("state must be compliant, noncompliant or unknown, got")
	errNoIdentity = errors.New("mdm: report: no device identity (device_id, serial, udid, intune_id, azure_ad_id)")
)

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// ServeHTTP checks method, size, timestamp, signature and replay before it
// looks at the body; each refusal is a JSON error, counted and audited.
func (h *Webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e := h.edge
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		e.Reject(w, r, http.StatusMethodNotAllowed, RejectMethod, "POST only", "")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			e.Reject(w, r, http.StatusRequestEntityTooLarge, RejectTooLarge, fmt.Sprintf("body exceeds %d bytes", h.cfg.MaxBody), "")
			return
		}
		e.Reject(w, r, http.StatusBadRequest, RejectMalformed, "reading body failed", "")
		return
	}
	tsHeader := r.Header.Get(h.cfg.TimestampHeader)
	sigHeader := strings.TrimPrefix(strings.TrimSpace(r.Header.Get(h.cfg.SignatureHeader)), "sha256=")
	if tsHeader == "" || sigHeader == "" {
		e.Reject(w, r, http.StatusUnauthorized, RejectUnauthorized, "missing "+h.cfg.TimestampHeader+" or "+h.cfg.SignatureHeader, "")
		return
	}
	ts, err := strconv.ParseInt(tsHeader, 10, 64)
	if err != nil {
		e.Reject(w, r, http.StatusUnauthorized, RejectStale, "timestamp is not unix seconds", "")
		return
	}
	now := h.cfg.Now()
	at := time.Unix(ts, 0)
	if d := now.Sub(at); d > h.cfg.Window || d < -h.cfg.Window {
		e.Reject(w, r, http.StatusUnauthorized, RejectStale, fmt.Sprintf("timestamp outside the %s window", h.cfg.Window), "")
		return
	}
	got, err := hex.DecodeString(sigHeader)
	if err != nil || !hmac.Equal(got, mac(h.cfg.Secret, tsHeader, body)) {
		e.Reject(w, r, http.StatusUnauthorized, RejectBadSignature, "signature does not verify", "")
		return
	}
	// Authentic from here on. Remember the signature until it leaves the window.
	switch h.replay.add(string(got), at.Add(h.cfg.Window), now) {
	case replaySeen:
		e.Reject(w, r, http.StatusConflict, RejectReplayed, "this signed request was already received", "")
		return
	case replayFull:
		w.Header().Set("Retry-After", "60")
		e.Reject(w, r, http.StatusServiceUnavailable, RejectReplayFull, "replay cache full; retry later", "")
		return
	}
	if h.cfg.Nonces != nil {
		// The memory cache answers replays within this process; the store
		// answers those across a restart (kill -9 included: the claim is
		// durable before the report is applied).
		err := h.cfg.Nonces.ClaimNonce(r.Context(), "webhook:"+h.cfg.Source, sha256.Sum256(got), at.Add(h.cfg.Window))
		switch {
		case errors.Is(err, store.ErrExists):
			e.Reject(w, r, http.StatusConflict, RejectReplayed, "this signed request was already received", "")
			return
		case err != nil:
			// Fail closed: without the claim a replay would get through.
			e.Logger().Error("webhook replay claim failed", "err", err)
			w.Header().Set("Retry-After", "5")
			e.Reject(w, r, http.StatusServiceUnavailable, RejectReplayFull, "replay check unavailable; retry later", "")
			return
		}
	}
	rep, err := ParseReport(body)
	if err != nil {
		reason := RejectMalformed
		switch {
		case errors.Is(err, errBadState):
			reason = RejectBadState
		case errors.Is(err, errNoIdentity):
			reason = RejectNoIdentity
		}
		e.Reject(w, r, http.StatusBadRequest, reason, err.Error(), "")
		return
	}
	dev, err := Resolve(r.Context(), h.cfg.Updater, rep.Identities()...)
	if err != nil {
		if errors.Is(err, ErrUnknownDevice) {
			e.Reject(w, r, http.StatusNotFound, RejectUnknownDevice, "no device matches the identities given", firstIdentity(rep))
			return
		}
		e.Reject(w, r, http.StatusInternalServerError, RejectInternal, "device lookup failed", firstIdentity(rep))
		return
	}
	state, _ := ParseState(rep.State)
	d, err := h.cfg.Updater.SetCompliance(r.Context(), dev, state, h.cfg.Source, "mdm:"+h.cfg.Source)
	if err != nil {
		e.Logger().Error("set compliance", "device", dev, "err", err)
		e.Reject(w, r, http.StatusInternalServerError, RejectInternal, "recording compliance failed", dev)
		return
	}
	e.Applied(state)
	e.Logger().Info("compliance reported", "device", dev, "state", state, "mdm_reason", rep.Reason)
	WriteJSON(w, http.StatusOK, map[string]string{"device_id": d.ID, "state": string(d.Posture.State)})
}

func firstIdentity(r *Report) string {
	for _, id := range r.Identities() {
		if id.Value != "" {
			return id.Kind + ":" + id.Value
		}
	}
	return ""
}

// replayCache remembers signatures until their timestamp leaves the window.
// Entries expire in insertion order closely enough (timestamps inside one
// window), so a FIFO with a map is bounded and O(1).
type replayCache struct {
	mu    sync.Mutex
	max   int
	seen  map[string]time.Time
	order []replayEntry
	head  int
}

type replayEntry struct {
	key string
	exp time.Time
}

type replayResult int

const (
	replayNew replayResult = iota
	replaySeen
	replayFull
)

func newReplayCache(max int) *replayCache {
	return &replayCache{max: max, seen: make(map[string]time.Time)}
}

func (c *replayCache) add(key string, exp, now time.Time) replayResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	// Drop expired entries from the front. Timestamps vary inside the
	// window, so an expired entry may wait behind a younger one: at worst it
	// lives one window longer, still bounded by max.
	for c.head < len(c.order) && !now.Before(c.order[c.head].exp) {
		delete(c.seen, c.order[c.head].key)
		c.order[c.head] = replayEntry{}
		c.head++
	}
	if c.head > len(c.order)/2 && c.head > 1024 {
		c.order = append([]replayEntry(nil), c.order[c.head:]...)
		c.head = 0
	}
	if exp0, ok := c.seen[key]; ok && now.Before(exp0) {
		return replaySeen
	}
	if len(c.seen) >= c.max {
		return replayFull
	}
	c.seen[key] = exp
	c.order = append(c.order, replayEntry{key, exp})
	return replayNew
}
