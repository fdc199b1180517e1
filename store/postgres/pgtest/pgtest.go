// Package pgtest starts a throwaway PostgreSQL server for tests: initdb in
// a temporary directory, pg_ctl on 127.0.0.1 and a port picked free, one
// server per test binary (TestMain), a fresh database per store.
//
// The server binaries are Debian's (package postgresql: initdb and pg_ctl
// under /usr/lib/postgresql/<version>/bin), or those in PG_BIN. initdb
// refuses to run as root, so under root the server runs as the postgres
// user the Debian package creates.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrMissing reports that no PostgreSQL server binaries were found.
var ErrMissing = errors.New("pgtest: PostgreSQL server binaries not found (apt-get install postgresql, or set PG_BIN)")

// Cluster is one running server.
type Cluster struct {
	Port int
	bin  string
	dir  string
	cred *syscall.Credential
	n    atomic.Int64
}

// FindBin returns the directory holding initdb and pg_ctl.
func FindBin() (string, error) {
	if d := os.Getenv("PG_BIN"); d != "" {
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", ErrMissing
}

func version(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// Start initialises and starts a server. Stop it with Stop.
func Start() (*Cluster, error) {
	bin, err := FindBin()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "hardbound-pg-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{bin: bin, dir: dir}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("pgtest: running as root needs the postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	data := filepath.Join(dir, "data")
	if out, err := c.run("initdb", "-D", data, "-U", "hardbound", "--auth=trust", "-E", "UTF8", "--no-sync"); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pgtest: initdb: %w: %s", err, out)
	}
	// A port picked free can be taken before the server binds it: try a few.
	for range 5 {
		c.Port, err = freePort()
		if err != nil {
			break
		}
		// fsync off: a test server's data need not survive a crash of the
		// machine, and 2 shared cores make fsyncs the bottleneck.
		opts := fmt.Sprintf("-h 127.0.0.1 -p %d -k %s -c fsync=off -c full_page_writes=off -c max_connections=400 -c shared_buffers=64MB", c.Port, dir)
		var out []byte
		out, err = c.run("pg_ctl", "-D", data, "-l", filepath.Join(dir, "log"), "-w", "-t", "60", "-o", opts, "start")
		if err == nil {
			return c, nil
		}
		err = fmt.Errorf("pgtest: pg_ctl start: %w: %s", err, out)
	}
	log, _ := os.ReadFile(filepath.Join(dir, "log"))
	os.RemoveAll(dir)
	return nil, fmt.Errorf("%w\n%s", err, log)
}

func (c *Cluster) run(prog string, args ...string) ([]byte, error) {
	cmd := exec.Command(filepath.Join(c.bin, prog), args...)
	cmd.Dir = c.dir
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	return cmd.CombinedOutput()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Stop stops the server and removes its directory.
func (c *Cluster) Stop() {
	if c == nil {
		return
	}
	_, _ = c.run("pg_ctl", "-D", filepath.Join(c.dir, "data"), "-m", "immediate", "-w", "stop")
	os.RemoveAll(c.dir)
}

// Kill stops the server abruptly (immediate shutdown: every connection is
// cut) without removing its data; Restart brings it back.
func (c *Cluster) Kill() error {
	out, err := c.run("pg_ctl", "-D", filepath.Join(c.dir, "data"), "-m", "immediate", "-w", "stop")
	if err != nil {
		return fmt.Errorf("pgtest: pg_ctl stop: %w: %s", err, out)
	}
	return nil
}

// StopFast stops the server as an operator does (`pg_ctl stop -m fast`:
// open transactions are rolled back and every connection is told the
// server is shutting down) without removing its data; Restart brings it
// back.
func (c *Cluster) StopFast() error {
	out, err := c.run("pg_ctl", "-D", filepath.Join(c.dir, "data"), "-m", "fast", "-w", "stop")
	if err != nil {
		return fmt.Errorf("pgtest: pg_ctl stop -m fast: %w: %s", err, out)
	}
	return nil
}

// Restart starts a server stopped by Kill or StopFast on the same port.
func (c *Cluster) Restart() error {
	opts := fmt.Sprintf("-h 127.0.0.1 -p %d -k %s -c fsync=off -c full_page_writes=off -c max_connections=400 -c shared_buffers=64MB", c.Port, c.dir)
	out, err := c.run("pg_ctl", "-D", filepath.Join(c.dir, "data"), "-l", filepath.Join(c.dir, "log"), "-w", "-t", "60", "-o", opts, "start")
	if err != nil {
		return fmt.Errorf("pgtest: pg_ctl start: %w: %s", err, out)
	}
	return nil
}

// DSN is the connection string of database db.
func (c *Cluster) DSN(db string) string {
	return fmt.Sprintf("postgres://hardbound@127.0.0.1:%d/%s?sslmode=disable", c.Port, db)
}

// CreateDatabase creates a new, empty database and returns its DSN.
func (c *Cluster) CreateDatabase(ctx context.Context) (string, error) {
	name := fmt.Sprintf("t%d_%d", os.Getpid(), c.n.Add(1))
	conn, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	// CREATE DATABASE copies template1; two at once contend on it, so retry.
	for attempt := 0; ; attempt++ {
		_, err = conn.Exec(ctx, "CREATE DATABASE "+name)
		if err == nil || attempt == 20 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		return "", fmt.Errorf("pgtest: create database: %w", err)
	}
	return c.DSN(name), nil
}

// NewDatabase is CreateDatabase for a test.
func (c *Cluster) NewDatabase(t testing.TB) string {
	t.Helper()
	dsn, err := c.CreateDatabase(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return dsn
}

// Main is the body of a TestMain that needs a server: it starts one, runs
// the tests with it and stops it. When the server cannot start, *cl stays
// nil and Require fails (under CI=true) or skips each test that needs it.
func Main(m *testing.M, cl **Cluster, startErr *error) int {
	c, err := Start()
	if err != nil {
		*startErr = err
		return m.Run()
	}
	*cl = c
	defer c.Stop()
	return m.Run()
}

// Require returns c, or ends the test: t.Fatal under CI=true (a missing
// peer must fail there), t.Skip otherwise.
func Require(t testing.TB, c *Cluster, startErr error) *Cluster {
	t.Helper()
	if c != nil {
		return c
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("PostgreSQL is required under CI: %v", startErr)
	}
	t.Skipf("PostgreSQL not available: %v", startErr)
	return nil
}
