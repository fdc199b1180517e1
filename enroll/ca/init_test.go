package ca

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// TestInitOptions: names, key type and an offline root key, each as the
// operator asked; the CA serves (Load, issue) without the root key.
func TestInitOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		opts    InitOptions
		offline bool // root key written outside data/ca
		rsa     bool
	}{
		{name: "names", opts: InitOptions{Org: "Example Corp", RootCN: "Example Root 2026", IssuingCN: "Example Wi-Fi Issuing"}},
		{name: "offline_root", opts: InitOptions{Org: "Example Corp"}, offline: true},
		{name: "rsa_offline_root", opts: InitOptions{KeyType: KeyRSA}, offline: true, rsa: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir, offline := t.TempDir(), t.TempDir()
			opts := tc.opts
			opts.Dir, opts.Now = dir, fixedClock(testNow)
			if tc.offline {
				opts.RootKeyPath = filepath.Join(offline, "root.key")
			}
			if err := Init(opts); err != nil {
				t.Fatal(err)
			}
			c, err := Load(dir, WithClock(fixedClock(testNow)))
			if err != nil {
				t.Fatal(err)
			}
			want := opts
			_ = want.defaults()
			if got := c.Root().Subject.CommonName; got != want.RootCN {
				t.Errorf("root CN %q, want %q", got, want.RootCN)
			}
			if got := c.Issuing().Subject.CommonName; got != want.IssuingCN {
				t.Errorf("issuing CN %q, want %q", got, want.IssuingCN)
			}
			if got := c.Issuing().Subject.Organization; len(got) != 1 || got[0] != want.Org {
				t.Errorf("issuing O %q, want %q", got, want.Org)
			}
			for name, cert := range map[string]*x509.Certificate{"root": c.Root(), "issuing": c.Issuing()} {
				if _, isRSA := cert.PublicKey.(*rsa.PublicKey); isRSA != tc.rsa {
					t.Errorf("%s key %T, want RSA %t", name, cert.PublicKey, tc.rsa)
				}
			}
			inCA := filepath.Join(dir, SubDir, RootKey)
			if _, err := os.Stat(inCA); tc.offline != errors.Is(err, fs.ErrNotExist) {
				t.Errorf("root key in data dir: %v, offline %t", err, tc.offline)
			}
			if tc.offline {
				fi, err := os.Stat(opts.RootKeyPath)
				if err != nil || fi.Mode().Perm() != 0o600 {
					t.Fatalf("offline root key: %v mode %v", err, fi)
				}
				// The offline key is the root's.
				k, err := readKey(opts.RootKeyPath)
				if err != nil || !keysEqual(k.Public(), c.Root().PublicKey) {
					t.Errorf("offline root key does not match the root: %v", err)
				}
			}
			// Serving needs the issuing key only.
			if _, err := c.IssueServerTLS(context.Background(), []string{"radius.example.com"}, nil, 0); err != nil {
				t.Errorf("issue without the root key: %v", err)
			}
		})
	}
}

func TestInitOptionsRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	taken := filepath.Join(t.TempDir(), "root.key")
	if err := os.WriteFile(taken, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		opts InitOptions
		want error
	}{
		{"same_names", InitOptions{RootCN: "X", IssuingCN: "X"}, ErrInvalidRequest},
		{"key_type", InitOptions{KeyType: "dsa"}, ErrInvalidRequest},
		{"root_key_exists", InitOptions{RootKeyPath: taken}, ErrExists},
		{"root_key_inside_ca", InitOptions{RootKeyPath: filepath.Join(dir, SubDir, "root.key")}, ErrInvalidRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts
			opts.Dir = dir
			if err := Init(opts); !errors.Is(err, tc.want) {
				t.Fatalf("Init = %v, want %v", err, tc.want)
			}
			if _, err := os.Stat(filepath.Join(dir, SubDir)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a refused Init left %s: %v", SubDir, err)
			}
		})
	}
	if b, _ := os.ReadFile(taken); string(b) != "keep me" {
		t.Error("an existing root key file was overwritten")
	}
}
