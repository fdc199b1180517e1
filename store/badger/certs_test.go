package badger

import (
	"testing"

	"hardbound/store"
)

// NoDER listings return the same bindings without the certificates' DER,
// through the hash index and through the device index alike.
func TestListCertsNoDERLeavesDERUnreadAndKeepsTheBinding(t *testing.T) {
	t.Parallel()
	s := openMem(t)
	ctx := t.Context()
	mustIssue(t, s, "d1", 1)
	mustIssue(t, s, "d1", 2)
	mustIssue(t, s, "d2", 1)
	cases := []struct {
		name  string
		f     store.CertFilter
		count int
	}{
		{name: "all certs", f: store.CertFilter{}, count: 3},
		{name: "one device", f: store.CertFilter{DeviceID: "d1"}, count: 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			full, _, err := s.ListCerts(ctx, tc.f, store.Page{})
			if err != nil {
				t.Fatal(err)
			}
			f := tc.f
			f.NoDER = true
			bare, _, err := s.ListCerts(ctx, f, store.Page{})
			if err != nil {
				t.Fatal(err)
			}
			if len(full) != tc.count || len(bare) != tc.count {
				t.Fatalf("ListCerts = %d certs, NoDER %d, want %d", len(full), len(bare), tc.count)
			}
			for i := range bare {
				if len(full[i].DER) == 0 {
					t.Errorf("%s: DER missing without NoDER", full[i].SHA256)
				}
				if bare[i].DER != nil {
					t.Errorf("%s: NoDER returned %d bytes of DER", bare[i].SHA256, len(bare[i].DER))
				}
				if bare[i].SHA256 != full[i].SHA256 || bare[i].DeviceID != full[i].DeviceID ||
					bare[i].Serial != full[i].Serial || bare[i].Profile != full[i].Profile {
					t.Errorf("NoDER binding %+v differs from %+v", bare[i], full[i])
				}
			}
		})
	}
}
