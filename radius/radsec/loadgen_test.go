package radsec_test

import (
	"path/filepath"
	"testing"

	"hardbound/enroll/devbind"
	"hardbound/radius/loadgen"
	"hardbound/radius/radsec"
)

// TestLoadgen: `hardbound bench eaptls --radsec`'s engine, with one
// connection per worker and with one shared by all, reaches every
// Access-Accept with matching keys.
func TestLoadgen(t *testing.T) {
	e := newEnv(t, nil)
	dir := t.TempDir()
	caFile := e.writeCA(t, dir)
	crt, key := writeCert(t, dir, "bench", e.nasCert(t, "bench"))
	dev := e.device(t, "dev-load", devbind.Request{})
	dcrt, dkey := writeCert(t, dir, "dev", dev.Certificate)
	for _, shared := range []bool{false, true} {
		t.Run(map[bool]string{false: "per-worker", true: "shared"}[shared], func(t *testing.T) {
			rep, err := loadgen.Run(e.ctx, loadgen.Config{
				Server: e.addr, Secret: []byte(radsec.Secret), Concurrency: 4, Count: 24,
				Certs:  loadgen.Certs{CA: caFile, Cert: dcrt, Key: dkey, TLSVersion: "1.3"},
				RadSec: &loadgen.RadSec{Cert: crt, Key: key, CA: filepath.Join(dir, "ca.crt"), ServerName: "localhost", Shared: shared},
			})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Accepts != 24 || rep.Failures() != 0 {
				t.Fatalf("report %+v", rep)
			}
		})
	}
	if got := e.metrics.get("accepted/hardbound"); got != 4+1 {
		t.Fatalf("%d connections, want 4 per-worker + 1 shared", got)
	}
}
