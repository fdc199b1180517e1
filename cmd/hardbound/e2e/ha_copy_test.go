package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"hardbound/admin"
	"hardbound/enroll/devbind"
	"hardbound/store"
	"hardbound/store/postgres"
	"hardbound/store/postgres/pgtest"
)

// testStoreCopy grows a single Badger node into PostgreSQL as docs/ha.md
// describes: devices enrolled and one revoked on a Badger node, the node
// stopped, `hardbound store copy` into an empty database, then a node on
// PostgreSQL with the same data dir (its CA and audit key) admits an
// enrolled device, rejects the revoked one, and `audit verify` passes
// over the copied chain and its checkpoints. A second copy into the now
// non-empty database is refused.
func testStoreCopy(t *testing.T, cl *pgtest.Cluster) {
	const devices = 100
	src := startTest(t, testConfig(t))
	var devs []*devbind.Device
	for i := range devices {
		devs = append(devs, src.bind(t, devbind.Request{DeviceID: fmt.Sprintf("copy-%03d", i), Posture: store.ComplianceCompliant}))
	}
	nasSrc := src.nasClient(t, "", nil)
	src.mustAccept(t, nasSrc, devs[0].Certificate)
	if err := src.api(http.MethodPost, "/api/v1/devices/"+devs[1].ID+"/revoke", admin.RevokeRequest{Reason: "keyCompromise"}, nil); err != nil {
		t.Fatal(err)
	}
	dataDir := src.cfg.DataDir
	src.Shutdown()

	dsn, err := cl.CreateDatabase(e2eContext(t))
	if err != nil {
		t.Fatal(err)
	}
	dsnFile := writeSecret(t, "dsn", dsn)
	dir := t.TempDir()
	badgerCfg := filepath.Join(dir, "badger.yaml")
	pgCfg := filepath.Join(dir, "pg.yaml")
	if err := os.WriteFile(badgerCfg, []byte("data_dir: "+dataDir+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf("data_dir: %s\nstore:\n  backend: postgres\n  postgres:\n    dsn_file: %s\n", filepath.Join(dir, "pgdata"), dsnFile)
	if err := os.WriteFile(pgCfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	res := runCLI(t, "store", "copy", "--from", badgerCfg, "--to", pgCfg)
	if res.code != 0 || !strings.Contains(res.stdout, fmt.Sprintf("(%d devices,", devices)) || !strings.Contains(res.stdout, "audit chain verified") {
		t.Fatalf("store copy: exit %d\nstdout: %s\nstderr: %s", res.code, res.stdout, res.stderr)
	}
	t.Logf("store copy: %s", strings.TrimSpace(res.stdout))
	if again := runCLI(t, "store", "copy", "--from", badgerCfg, "--to", pgCfg); again.code == 0 || !strings.Contains(again.stderr, "not empty") {
		t.Fatalf("second store copy into a non-empty database: exit %d\nstdout: %s\nstderr: %s", again.code, again.stdout, again.stderr)
	}

	cfg := testConfig(t)
	cfg.DataDir = dataDir // the CA, the audit key
	cfg.Store.Backend = postgres.BackendPostgres
	cfg.Store.Postgres.DSNFile = dsnFile
	dst := startTest(t, cfg)
	nas := dst.nasClient(t, "", nil)
	dst.mustAccept(t, nas, devs[devices-1].Certificate)
	dst.mustReject(t, nas, devs[1].Certificate, devs[1].ID, "device_revoked")
	if out := dst.cliOK(t, "audit", "verify"); !strings.Contains(out, "audit chain OK") {
		t.Fatalf("audit verify on the PostgreSQL node: %s", out)
	}
}
