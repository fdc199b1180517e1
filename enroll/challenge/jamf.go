// Package challenge holds hardbound's MDM SCEP challenge providers: the Jamf
// Pro dynamic-challenge webhook (Jamf fetches a one-time challenge per
// device profile) and the Microsoft Intune SCEP validation client (Intune
// mints the challenge; we ask Intune whether a CSR is acceptable).
package challenge

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"hardbound/enroll/scep"
	"hardbound/store"
)

// ErrConfig is wrapped by configuration errors.
var ErrConfig = errors.New("challenge: invalid configuration")

// Minter mints SCEP challenges (*scep.Minter satisfies it).
type Minter interface {
	Mint(ctx context.Context, req scep.MintRequest) (string, *store.Challenge, error)
}

// Limiter rate-limits callers (*limit.Limiter satisfies it).
type Limiter interface {
	Allow(device, ip, profile string) error
}

// jamfMaxBody caps the webhook body; Jamf's SCEPChallenge envelope is < 1 KiB.
const jamfMaxBody = 64 << 10

// JamfConfig configures the Jamf Pro dynamic-challenge webhook.
type JamfConfig struct {
	// Username and Password are the Basic credentials configured in Jamf
	// for the challenge URL. Both are required.
	Username string
	Password string
	// Profile is the SCEP profile the challenges are minted for; its
	// Identity settings bind the device at redemption (e.g. CN =
	// $SERIALNUMBER with alias "serial").
	Profile string
	// TTL of minted challenges; default scep.DefaultChallengeTTL. Jamf
	// fetches the challenge when it builds the profile, so the device may
	// take a while to use it.
	TTL     time.Duration
	Minter  Minter
	Limiter Limiter // optional, called with ("", source IP, Profile)
	Logger  *slog.Logger
}

// Jamf answers Jamf Pro's SCEPChallenge webhook: POST with Basic auth,
// answered with a fresh one-time challenge as text/plain. Jamf sends no
// device identity, so the challenge is bound to the device when the CSR
// redeems it (scep Profile.Identity).
type Jamf struct {
	userSum [32]byte
	passSum [32]byte
	profile string
	ttl     time.Duration
	minter  Minter
	limiter Limiter
	log     *slog.Logger
}

// NewJamf builds the webhook handler.
func NewJamf(cfg JamfConfig) (*Jamf, error) {
	if cfg.Username == "" || cfg.Password == "" {
		return nil, fmt.Errorf("%w: jamf: username and password are required", ErrConfig)
	}
	if cfg.Profile == "" || cfg.Minter == nil {
		return nil, fmt.Errorf("%w: jamf: profile and minter are required", ErrConfig)
	}
	if cfg.TTL < 0 || cfg.TTL > scep.MaxChallengeTTL {
		return nil, fmt.Errorf("%w: jamf: ttl must be in [0, %s]", ErrConfig, scep.MaxChallengeTTL)
	}
	j := &Jamf{
		userSum: sha256.Sum256([]byte(cfg.Username)),
		passSum: sha256.Sum256([]byte(cfg.Password)),
		profile: cfg.Profile,
		ttl:     cfg.TTL,
		minter:  cfg.Minter,
		limiter: cfg.Limiter,
		log:     cfg.Logger,
	}
	if j.log == nil {
		j.log = slog.New(slog.DiscardHandler)
	}
	j.log = j.log.With("component", "enroll", "provider", "jamf")
	return j, nil
}

// jamfEnvelope is the part of Jamf's webhook body we read.
type jamfEnvelope struct {
	Webhook struct {
		WebhookEvent string `json:"webhookEvent"`
		ID           any    `json:"id"`
	} `json:"webhook"`
	Event struct {
		PayloadIdentifier string `json:"payloadIdentifier"`
	} `json:"event"`
}

// ServeHTTP implements the webhook.
func (j *Jamf) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	ip := sourceIP(r)
	if j.limiter != nil {
		if err := j.limiter.Allow("", ip, j.profile); err != nil {
			http.Error(w, "rate limited", http.StatusTooManyRequests)
			return
		}
	}
	if !j.authorized(r) {
		j.log.Warn("Jamf challenge request with bad credentials", "ip", ip)
		w.Header().Set("WWW-Authenticate", `Basic realm="hardbound", charset="UTF-8"`)
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, jamfMaxBody))
	if err != nil {
		http.Error(w, "body too large or unreadable", http.StatusBadRequest)
		return
	}
	// The envelope is read leniently (its exact shape is Jamf's to change),
	// but a body that names another event is a misconfigured webhook.
	var env jamfEnvelope
	if len(strings.TrimSpace(string(body))) > 0 {
		if err := json.Unmarshal(body, &env); err != nil {
			http.Error(w, "body is not JSON", http.StatusBadRequest)
			return
		}
		if ev := env.Webhook.WebhookEvent; ev != "" && !strings.EqualFold(ev, "SCEPChallenge") {
			http.Error(w, "unexpected webhook event", http.StatusBadRequest)
			return
		}
	}
	value, ch, err := j.minter.Mint(r.Context(), scep.MintRequest{
		Profile: j.profile,
		TTL:     j.ttl,
		Source:  scep.SourceJamf,
		Actor:   "mdm:jamf",
	})
	if err != nil {
		j.log.Error("Jamf challenge mint failed", "ip", ip, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	j.log.Info("Jamf challenge issued", "ip", ip, "payload_identifier", truncate(env.Event.PayloadIdentifier, 128),
		"expires", ch.ExpiresAt)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = io.WriteString(w, value)
}

// authorized compares both credentials in constant time (as digests, so
// length does not leak) and always evaluates both.
func (j *Jamf) authorized(r *http.Request) bool {
	user, pass, ok := r.BasicAuth()
	u := sha256.Sum256([]byte(user))
	p := sha256.Sum256([]byte(pass))
	match := subtle.ConstantTimeCompare(u[:], j.userSum[:]) & subtle.ConstantTimeCompare(p[:], j.passSum[:])
	return ok && match == 1
}

func sourceIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
