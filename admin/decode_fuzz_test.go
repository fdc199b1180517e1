package admin

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"hardbound/enroll/attest"
)

// FuzzDecode feeds the API's request decoding what a client may send: a
// body for every request type and the query of a listing. Bad input must
// be errBadRequest (a 400), never a panic; what decodes must encode again.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"reason":"keyCompromise"}`, `{"state":"compliant"}`, `{"name":"ro","scope":"read","expires":"90d"}`,
		`{"device_id":"d","key_sha256":"` + strings.Repeat("ab", 32) + `","ttl":"1h"}`,
		`{"evidence":{},"nonce":"AAAA"}`, `{"device_id":"x","csr":"AAAA","aliases":{"serial":"S"}}`,
		``, `{`, `{"reason":1}`, `[]`, `{"a":1} {"b":2}`, `null`,
	} {
		f.Add([]byte(s), "limit=10&after=x&n=5")
	}
	f.Fuzz(func(t *testing.T, body []byte, rawQuery string) {
		targets := []func() any{
			func() any { return new(RevokeRequest) }, func() any { return new(PostureRequest) },
			func() any { return new(TokenRequest) }, func() any { return new(ChallengeRequest) },
			func() any { return new(AttestRequest) }, func() any { return new(DevEnrollRequest) },
			func() any { return new(attest.TPMActivationRequest) },
		}
		for _, mk := range targets {
			for _, emptyOK := range []bool{false, true} {
				r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(string(body)))
				r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, 1<<16)
				v := mk()
				err := decode(r, v, emptyOK)
				if err != nil {
					if !errors.Is(err, errBadRequest) {
						t.Fatalf("decode %T: error %v is not errBadRequest", v, err)
					}
					continue
				}
				if _, err := json.Marshal(v); err != nil {
					t.Fatalf("decoded %T does not encode: %v", v, err)
				}
			}
		}
		if q, err := url.ParseQuery(rawQuery); err == nil {
			r := httptest.NewRequest(http.MethodGet, "/?"+q.Encode(), nil)
			if p, err := page(r); err == nil && (p.Limit < 0 || p.Limit > 1000) {
				t.Fatalf("page limit %d accepted", p.Limit)
			}
			if _, err := ParseReason(q.Get("after")); err != nil && !errors.Is(err, errBadRequest) {
				t.Fatalf("ParseReason: %v", err)
			}
		}
	})
}
