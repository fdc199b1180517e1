package acme

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"hardbound/store"
)

// A store whose database is away is a 503 problem with Retry-After, any
// other store failure stays serverInternal 500.
func TestInternalErrUnavailable(t *testing.T) {
	for _, tc := range []struct {
		err        error
		status     int
		retryAfter bool
	}{
		{fmt.Errorf("get account: %w", store.ErrUnavailable), http.StatusServiceUnavailable, true},
		{errors.New("disk on fire"), http.StatusInternalServerError, false},
	} {
		rec := httptest.NewRecorder()
		writeProblem(rec, internalErr(tc.err, "account lookup failed"))
		if rec.Code != tc.status || (rec.Header().Get("Retry-After") != "") != tc.retryAfter {
			t.Errorf("%v: HTTP %d Retry-After %q, want %d (Retry-After %v)", tc.err, rec.Code, rec.Header().Get("Retry-After"), tc.status, tc.retryAfter)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("%v: Content-Type %q", tc.err, ct)
		}
	}
}
