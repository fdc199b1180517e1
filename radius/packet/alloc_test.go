//go:build !race

// The race detector makes sync.Pool drop items at random, so allocation
// counts are only meaningful without it.

package packet

import (
	"testing"

	lradius "layeh.com/radius"
)

// TestAllocations pins the server's per-packet budget: parsing, verifying
// and reading attributes allocate nothing; an encoded response is one
// allocation (its octets); EAP reassembly one (the joined message).
func TestAllocations(t *testing.T) {
	s := NewSecret([]byte(katKey))
	pkt := benchRequest(t, s)
	pol := Policy{RequireMessageAuthenticator: true}
	req, err := Parse(pkt)
	if err != nil {
		t.Fatal(err)
	}
	attrs := append(AppendEAP(nil, make([]byte, 1024)), &lradius.AVP{Type: 24, Attribute: make([]byte, 16)})
	tests := []struct {
		name string
		max  float64
		f    func()
	}{
		{"parse_verify", 0, func() {
			p, err := Parse(pkt)
			if err != nil || s.VerifyRequest(&p, pol) != nil {
				t.Fatal("verify failed")
			}
		}},
		{"lookup", 0, func() {
			if _, ok := req.Lookup(24); !ok {
				t.Fatal("no State")
			}
		}},
		{"encode_response", 1, func() {
			if _, err := s.EncodeResponse(&req, lradius.CodeAccessChallenge, true, attrs); err != nil {
				t.Fatal(err)
			}
		}},
		{"eap_message", 1, func() {
			if _, ok, err := req.EAPMessage(); !ok || err != nil {
				t.Fatal("reassembly failed")
			}
		}},
	}
	for _, tt := range tests {
		if got := testing.AllocsPerRun(200, tt.f); got > tt.max {
			t.Errorf("%s: %v allocations, want <= %v", tt.name, got, tt.max)
		}
	}
}
