package est_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"hardbound/enroll/est"
)

// FuzzParseCSRBody: any body is a CSR or an error, never a panic.
func FuzzParseCSRBody(f *testing.F) {
	f.Add(newCSRF(f))
	f.Add([]byte("MIIB\n\r\n"))
	f.Add([]byte{0x30, 0x82})
	f.Fuzz(func(t *testing.T, b []byte) {
		csr, err := est.ParseCSRBody(b)
		if err == nil && csr == nil {
			t.Fatal("nil CSR without error")
		}
	})
}

// FuzzEnrollBody: the whole simpleenroll handler, against a real store,
// answers any body with an HTTP status (no panic).
func FuzzEnrollBody(f *testing.F) {
	f.Add(newCSRF(f))
	f.Add([]byte("!!"))
	f.Add(csrWithPassword(f, key(f), "c29tZXRoaW5nIGVsc2U="))
	h := newHandler(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		req := httptest.NewRequest(http.MethodPost, "/.well-known/est/simpleenroll", bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/pkcs10")
		req.SetBasicAuth("dev1", "nope")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code == 200 || w.Code >= 500 {
			t.Fatalf("status %d for a bad challenge", w.Code)
		}
	})
}

func newCSRF(f *testing.F) []byte { return newCSR(f, key(f)) }
