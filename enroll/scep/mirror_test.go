package scep_test

import (
	"crypto/rsa"
	"crypto/x509/pkix"
	"errors"
	"strings"
	"testing"
	"time"

	smscep "github.com/smallstep/scep"

	"hardbound/enroll/scep"
	"hardbound/enroll/scep/sceptest"
	"hardbound/posture"
	"hardbound/store"
)

// TestIssuanceMirrorsAuthentication: SCEP issues exactly the certificates
// the same profile admits at authentication. A refusal carries failInfo
// badRequest, a failInfoText that names the reason, an audit event and no
// binding; an issuance records Attested only for a verified attestation of
// the CSR key.
func TestIssuanceMirrorsAuthentication(t *testing.T) {
	t.Parallel()
	type setup func(t *testing.T, e *env, key *rsa.PrivateKey) string // returns the challenge
	adminChallenge := func(profile string) setup {
		return func(t *testing.T, e *env, _ *rsa.PrivateKey) string {
			return e.mint(scep.MintRequest{DeviceID: "dev1", Profile: profile})
		}
	}
	// An admin may bind a challenge to a key; that proves nothing about
	// the hardware the key lives in.
	keyBound := func(profile string) setup {
		return func(t *testing.T, e *env, key *rsa.PrivateKey) string {
			return e.mint(scep.MintRequest{DeviceID: "dev1", Profile: profile, KeySHA256: keyHash(t, key)})
		}
	}
	attested := func(profile, format string) setup {
		return func(t *testing.T, e *env, key *rsa.PrivateKey) string {
			kh := keyHash(t, key)
			if err := e.store.PutAttestation(t.Context(), &store.Attestation{V: 1, ID: "att1", DeviceID: "dev1", Format: format, KeySHA256: kh, VerifiedAt: time.Now()}); err != nil {
				t.Fatal(err)
			}
			return e.mint(scep.MintRequest{DeviceID: "dev1", Profile: profile, KeySHA256: kh, AttestationID: "att1", Source: scep.SourceAttestation})
		}
	}
	// A challenge naming an attestation that is not in the store (deleted,
	// or a forged id) is not an attestation.
	danglingAttestation := func(profile string) setup {
		return func(t *testing.T, e *env, key *rsa.PrivateKey) string {
			return e.mint(scep.MintRequest{DeviceID: "dev1", Profile: profile, KeySHA256: keyHash(t, key), AttestationID: "gone"})
		}
	}
	tests := []struct {
		name    string
		profile string
		setup   setup
		// reason is the refusal, "" for an issuance; attested and format
		// describe the issued binding.
		reason   scep.Reason
		attested bool
	}{
		{"reject/strict_plain_challenge", "strict", adminChallenge("strict"), scep.ReasonUnattested, false},
		{"reject/strict_key_bound_without_attestation", "strict", keyBound("strict"), scep.ReasonUnattested, false},
		{"reject/strict_dangling_attestation", "strict", danglingAttestation("strict"), scep.ReasonUnattested, false},
		{"reject/apple_only_tpm_attested", "apple-only", attested("apple-only", "tpm"), scep.ReasonFormatNotAllowed, false},
		{"reject/require_attestation_key_bound", "attested", keyBound("attested"), scep.ReasonAttestationRequired, false},
		{"ok/strict_tpm_attested", "strict", attested("strict", "tpm"), "", true},
		{"ok/migration_key_bound_unattested", "corp", keyBound("corp"), "", false},
		{"ok/migration_plain_challenge", "corp", adminChallenge("corp"), "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, nil)
			key := newKey(t)
			ch := tc.setup(t, e, key)
			cert, err := e.client(tc.profile).Enroll(t.Context(), sceptest.Request{Key: key, Challenge: ch, Subject: pkix.Name{CommonName: "dev1"}})
			if tc.reason != "" {
				var f *sceptest.Failure
				if !errors.As(err, &f) {
					t.Fatalf("want CertRep FAILURE, got cert=%v err=%v", cert != nil, err)
				}
				if f.FailInfo != smscep.BadRequest || !strings.HasPrefix(f.Text, string(tc.reason)+": ") {
					t.Errorf("failure %+v, want badRequest with text %q...", f, tc.reason)
				}
				ev := e.lastAudit()
				if ev.Result != "reject" || !strings.HasPrefix(ev.Reason, string(tc.reason)) || ev.Subject != "dev1" {
					t.Errorf("audit %+v, want reject %s for dev1", ev, tc.reason)
				}
				certs, _, err := e.store.ListCerts(t.Context(), store.CertFilter{}, store.Page{})
				if err != nil || len(certs) != 0 {
					t.Errorf("bindings after refusal: %d, %v", len(certs), err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			b, err := e.store.GetCert(t.Context(), store.HashCert(cert))
			if err != nil {
				t.Fatal(err)
			}
			if b.Attested != tc.attested || (b.AttestationID != "") != tc.attested {
				t.Errorf("binding attested=%t id=%q, want attested=%t", b.Attested, b.AttestationID, tc.attested)
			}
		})
	}
}

// TestReasonsMatchPosture: the refusal reasons that mirror the
// authentication decision use posture's words for the same outcome, so an
// operator sees one name in the SCEP audit event and the RADIUS one.
func TestReasonsMatchPosture(t *testing.T) {
	t.Parallel()
	if string(scep.ReasonUnattested) != string(posture.ReasonUnattested) {
		t.Errorf("unattested: scep %q, posture %q", scep.ReasonUnattested, posture.ReasonUnattested)
	}
	if string(scep.ReasonFormatNotAllowed) != string(posture.ReasonAttestationNotAllowed) {
		t.Errorf("format: scep %q, posture %q", scep.ReasonFormatNotAllowed, posture.ReasonAttestationNotAllowed)
	}
}
