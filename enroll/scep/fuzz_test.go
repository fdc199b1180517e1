package scep_test

import (
	"bytes"
	"crypto/x509/pkix"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"hardbound/enroll/scep"
	"hardbound/enroll/scep/sceptest"
)

// FuzzPKIOperation feeds arbitrary bodies to POST PKIOperation: the handler
// must answer 200 (a CertRep) or a 4xx, never panic and never 500, since
// every input here is the client's doing.
func FuzzPKIOperation(f *testing.F) {
	e := newEnv(f, nil)
	ctx := f.Context()
	c := e.client("")
	certs, _, err := c.GetCACert(ctx)
	if err != nil {
		f.Fatal(err)
	}
	key := fixtureKey(f, "device.key")
	v := e.mint(scep.MintRequest{DeviceID: "dev1", Profile: "corp"})
	valid, err := sceptest.BuildMessage(certs, sceptest.Request{Key: key, Challenge: v, Subject: pkix.Name{CommonName: "dev1"}})
	if err != nil {
		f.Fatal(err)
	}
	noChallenge, err := sceptest.BuildMessage(certs, sceptest.Request{Key: key, Subject: pkix.Name{CommonName: "dev1"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add(noChallenge)
	f.Add(valid[:len(valid)/2])
	f.Add([]byte{0x30, 0x80, 0x06, 0x09})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/scep?operation=PKIOperation", bytes.NewReader(body))
		req.RemoteAddr = "127.0.0.1:1234"
		rec := httptest.NewRecorder()
		e.handler.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK && (rec.Code < 400 || rec.Code >= 500) {
			t.Fatalf("status %d for %d-byte body: %s", rec.Code, len(body), rec.Body.String())
		}
	})
}

// FuzzPKIOperationGET covers the GET form: message= carries base64 in the
// many spellings clients use.
func FuzzPKIOperationGET(f *testing.F) {
	e := newEnv(f, nil)
	certs, _, err := e.client("").GetCACert(f.Context())
	if err != nil {
		f.Fatal(err)
	}
	key := fixtureKey(f, "device.key")
	valid, err := sceptest.BuildMessage(certs, sceptest.Request{Key: key, Challenge: "x", Subject: pkix.Name{CommonName: "dev1"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(base64.StdEncoding.EncodeToString(valid))
	f.Add(base64.RawURLEncoding.EncodeToString(valid))
	f.Add(strings.ReplaceAll(base64.StdEncoding.EncodeToString(valid), "+", " "))
	f.Add("")
	f.Add("====")
	f.Fuzz(func(t *testing.T, msg string) {
		req := httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/scep?operation=PKIOperation&message="+url.QueryEscape(msg), nil)
		req.RemoteAddr = "127.0.0.1:1234"
		rec := httptest.NewRecorder()
		e.handler.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK && (rec.Code < 400 || rec.Code >= 500) {
			t.Fatalf("status %d for %q", rec.Code, msg)
		}
	})
}
