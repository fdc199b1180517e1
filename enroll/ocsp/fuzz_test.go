package ocsp_test

import (
	"crypto"
	"testing"

	"hardbound/enroll/ocsp"
)

// FuzzParseRequest: any bytes give a parsed request or ErrMalformed, never
// a panic, and a parsed request's fields are within their bounds.
func FuzzParseRequest(f *testing.F) {
	fx := newFixture(f, ocsp.Config{})
	d := fx.bind(f, "dev1", "")
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA512} {
		der := request(f, d.Leaf, fx.ca.Issuing(), h)
		f.Add(der)
		f.Add(withNonce(f, der, []byte("nonce")))
	}
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ocsp.ParseRequest(b)
		if err != nil {
			return
		}
		if r.Serial.Sign() <= 0 || len(r.IssuerKeyHash) != r.Hash.Size() || len(r.Nonce) > ocsp.MaxNonceLen+4 {
			t.Fatalf("parsed out of bounds: %+v", r)
		}
	})
}

// FuzzRespond: the whole responder, against a real store, answers any
// bytes with a response.
func FuzzRespond(f *testing.F) {
	fx := newFixture(f, ocsp.Config{Posture: true})
	d := fx.bind(f, "dev1", "")
	f.Add(request(f, d.Leaf, fx.ca.Issuing(), crypto.SHA1))
	f.Fuzz(func(t *testing.T, b []byte) {
		if resp, _ := fx.resp.Respond(t.Context(), b); len(resp) == 0 {
			t.Fatal("empty response")
		}
	})
}
