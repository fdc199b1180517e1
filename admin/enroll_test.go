package admin_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"hardbound/admin"
	"hardbound/enroll/attest"
	"hardbound/enroll/devbind"
	"hardbound/enroll/scep"
	"hardbound/posture"
	"hardbound/store"
)

// The domain types cmd/hardbound wires in are the API's deps.
var (
	_ admin.Store       = store.Store(nil)
	_ admin.Standing    = (*posture.Service)(nil)
	_ admin.Minter      = (*scep.Minter)(nil)
	_ admin.TPMAttester = (*scep.Minter)(nil)
	_ admin.DevEnroller = (*devbind.Enroller)(nil)
)

type fakeMinter struct {
	mint func(context.Context, scep.MintRequest) (string, *store.Challenge, error)
}

func (f fakeMinter) Mint(ctx context.Context, r scep.MintRequest) (string, *store.Challenge, error) {
	return f.mint(ctx, r)
}

type fakeTPM struct {
	activate func(context.Context, attest.TPMActivationRequest) (*attest.TPMActivation, error)
	mint     func(context.Context, attest.TPMEvidence, []byte, scep.MintRequest) (string, *store.Challenge, *store.Attestation, error)
}

func (f fakeTPM) ActivateTPM(ctx context.Context, r attest.TPMActivationRequest) (*attest.TPMActivation, error) {
	return f.activate(ctx, r)
}

func (f fakeTPM) MintFromTPM(ctx context.Context, ev attest.TPMEvidence, nonce []byte, r scep.MintRequest) (string, *store.Challenge, *store.Attestation, error) {
	return f.mint(ctx, ev, nonce, r)
}

type fakeDev struct {
	enroll func(context.Context, *x509.CertificateRequest, devbind.Request) (*devbind.Device, error)
}

func (f fakeDev) Enroll(ctx context.Context, csr *x509.CertificateRequest, r devbind.Request) (*devbind.Device, error) {
	return f.enroll(ctx, csr, r)
}

// enrollFakes answer by the request's device id: "refused-*" with a domain
// refusal, "broken" with an internal error, anything else with success.
type enrollFakes struct {
	lastMint scep.MintRequest
	lastDev  devbind.Request
}

var errDisk = errors.New("disk on fire")

func (f *enrollFakes) deps(d *admin.Deps) {
	key := store.HashChallenge("key")
	challenge := func(r scep.MintRequest) *store.Challenge {
		return &store.Challenge{DeviceID: r.DeviceID, KeySHA256: r.KeySHA256, Profile: r.Profile, ExpiresAt: time.Unix(1e9, 0).UTC()}
	}
	refusal := func(id string) error {
		switch id {
		case "refused-invalid":
			return fmt.Errorf("%w: unknown profile", scep.ErrInvalidRequest)
		case "refused-nonce":
			return fmt.Errorf("%w: nonce already used", scep.ErrNonce)
		case "refused-attestation":
			return fmt.Errorf("%w: %w", scep.ErrAttestation, attest.ErrBadAttestation)
		case "refused-exists":
			return fmt.Errorf("devbind: record: %w", store.ErrExists)
		case "refused-devbind":
			return fmt.Errorf("%w: format %q", devbind.ErrInvalid, "floppy")
		case "broken":
			return errDisk
		}
		return nil
	}
	d.Challenges = fakeMinter{mint: func(_ context.Context, r scep.MintRequest) (string, *store.Challenge, error) {
		f.lastMint = r
		if err := refusal(r.DeviceID); err != nil {
			return "", nil, err
		}
		return "the-challenge", challenge(r), nil
	}}
	d.TPM = fakeTPM{
		activate: func(_ context.Context, r attest.TPMActivationRequest) (*attest.TPMActivation, error) {
			if err := refusal(string(r.EKCert)); err != nil {
				return nil, err
			}
			return &attest.TPMActivation{Credential: []byte("cred"), Secret: []byte("secret")}, nil
		},
		mint: func(_ context.Context, ev attest.TPMEvidence, nonce []byte, r scep.MintRequest) (string, *store.Challenge, *store.Attestation, error) {
			f.lastMint = r
			if err := refusal(string(ev.EKCert)); err != nil {
				return "", nil, nil, err
			}
			r.DeviceID, r.KeySHA256 = "ek-"+string(nonce), key
			return "tpm-challenge", challenge(r), &store.Attestation{}, nil
		},
	}
	d.DevEnroll = fakeDev{enroll: func(_ context.Context, csr *x509.CertificateRequest, r devbind.Request) (*devbind.Device, error) {
		f.lastDev = r
		if err := refusal(r.DeviceID); err != nil {
			return nil, err
		}
		return &devbind.Device{ID: r.DeviceID, Binding: &store.Cert{Serial: "abc"}}, nil
	}}
}

func csrBase64(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(der)
}

// TestEnrollEndpoints: requests are decoded strictly, handed to the deps as
// domain requests, answered 201 with the API's types, and refusals map to
// their status and are audited.
func TestEnrollEndpoints(t *testing.T) {
	t.Parallel()
	f := &enrollFakes{}
	e, _ := newEnv(t, f.deps)
	csr := csrBase64(t)
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		name, path, body string
		want             int
		contains         string
		audited          string // the refused action's audit event; empty: none
	}{
		{"ok/challenge", "/api/v1/scep/challenges", `{"device_id":"d1","ttl":"5m"}`, 201, `"challenge": "the-challenge"`, ""},
		{"fail/challenge-no-device", "/api/v1/scep/challenges", `{"profile":"corp"}`, 400, "device_id is required", ""},
		{"fail/challenge-unknown-field", "/api/v1/scep/challenges", `{"device_id":"d1","x":1}`, 400, "unknown field", ""},
		{"fail/challenge-bad-key", "/api/v1/scep/challenges", `{"device_id":"d1","key_sha256":"zz"}`, 400, "", ""},
		{"fail/challenge-ttl", "/api/v1/scep/challenges", `{"device_id":"d1","ttl":"soon"}`, 400, "ttl", "scep.challenge"},
		{"fail/challenge-refused", "/api/v1/scep/challenges", `{"device_id":"refused-invalid"}`, 400, "unknown profile", "scep.challenge"},
		{"fail/challenge-internal", "/api/v1/scep/challenges", `{"device_id":"broken"}`, 500, "internal error", "scep.challenge"},

		{"ok/activate", "/api/v1/attestations/activate", `{"ek_cert":"` + b64("ek") + `","ak":{}}`, 201, `"credential": "` + b64("cred") + `"`, ""},
		{"fail/activate-refused", "/api/v1/attestations/activate", `{"ek_cert":"` + b64("refused-attestation") + `","ak":{}}`, 400, "attestation", "attestation.activate"},
		{"fail/activate-empty", "/api/v1/attestations/activate", ``, 400, "empty body", "attestation.activate"},

		{"ok/attest", "/api/v1/attestations", `{"evidence":{"ek_cert":"` + b64("ek") + `","ak":{},"key":{}},"nonce":"` + b64("n1") + `"}`, 201, `"device_id": "ek-n1"`, ""},
		{"fail/attest-replayed", "/api/v1/attestations", `{"evidence":{"ek_cert":"` + b64("refused-nonce") + `","ak":{},"key":{}},"nonce":"` + b64("n1") + `"}`, 400, "nonce", "attestation.verify"},
		{"fail/attest-trailing", "/api/v1/attestations", `{"nonce":""} {}`, 400, "trailing data", "attestation.verify"},
		{"fail/attest-ttl", "/api/v1/attestations", `{"nonce":"","ttl":"-"}`, 400, "ttl", "attestation.verify"},

		{"ok/dev", "/api/v1/dev/devices", `{"device_id":"d2","csr":"` + csr + `","format":"apple","posture":"compliant"}`, 201, `"serial": "abc"`, ""},
		{"fail/dev-csr-base64", "/api/v1/dev/devices", `{"device_id":"d2","csr":"%%%"}`, 400, "csr", "dev.enroll"},
		{"fail/dev-csr-der", "/api/v1/dev/devices", `{"device_id":"d2","csr":"` + b64("not DER") + `"}`, 400, "csr", "dev.enroll"},
		{"fail/dev-refused", "/api/v1/dev/devices", `{"device_id":"refused-devbind","csr":"` + csr + `"}`, 400, "floppy", "dev.enroll"},
		{"fail/dev-exists", "/api/v1/dev/devices", `{"device_id":"refused-exists","csr":"` + csr + `"}`, 400, "exists", "dev.enroll"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := refusals(t, e, tc.audited)
			code, body := e.call(t, "POST", tc.path, token, tc.body)
			if code != tc.want || !strings.Contains(body, tc.contains) {
				t.Fatalf("HTTP %d %s; want %d containing %q", code, body, tc.want, tc.contains)
			}
			if code >= 300 {
				var eb admin.ErrorBody
				if err := json.Unmarshal([]byte(body), &eb); err != nil || eb.Error == "" {
					t.Errorf("error body %s: %v", body, err)
				}
			}
			if tc.audited != "" && refusals(t, e, tc.audited) != before+1 {
				t.Errorf("refusal not audited as %s", tc.audited)
			}
		})
	}

	t.Run("ok/challenge_request_reaches_the_minter", func(t *testing.T) {
		var ch admin.ChallengeResponse
		code, body := e.call(t, "POST", "/api/v1/scep/challenges", token, `{"device_id":"d3","key_sha256":"`+store.HashChallenge("k").String()+`","profile":"corp","ttl":"5m"}`)
		if code != 201 || json.Unmarshal([]byte(body), &ch) != nil {
			t.Fatalf("HTTP %d %s", code, body)
		}
		want := scep.MintRequest{DeviceID: "d3", KeySHA256: store.HashChallenge("k"), Profile: "corp", TTL: 5 * time.Minute,
			Source: scep.SourceAdmin, Actor: "admin:ops"}
		if f.lastMint != want {
			t.Errorf("MintRequest = %+v, want %+v", f.lastMint, want)
		}
		if ch.Challenge != "the-challenge" || ch.DeviceID != "d3" || ch.KeySHA256 != store.HashChallenge("k").String() || ch.Profile != "corp" {
			t.Errorf("answer %+v", ch)
		}
	})
	t.Run("ok/dev_request_reaches_the_enroller", func(t *testing.T) {
		var out admin.DevEnrollResponse
		code, body := e.call(t, "POST", "/api/v1/dev/devices", token, `{"device_id":"d4","csr":"`+csr+`","format":"tpm","profile":"p","posture":"unknown","validity":"2h","unbound":true,"aliases":{"serial":"S4"}}`)
		if code != 201 || json.Unmarshal([]byte(body), &out) != nil {
			t.Fatalf("HTTP %d %s", code, body)
		}
		want := devbind.Request{DeviceID: "d4", Format: "tpm", Profile: "p", Posture: store.ComplianceUnknown,
			Validity: 2 * time.Hour, NoBinding: true, Aliases: map[string]string{"serial": "S4"}}
		if !reflect.DeepEqual(f.lastDev, want) {
			t.Errorf("devbind.Request = %+v, want %+v", f.lastDev, want)
		}
		if out.DeviceID != "d4" || out.Serial != "abc" {
			t.Errorf("answer %+v", out)
		}
	})
}

// TestDevEnrollAnswersTheChain: the answer carries the issued chain as PEM,
// leaf first.
func TestDevEnrollAnswersTheChain(t *testing.T) {
	t.Parallel()
	var bound *devbind.Device // newEnv's device, the enroller's answer
	e, d := newEnv(t, func(deps *admin.Deps) {
		deps.DevEnroll = fakeDev{enroll: func(context.Context, *x509.CertificateRequest, devbind.Request) (*devbind.Device, error) {
			return bound, nil
		}}
	})
	bound = d
	code, body := e.call(t, "POST", "/api/v1/dev/devices", token, `{"device_id":"dev-1","csr":"`+csrBase64(t)+`"}`)
	var out admin.DevEnrollResponse
	if code != 201 || json.Unmarshal([]byte(body), &out) != nil {
		t.Fatalf("HTTP %d %s", code, body)
	}
	var chain []*x509.Certificate
	rest := []byte(out.Certificate)
	for {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			break
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		chain = append(chain, c)
	}
	if len(chain) != 2 || !chain[0].Equal(d.Leaf) || out.Serial != d.Binding.Serial || out.DeviceID != d.ID {
		t.Fatalf("answer %+v: %d certificates", out, len(chain))
	}
}

// refusals counts the audit events of refused action by admin:ops.
func refusals(t *testing.T, e *env, action string) int {
	t.Helper()
	if action == "" {
		return 0
	}
	evs, err := e.st.TailAudit(e.ctx, 1000)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ev := range evs {
		if ev.Action == action && ev.Actor == "admin:ops" && ev.Result == "error" && ev.Reason != "" {
			n++
		}
	}
	return n
}
