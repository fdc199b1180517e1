package challenge_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"hardbound/enroll/challenge"
	"hardbound/enroll/scep"
	"hardbound/store"
)

type fakeMinter struct{}

func (fakeMinter) Mint(_ context.Context, req scep.MintRequest) (string, *store.Challenge, error) {
	return strings.Repeat("ab", 32), &store.Challenge{Profile: req.Profile, ExpiresAt: time.Now().Add(time.Minute)}, nil
}

// FuzzJamfWebhook sends arbitrary authenticated bodies: the handler must
// answer 200 or 400, never panic or fail internally.
func FuzzJamfWebhook(f *testing.F) {
	j, err := challenge.NewJamf(challenge.JamfConfig{Username: "u", Password: "p", Profile: "jamf", Minter: fakeMinter{}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(jamfBody))
	f.Add([]byte(`{"webhook":{"webhookEvent":"ComputerAdded"}}`))
	f.Add([]byte(`{"webhook":{"id":"x","webhookEvent":null},"event":[]}`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/jamf", bytes.NewReader(body))
		req.SetBasicAuth("u", "p")
		rec := httptest.NewRecorder()
		j.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK && rec.Code != http.StatusBadRequest {
			t.Fatalf("status %d for %q", rec.Code, body)
		}
	})
}

// roundTripFunc answers every request from a function.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// FuzzIntuneResponse feeds arbitrary service answers to the Intune client:
// only the exact code "Success" may validate, nothing may panic.
func FuzzIntuneResponse(f *testing.F) {
	f.Add([]byte(`{"code":"Success","errorDescription":""}`), 200)
	f.Add([]byte(`{"code":"ChallengeExpired","errorDescription":"expired"}`), 200)
	f.Add([]byte(`{"code":"success"}`), 200)
	f.Add([]byte(`{"code":["Success"]}`), 200)
	f.Add([]byte(`not json`), 500)
	f.Fuzz(func(t *testing.T, body []byte, status int) {
		if status < 100 || status > 599 {
			return
		}
		tr := roundTripFunc(func(r *http.Request) (*http.Response, error) {
			b := body
			code := status
			if strings.HasSuffix(r.URL.Path, "/token") {
				b, code = []byte(`{"access_token":"t","expires_in":3600}`), 200
			}
			return &http.Response{StatusCode: code, Body: io.NopCloser(bytes.NewReader(b)), Header: http.Header{}, Request: r}, nil
		})
		c, err := challenge.NewIntune(challenge.IntuneConfig{TenantID: "t", ClientID: "c", ClientSecret: "s",
			LoginURL: "https://login.test", ValidationURL: "https://intune.test/svc", HTTPClient: &http.Client{Transport: tr}})
		if err != nil {
			t.Fatal(err)
		}
		err = c.Validate(t.Context(), "txn", []byte{0x30, 0x00})
		ok := status/100 == 2 && bytes.Contains(body, []byte(`"Success"`))
		if err == nil && !ok {
			t.Fatalf("validated with status %d body %q", status, body)
		}
	})
}
