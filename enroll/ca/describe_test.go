package ca_test

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

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
