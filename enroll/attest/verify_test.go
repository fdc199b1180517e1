package attest_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"hardbound/enroll/attest"
	"hardbound/enroll/attest/attesttest"
	"hardbound/store"
)

const (
	token   = "Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0"
	keyAuth = token + ".aGVsbG8td29ybGQtdGh1bWJwcmludC12YWx1ZQ"
	serial  = "C02XYZ123ABC"
	udid    = "00008030-001A2B3C4D5E6F70"
)

var (
	authOnce sync.Once
	authA    *attesttest.Authority
	authB    *attesttest.Authority
	authErr  error
)

// authorities are shared: making P-384 CAs per test would dominate runtime.
func authorities(t *testing.T) (*attesttest.Authority, *attesttest.Authority) {
	t.Helper()
	authOnce.Do(func() {
		if authA, authErr = attesttest.NewAuthority(); authErr != nil {
			return
		}
		authB, authErr = attesttest.NewAuthority()
	})
	if authErr != nil {
		t.Fatal(authErr)
	}
	return authA, authB
}

func p256(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// musts returns a helper that fails t on error.
func musts(t *testing.T) func([]byte, error) []byte {
	return func(b []byte, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
}

func keyHash(t *testing.T, pub crypto.PublicKey) store.Hash {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return store.HashKey(der)
}

// mutate decodes attObj, lets fn change it and re-encodes it.
func mutate(t *testing.T, attObj []byte, fn func(m map[string]any)) []byte {
	t.Helper()
	dm, _ := cbor.DecOptions{DefaultMapType: mapType}.DecMode()
	var m map[string]any
	if err := dm.Unmarshal(attObj, &m); err != nil {
		t.Fatal(err)
	}
	fn(m)
	b, err := cbor.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var mapType = reflect.TypeOf(map[string]any(nil))

func stmt(m map[string]any) map[string]any { return m["attStmt"].(map[string]any) }

func x5c(m map[string]any) []any { return stmt(m)["x5c"].([]any) }

func flipLastByte(b []byte) []byte {
	c := bytes.Clone(b)
	c[len(c)-1] ^= 0xff
	return c
}

func TestVerifyACME(t *testing.T) {
	t.Parallel()
	a, b := authorities(t)
	must := musts(t)
	now := time.Now()
	dev := p256(t)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	other := p256(t)
	minus := func(i int) *int { return &i }

	apple := must(a.Apple(dev.Public(), serial, udid, keyAuth))
	tpm := must(a.TPM(dev.Public(), serial, keyAuth))
	android := must(a.Android(dev, serial, keyAuth))

	type tc struct {
		attObj   []byte
		keyAuth  string
		roots    attest.Roots
		clock    time.Time
		wantErr  string // substring; "" = success
		wantKey  crypto.PublicKey
		wantID   string
		notConf  bool
		wantFact map[string]string
	}
	tests := map[string]tc{
		"ok/apple":             {attObj: apple, wantKey: dev.Public(), wantID: serial, wantFact: map[string]string{"os_version": "18.1", "sepos_version": "18.1.0"}},
		"ok/apple-udid-only":   {attObj: must(a.Apple(dev.Public(), "", udid, keyAuth)), wantKey: dev.Public(), wantID: udid},
		"ok/tpm":               {attObj: tpm, wantKey: dev.Public(), wantID: serial, wantFact: map[string]string{"tpm_model": "attesttest"}},
		"ok/tpm-rsa-key":       {attObj: must(a.TPM(&rsaKey.PublicKey, serial, keyAuth)), wantKey: &rsaKey.PublicKey, wantID: serial},
		"ok/tpm-raw-sig":       {attObj: must(a.TPMWith(dev.Public(), serial, keyAuth, attesttest.TPMOptions{RawSig: true})), wantKey: dev.Public(), wantID: serial},
		"ok/android":           {attObj: android, wantKey: dev.Public(), wantID: serial, wantFact: map[string]string{"security_level": "tee", "model": "Pixel 9"}},
		"ok/android-rsa":       {attObj: must(a.Android(rsaKey, serial, keyAuth)), wantKey: &rsaKey.PublicKey, wantID: serial},
		"ok/android-no-root":   {attObj: must(a.AndroidWith(dev, serial, keyAuth, attesttest.AndroidOptions{OmitRoot: true})), wantKey: dev.Public(), wantID: serial},
		"ok/android-strongbox": {attObj: must(a.AndroidWith(dev, serial, keyAuth, attesttest.AndroidOptions{SecurityLevel: minus(2)})), wantKey: dev.Public(), wantID: serial},

		// wrong nonce
		"fail/apple-wrong-nonce":   {attObj: apple, keyAuth: "othertoken." + strings.Split(keyAuth, ".")[1], wantErr: "nonce does not match"},
		"fail/apple-missing-nonce": {attObj: must(a.AppleWith(dev.Public(), serial, udid, keyAuth, attesttest.AppleOptions{OmitNonce: true})), wantErr: "nonce extension"},
		"fail/tpm-wrong-nonce":     {attObj: tpm, keyAuth: token + ".b3RoZXI", wantErr: "extraData does not match"},
		"fail/tpm-tpm2tools-nonce": {attObj: must(a.TPMWith(dev.Public(), serial, keyAuth, attesttest.TPMOptions{ExtraData: []byte{0x00, 0xff, 0x55, 0xaa}})), wantErr: "extraData does not match"},
		"fail/android-wrong-nonce": {attObj: android, keyAuth: token + ".b3RoZXI", wantErr: "sig over the key authorization"},
		"fail/android-wrong-chal":  {attObj: must(a.AndroidWith(dev, serial, keyAuth, attesttest.AndroidOptions{Challenge: []byte("x.y")})), wantErr: "attestationChallenge does not match"},
		"fail/keyauth-malformed":   {attObj: apple, keyAuth: "no-dot-here", wantErr: "token.thumbprint"},
		// wrong root
		"fail/apple-wrong-root":    {attObj: apple, roots: b.Roots(), wantErr: "chain does not verify"},
		"fail/apple-real-root":     {attObj: apple, roots: attest.Roots{}, wantErr: "chain does not verify"},
		"fail/tpm-wrong-root":      {attObj: tpm, roots: b.Roots(), wantErr: "chain does not verify"},
		"fail/tpm-no-ak-roots":     {attObj: tpm, roots: attest.Roots{Apple: a.Roots().Apple}, wantErr: "Roots.TPMAK", notConf: true},
		"fail/android-wrong-root":  {attObj: android, roots: b.Roots(), wantErr: "chain does not verify"},
		"fail/android-google-root": {attObj: android, roots: attest.Roots{}, wantErr: "chain does not verify"},
		// expired
		"fail/apple-expired-leaf":    {attObj: must(a.AppleWith(dev.Public(), serial, udid, keyAuth, attesttest.AppleOptions{NotAfter: now.Add(-time.Hour)})), wantErr: "expired"},
		"fail/apple-clock-future":    {attObj: apple, clock: now.Add(30 * 365 * 24 * time.Hour), wantErr: "chain does not verify"},
		"fail/tpm-clock-future":      {attObj: tpm, clock: now.Add(30 * 365 * 24 * time.Hour), wantErr: "chain does not verify"},
		"fail/android-expired-inter": {attObj: must(a.AndroidWith(dev, serial, keyAuth, attesttest.AndroidOptions{IntermediateNotAfter: now.Add(-time.Hour)})), wantErr: "expired"},
		// tampered signatures
		"fail/apple-tampered-leaf-sig": {attObj: mutate(t, apple, func(m map[string]any) { x5c(m)[0] = flipLastByte(x5c(m)[0].([]byte)) }), wantErr: "chain does not verify"},
		"fail/tpm-tampered-sig":        {attObj: mutate(t, tpm, func(m map[string]any) { stmt(m)["sig"] = flipLastByte(stmt(m)["sig"].([]byte)) }), wantErr: "key certification"},
		"fail/tpm-tampered-certinfo":   {attObj: mutate(t, tpm, func(m map[string]any) { stmt(m)["certInfo"] = flipLastByte(stmt(m)["certInfo"].([]byte)) }), wantErr: "key certification"},
		"fail/android-tampered-sig":    {attObj: mutate(t, android, func(m map[string]any) { stmt(m)["sig"] = flipLastByte(stmt(m)["sig"].([]byte)) }), wantErr: "does not verify"},
		// key mismatch
		"fail/tpm-pubarea-swapped": {attObj: mutate(t, tpm, func(m map[string]any) {
			o := must(a.TPM(other.Public(), serial, keyAuth))
			dm, _ := cbor.DecOptions{DefaultMapType: mapType}.DecMode()
			var om map[string]any
			_ = dm.Unmarshal(o, &om)
			stmt(m)["pubArea"] = stmt(om)["pubArea"]
		}), wantErr: "different key"},
		"fail/android-sig-by-other-key": {attObj: must(a.AndroidWith(dev, serial, keyAuth, attesttest.AndroidOptions{SigKey: other})), wantErr: "does not verify"},
		"fail/tpm-exportable-key":       {attObj: must(a.TPMWith(dev.Public(), serial, keyAuth, attesttest.TPMOptions{Exportable: true})), wantErr: "exportable"},
		"fail/tpm-ak-with-subject":      {attObj: must(a.TPMWith(dev.Public(), serial, keyAuth, attesttest.TPMOptions{SubjectCN: "ak"})), wantErr: "subject must be empty"},
		// android policy
		"fail/android-software":        {attObj: must(a.AndroidWith(dev, serial, keyAuth, attesttest.AndroidOptions{SecurityLevel: minus(0)})), wantErr: "need tee or strongbox"},
		"fail/android-unlocked":        {attObj: must(a.AndroidWith(dev, serial, keyAuth, attesttest.AndroidOptions{Unlocked: true})), wantErr: "bootloader is unlocked"},
		"fail/android-unverified-boot": {attObj: must(a.AndroidWith(dev, serial, keyAuth, attesttest.AndroidOptions{VerifiedBootState: 2})), wantErr: "verifiedBootState"},
		"fail/android-rot-software":    {attObj: must(a.AndroidWith(dev, serial, keyAuth, attesttest.AndroidOptions{RootOfTrustSoftware: true})), wantErr: "rootOfTrust is not hardware-enforced"},
		"fail/android-imported":        {attObj: must(a.AndroidWith(dev, serial, keyAuth, attesttest.AndroidOptions{Imported: true})), wantErr: "origin"},
		"fail/android-one-cert":        {attObj: mutate(t, android, func(m map[string]any) { stmt(m)["x5c"] = x5c(m)[:1] }), wantErr: "need at least 2"},
		// wrong fmt / malformed CBOR
		"fail/wrong-fmt":         {attObj: mutate(t, apple, func(m map[string]any) { m["fmt"] = "packed" }), wantErr: "unsupported attestation format"},
		"fail/fmt-mismatch":      {attObj: mutate(t, apple, func(m map[string]any) { m["fmt"] = "tpm" }), wantErr: "ver is"},
		"fail/empty":             {attObj: nil, wantErr: "empty"},
		"fail/empty-json-object": {attObj: []byte("{}"), wantErr: "CBOR"},
		"fail/truncated":         {attObj: apple[:len(apple)/2], wantErr: "not well-formed"},
		"fail/huge":              {attObj: make([]byte, attest.MaxAttObjSize+1), wantErr: "limit"},
		"fail/duplicate-key":     {attObj: dupFmt(), wantErr: "duplicate"},
		"fail/indefinite-length": {attObj: []byte{0xbf, 0x63, 'f', 'm', 't', 0x65, 'a', 'p', 'p', 'l', 'e', 0xff}, wantErr: "indefinite"},
		"fail/x5c-not-bytes":     {attObj: mutate(t, apple, func(m map[string]any) { stmt(m)["x5c"] = []any{"text"} }), wantErr: "attStmt"},
		"fail/x5c-garbage":       {attObj: mutate(t, apple, func(m map[string]any) { stmt(m)["x5c"] = []any{x5c(m)[0], []byte{0x30, 0x03, 0x01, 0x01, 0xff}} }), wantErr: "not a certificate"},
		"fail/x5c-too-long": {attObj: mutate(t, apple, func(m map[string]any) {
			s := []any{}
			for range 9 {
				s = append(s, x5c(m)[0])
			}
			stmt(m)["x5c"] = s
		}), wantErr: "limit"},
		"fail/no-attstmt": {attObj: mutate(t, apple, func(m map[string]any) { delete(m, "attStmt") }), wantErr: "no attStmt"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			roots := a.Roots()
			if tt.roots != (attest.Roots{}) || strings.Contains(name, "real-root") || strings.Contains(name, "google-root") {
				roots = tt.roots
			}
			clock := now
			if !tt.clock.IsZero() {
				clock = tt.clock
			}
			v := attest.New(roots, attest.WithClock(func() time.Time { return clock }))
			ka := keyAuth
			if tt.keyAuth != "" {
				ka = tt.keyAuth
			}
			res, err := v.VerifyACME(context.Background(), tt.attObj, ka)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("want error containing %q, got success", tt.wantErr)
				}
				if !errors.Is(err, attest.ErrBadAttestation) {
					t.Errorf("error does not wrap ErrBadAttestation: %v", err)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %q does not contain %q", err, tt.wantErr)
				}
				if tt.notConf != errors.Is(err, attest.ErrNotConfigured) {
					t.Errorf("ErrNotConfigured = %v, want %v", errors.Is(err, attest.ErrNotConfigured), tt.notConf)
				}
				return
			}
			if err != nil {
				t.Fatalf("VerifyACME: %v", err)
			}
			if !res.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(tt.wantKey) {
				t.Errorf("attested key differs")
			}
			if res.KeySHA256 != keyHash(t, tt.wantKey) {
				t.Errorf("KeySHA256 = %s", res.KeySHA256)
			}
			if res.DeviceID != tt.wantID || !res.Proves(tt.wantID) {
				t.Errorf("DeviceID = %q, Proves(%q) = %v", res.DeviceID, tt.wantID, res.Proves(tt.wantID))
			}
			if res.Proves("someone-else") || res.Proves(strings.ToLower(tt.wantID)+" ") {
				t.Errorf("Proves accepts a foreign identifier")
			}
			for k, want := range tt.wantFact {
				if got := res.Facts[k]; got != want {
					t.Errorf("Facts[%q] = %q, want %q", k, got, want)
				}
			}
		})
	}
}

// dupFmt is {fmt:"apple", fmt:"tpm", attStmt:{}} — a duplicate key attack.
func dupFmt() []byte {
	var buf bytes.Buffer
	buf.Write([]byte{0xa3})
	for _, kv := range [][2]string{{"fmt", "apple"}, {"fmt", "tpm"}} {
		buf.WriteByte(0x60 | byte(len(kv[0])))
		buf.WriteString(kv[0])
		buf.WriteByte(0x60 | byte(len(kv[1])))
		buf.WriteString(kv[1])
	}
	buf.Write([]byte{0x67})
	buf.WriteString("attStmt")
	buf.WriteByte(0xa0)
	return buf.Bytes()
}

func TestVerifyACMEProvesBothAppleIdentifiers(t *testing.T) {
	t.Parallel()
	a, _ := authorities(t)
	must := musts(t)
	dev := p256(t)
	v := attest.New(a.Roots())
	res, err := v.VerifyACME(context.Background(), must(a.Apple(dev.Public(), serial, udid, keyAuth)), keyAuth)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Proves(serial) || !res.Proves(udid) {
		t.Errorf("Proves(serial)=%v Proves(udid)=%v", res.Proves(serial), res.Proves(udid))
	}
	if res.Identifiers["serial"] != serial || res.Identifiers["udid"] != udid {
		t.Errorf("Identifiers = %v", res.Identifiers)
	}
}

func TestVerifyACMETPMProvesEKHash(t *testing.T) {
	t.Parallel()
	a, _ := authorities(t)
	must := musts(t)
	dev := p256(t)
	v := attest.New(a.Roots())
	res, err := v.VerifyACME(context.Background(), must(a.TPM(dev.Public(), "", keyAuth)), keyAuth)
	if err != nil {
		t.Fatal(err)
	}
	if want := attesttest.EKIDFor(""); res.DeviceID != want || res.Identifiers["ek_sha256"] != want {
		t.Errorf("DeviceID = %q, want EK hash %q", res.DeviceID, want)
	}
}

func TestAndroidRevocation(t *testing.T) {
	t.Parallel()
	a, _ := authorities(t)
	must := musts(t)
	dev := p256(t)
	attObj := must(a.Android(dev, serial, keyAuth))
	dm, _ := cbor.DecOptions{DefaultMapType: mapType}.DecMode()
	var m map[string]any
	if err := dm.Unmarshal(attObj, &m); err != nil {
		t.Fatal(err)
	}
	inter, err := x509.ParseCertificate(x5c(m)[1].([]byte))
	if err != nil {
		t.Fatal(err)
	}
	list, err := attest.ParseAndroidStatusList([]byte(`{"entries":{"` + inter.SerialNumber.Text(16) + `":{"status":"REVOKED","reason":"KEY_COMPROMISE"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	v := attest.New(a.Roots(), attest.WithAndroidStatus(list))
	_, err = v.VerifyACME(context.Background(), attObj, keyAuth)
	if !errors.Is(err, attest.ErrBadAttestation) || !strings.Contains(err.Error(), "REVOKED/KEY_COMPROMISE") {
		t.Fatalf("want revoked error, got %v", err)
	}
}

func TestAndroidPolicyRelaxed(t *testing.T) {
	t.Parallel()
	a, _ := authorities(t)
	must := musts(t)
	dev := p256(t)
	attObj := must(a.AndroidWith(dev, serial, keyAuth, attesttest.AndroidOptions{Unlocked: true, VerifiedBootState: attest.BootSelfSigned}))
	v := attest.New(a.Roots(), attest.WithAndroidPolicy(attest.AndroidPolicy{AllowUnlockedBootloader: true, AllowSelfSignedBoot: true}))
	res, err := v.VerifyACME(context.Background(), attObj, keyAuth)
	if err != nil {
		t.Fatal(err)
	}
	if res.Facts["device_locked"] != "false" || res.Facts["verified_boot_state"] != "1" {
		t.Errorf("facts = %v", res.Facts)
	}
}

// TestSetAndroidPolicy: a reload that relaxes, then tightens, the policy
// of a running Verifier applies to the next verification.
func TestSetAndroidPolicy(t *testing.T) {
	t.Parallel()
	a, _ := authorities(t)
	must := musts(t)
	attObj := must(a.AndroidWith(p256(t), serial, keyAuth, attesttest.AndroidOptions{Unlocked: true}))
	v := attest.New(a.Roots())
	if _, err := v.VerifyACME(t.Context(), attObj, keyAuth); !errors.Is(err, attest.ErrBadAttestation) || !strings.Contains(err.Error(), "unlocked") {
		t.Fatalf("strict default: %v, want the unlocked bootloader refused", err)
	}
	v.SetAndroidPolicy(attest.AndroidPolicy{AllowUnlockedBootloader: true})
	if _, err := v.VerifyACME(t.Context(), attObj, keyAuth); err != nil {
		t.Fatalf("after relaxing: %v", err)
	}
	v.SetAndroidPolicy(attest.AndroidPolicy{AllowUnlockedBootloader: true, MinOSPatchLevel: 999912})
	if _, err := v.VerifyACME(t.Context(), attObj, keyAuth); !errors.Is(err, attest.ErrBadAttestation) || !strings.Contains(err.Error(), "osPatchLevel") {
		t.Fatalf("after raising the patch level: %v", err)
	}
}

type countingMetrics struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *countingMetrics) Verification(format, outcome string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[format+"/"+outcome]++
}

func TestMetricsLabels(t *testing.T) {
	t.Parallel()
	a, _ := authorities(t)
	must := musts(t)
	dev := p256(t)
	m := &countingMetrics{n: map[string]int{}}
	v := attest.New(a.Roots(), attest.WithMetrics(m))
	ctx := context.Background()
	if _, err := v.VerifyACME(ctx, must(a.Apple(dev.Public(), serial, "", keyAuth)), keyAuth); err != nil {
		t.Fatal(err)
	}
	_, _ = v.VerifyACME(ctx, []byte{0xa0}, keyAuth)
	_, _ = v.VerifyACME(ctx, must(a.Apple(dev.Public(), serial, "", keyAuth)), "x.y")
	want := map[string]int{"apple/ok": 1, "unknown/fail": 1, "apple/fail": 1}
	for k, n := range want {
		if m.n[k] != n {
			t.Errorf("metrics %s = %d, want %d (all: %v)", k, m.n[k], n, m.n)
		}
	}
}

func parseCert(tb testing.TB, der []byte) *x509.Certificate {
	tb.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}
