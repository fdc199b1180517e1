package ca_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"hardbound/enroll/ca"
	"hardbound/enroll/ca/catest"
)

func TestDescribeNamesBothCAsWithTheirFingerprints(t *testing.T) {
	t.Parallel()
	c := catest.New(t, "")
	var b strings.Builder
	c.Describe(&b)
	out := b.String()
	for _, cert := range [][]byte{c.Root().Raw, c.Issuing().Raw} {
		sum := sha256.Sum256(cert)
		if !strings.Contains(out, "sha256 "+hex.EncodeToString(sum[:])) {
			t.Errorf("no fingerprint %x in\n%s", sum, out)
		}
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 6 || !strings.HasPrefix(lines[0], "root:    "+c.Root().Subject.String()) || !strings.HasPrefix(lines[3], "issuing: "+c.Issuing().Subject.String()) {
		t.Errorf("unexpected layout:\n%s", out)
	}
}

// TestDescribeInitAndRootKey: what `ca init` and `ca show` say about the
// root key, in the data dir (to move offline) or written elsewhere.
func TestDescribeInitAndRootKey(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		offline  bool
		lastInit string // the last line of DescribeInit; %s is the data dir
		rootKey  string // DescribeRootKey's line
	}{
		{"root key in the data dir", false, "root key is %s: serve does not need it; move it offline", "root key: %s (serve does not need it; move it offline)"},
		{"root key offline", true, "root key written to %s (mode 0600): keep it offline; serve does not need it", "root key: not in the data dir (offline)"},
	} {
		dir := t.TempDir()
		opts := ca.InitOptions{Dir: dir}
		keyAt := filepath.Join(dir, ca.SubDir, ca.RootKey)
		if tc.offline {
			opts.RootKeyPath = filepath.Join(t.TempDir(), "root.key")
			keyAt = opts.RootKeyPath
		}
		if err := ca.Init(opts); err != nil {
			t.Fatal(err)
		}
		c, err := ca.Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		c.DescribeInit(&b, opts)
		lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
		if len(lines) != 8 || lines[0] != "created CA in "+filepath.Join(dir, ca.SubDir) || lines[7] != fmt.Sprintf(tc.lastInit, keyAt) {
			t.Errorf("%s: init\n%s", tc.name, b.String())
		}
		b.Reset()
		ca.DescribeRootKey(&b, dir)
		want := tc.rootKey + "\n"
		if !tc.offline {
			want = fmt.Sprintf(tc.rootKey, keyAt) + "\n"
		}
		if b.String() != want {
			t.Errorf("%s: root key %q, want %q", tc.name, b.String(), want)
		}
	}
}
