package ca_test

import (
	"bytes"
	"context"
	"testing"

	"hardbound/enroll/ca/catest"
)

func TestServerCertReuse(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := catest.New(t, dir)
	ctx := context.Background()
	issue := func(names []string, loopback bool) []byte {
		kp, err := c.ServerCert(ctx, dir, "radius", names, loopback)
		if err != nil {
			t.Fatal(err)
		}
		return kp.Certificate[0]
	}
	a := issue([]string{"radius.example.net"}, true)
	if b := issue([]string{"radius.example.net"}, true); !bytes.Equal(a, b) {
		t.Error("same names: certificate not reused")
	}
	b := issue([]string{"radius.example.net"}, false)
	if bytes.Equal(a, b) {
		t.Error("IP SANs no longer wanted: certificate reused")
	}
	if c2 := issue([]string{"other.example.net"}, false); bytes.Equal(b, c2) {
		t.Error("changed server_names: certificate reused")
	}
}
