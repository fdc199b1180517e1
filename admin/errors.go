package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"hardbound/admin/token"
	"hardbound/enroll/attest"
	"hardbound/enroll/ca"
	"hardbound/enroll/devbind"
	"hardbound/enroll/scep"
	"hardbound/posture"
	"hardbound/store"
)

// RetryAfterUnavailable is the Retry-After (seconds, RFC 9110 §10.2.3) of
// a 503 answered because the store's database is away.
const RetryAfterUnavailable = "5"

// errBadRequest marks the API's own refusals of a malformed request.
var errBadRequest = errors.New("admin: bad request")

// classify is the one mapping of errors to an HTTP status and the reason
// a refused action is audited with.
func classify(err error) (status int, reason string) {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		// Before errBadRequest, which decode wraps it in: a body over
		// the limit is 413 (RFC 9110 §15.5.14), not a malformed one.
		return http.StatusRequestEntityTooLarge, "too_large"
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, "not_found"
	case errors.Is(err, posture.ErrInvalid):
		// A change the device's standing forbids (releasing a revoked device).
		return http.StatusConflict, "invalid"
	case errors.Is(err, errBadRequest),
		// Enrollment requests the domain refuses, a TPM flow on a server
		// without TPM attestation (scep.ErrConfig) included.
		errors.Is(err, scep.ErrInvalidRequest), errors.Is(err, scep.ErrConfig), errors.Is(err, scep.ErrNonce),
		errors.Is(err, scep.ErrAttestation), errors.Is(err, attest.ErrBadAttestation),
		errors.Is(err, devbind.ErrInvalid), errors.Is(err, ca.ErrInvalidRequest), errors.Is(err, store.ErrExists),
		errors.Is(err, token.ErrInvalid):
		return http.StatusBadRequest, "invalid"
	case errors.Is(err, token.ErrExists):
		return http.StatusConflict, "exists"
	case errors.Is(err, store.ErrUnavailable):
		// The database is away: nothing was changed, the same request
		// may succeed later (docs/ha.md, "When the database is away").
		return http.StatusServiceUnavailable, "store_unavailable"
	case errors.Is(err, errNoTicketKeys):
		return http.StatusConflict, "resumption_off"
	}
	return http.StatusInternalServerError, "internal"
}

// fail answers err with its status. A 500 is logged and the client sees a
// generic message; a 404 names what was not found.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch code, _ := classify(err); code {
	case http.StatusNotFound:
		writeErr(w, code, notFoundText(r))
	case http.StatusInternalServerError:
		s.log.ErrorContext(r.Context(), "admin request failed", "path", r.URL.Path, "err", err)
		writeErr(w, code, "internal error")
	case http.StatusServiceUnavailable:
		// Logged by the store once per outage, not per request.
		w.Header().Set("Retry-After", RetryAfterUnavailable)
		writeErr(w, code, "database unavailable: nothing was changed, retry later")
	default:
		writeErr(w, code, err.Error())
	}
}

// refuse audits a refused action and answers like fail. An action that
// succeeds is audited by the domain, in the same transaction as its change.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, action, subject string, err error) {
	_, reason := classify(err)
	s.record(r.Context(), &store.AuditEvent{Actor: actorOf(r.Context()), Action: action, Subject: subject,
		Result: "error", Reason: reason, Source: r.RemoteAddr})
	s.fail(w, r, err)
}

// notFoundText says what was not found: the record the path names.
func notFoundText(r *http.Request) string {
	for _, k := range []struct{ key, what string }{{"id", "device"}, {"serial", "certificate"}, {"name", "token"}} {
		if v := r.PathValue(k.key); v != "" {
			return fmt.Sprintf("not found: %s %q", k.what, v)
		}
	}
	return "not found: " + r.URL.Path
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeErr(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, ErrorBody{Error: msg})
}
