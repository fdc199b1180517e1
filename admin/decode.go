package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"time"

	"hardbound/store"
)

// decode reads a JSON body strictly: unknown fields and trailing data are
// errors; an empty body is allowed only when emptyOK. The body is already
// bounded by the Server's maxBody.
func decode(r *http.Request, v any, emptyOK bool) error {
	b, err := io.ReadAll(r.Body)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return fmt.Errorf("%w: body larger than %d bytes: %w", errBadRequest, mbe.Limit, mbe)
	}
	if err != nil {
		return fmt.Errorf("%w: read body: %v", errBadRequest, err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		if emptyOK {
			return nil
		}
		return fmt.Errorf("%w: empty body", errBadRequest)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", errBadRequest, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: trailing data after JSON", errBadRequest)
	}
	return nil
}

// page reads the ?after= cursor and ?limit= of a listing.
func page(r *http.Request) (store.Page, error) {
	p := store.Page{After: r.URL.Query().Get("after")}
	if l := r.URL.Query().Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			return p, fmt.Errorf("%w: limit must be 1..1000", errBadRequest)
		}
		p.Limit = n
	}
	return p, nil
}

// parseTTL reads a challenge lifetime (a Go duration); "" is the minter's
// default.
func parseTTL(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%w: ttl: %v", errBadRequest, err)
	}
	return d, nil
}

// crlReasons are the RFC 5280 §5.3.1 CRLReason codes by name.
var crlReasons = map[string]int{
	"unspecified": 0, "keyCompromise": 1, "cACompromise": 2, "affiliationChanged": 3,
	"superseded": 4, "cessationOfOperation": 5, "certificateHold": 6,
	"privilegeWithdrawn": 9, "aACompromise": 10,
}

// CRLReason is an RFC 5280 reason: its code and name.
type CRLReason struct {
	Code int
	Name string
}

// CRLReasons lists the reasons a revocation may give, by code.
func CRLReasons() []CRLReason {
	out := make([]CRLReason, 0, len(crlReasons))
	for n, c := range crlReasons {
		out = append(out, CRLReason{Code: c, Name: n})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Code < out[j].Code })
	return out
}

// CRLReasonName is the name of an RFC 5280 reason code ("" if none).
func CRLReasonName(code int) string {
	for n, c := range crlReasons {
		if c == code {
			return n
		}
	}
	return ""
}

// ParseReason turns a reason name or number into an RFC 5280 code.
func ParseReason(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	if n, ok := crlReasons[s]; ok {
		return n, nil
	}
	if n, err := strconv.Atoi(s); err == nil && n >= 0 && n <= 10 && n != 7 && n != 8 {
		return n, nil
	}
	return 0, fmt.Errorf("%w: unknown revocation reason %q", errBadRequest, s)
}
