package acme

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"hardbound/store"
)

// Problem types (RFC 8555 §6.7, draft-ietf-acme-device-attest §5).
const (
	ProblemAccountDoesNotExist     = "urn:ietf:params:acme:error:accountDoesNotExist"
	ProblemBadAttestationStatement = "urn:ietf:params:acme:error:badAttestationStatement"
	ProblemBadCSR                  = "urn:ietf:params:acme:error:badCSR"
	ProblemBadNonce                = "urn:ietf:params:acme:error:badNonce"
	ProblemBadPublicKey            = "urn:ietf:params:acme:error:badPublicKey"
	ProblemBadSignatureAlgorithm   = "urn:ietf:params:acme:error:badSignatureAlgorithm"
	ProblemMalformed               = "urn:ietf:params:acme:error:malformed"
	ProblemOrderNotReady           = "urn:ietf:params:acme:error:orderNotReady"
	ProblemRateLimited             = "urn:ietf:params:acme:error:rateLimited"
	ProblemRejectedIdentifier      = "urn:ietf:params:acme:error:rejectedIdentifier"
	ProblemServerInternal          = "urn:ietf:params:acme:error:serverInternal"
	ProblemUnauthorized            = "urn:ietf:params:acme:error:unauthorized"
	ProblemUnsupportedIdentifier   = "urn:ietf:params:acme:error:unsupportedIdentifier"
)

// Problem is an RFC 7807 problem document as ACME uses it. It is also the
// error type the handlers pass around, so the wire form is decided once.
type Problem struct {
	Type        string       `json:"type"`
	Detail      string       `json:"detail,omitempty"`
	Status      int          `json:"status,omitempty"`
	Subproblems []Subproblem `json:"subproblems,omitempty"`

	// retryAfter, when set, becomes a Retry-After header (rateLimited).
	retryAfter time.Duration
	// reason is the bounded metric/audit label for this refusal.
	reason string
}

// Subproblem names the identifier a problem is about (RFC 8555 §6.7.1).
type Subproblem struct {
	Type       string      `json:"type"`
	Detail     string      `json:"detail,omitempty"`
	Identifier *Identifier `json:"identifier,omitempty"`
}

func (p *Problem) Error() string { return fmt.Sprintf("acme: %s: %s", p.Type, p.Detail) }

func problem(typ string, status int, reason, format string, args ...any) *Problem {
	return &Problem{Type: typ, Status: status, reason: reason, Detail: fmt.Sprintf(format, args...)}
}

func malformed(format string, args ...any) *Problem {
	return problem(ProblemMalformed, http.StatusBadRequest, "malformed", format, args...)
}

func unauthorized(format string, args ...any) *Problem {
	return problem(ProblemUnauthorized, http.StatusForbidden, "unauthorized", format, args...)
}

func serverInternal(format string, args ...any) *Problem {
	return problem(ProblemServerInternal, http.StatusInternalServerError, "error", format, args...)
}

// retryUnavailable is the Retry-After of a 503 answered while the
// store's database is away.
const retryUnavailable = 5 * time.Second

// internalErr is serverInternal for err, except for a store whose
// database is away: 503 with Retry-After, which tells the client that
// nothing was done and the same request may succeed later (RFC 9110
// §15.6.4; RFC 8555 §6.6 uses the pair the same way for rate limits).
func internalErr(err error, format string, args ...any) *Problem {
	if errors.Is(err, store.ErrUnavailable) {
		p := problem(ProblemServerInternal, http.StatusServiceUnavailable, "store_unavailable", "database unavailable, retry later")
		p.retryAfter = retryUnavailable
		return p
	}
	return serverInternal(format, args...)
}

func notFound(what string) *Problem {
	return problem(ProblemMalformed, http.StatusNotFound, "not_found", "%s not found", what)
}

func writeProblem(w http.ResponseWriter, p *Problem) {
	if p.Status == 0 {
		p.Status = http.StatusBadRequest
	}
	if p.retryAfter > 0 {
		secs := int64((p.retryAfter + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
