package offline_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hardbound/admin"
	"hardbound/admin/offline"
	"hardbound/admin/token"
	"hardbound/store/badger"
)

// TestTokensOnAStoppedDataDir: the first token is made in a fresh data
// dir's default token file, listed and revoked; each change is an event
// of the data dir's audit chain by the local user.
func TestTokensOnAStoppedDataDir(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	tk := offline.Tokens{DataDir: dir}

	created, err := tk.CreateToken(ctx, admin.TokenRequest{Name: "ops", Scope: "admin", Expires: "90d"})
	if err != nil {
		t.Fatal(err)
	}
	if created.Token == "" || created.Name != "ops" || created.Scope != "admin" || time.Until(created.ExpiresAt) < 89*24*time.Hour {
		t.Fatalf("created %+v", created)
	}
	set, err := token.OpenFile(filepath.Join(dir, "admin.tokens"))
	if err != nil {
		t.Fatal(err)
	}
	if tok, err := set.Check(created.Token, time.Now()); err != nil || tok.Name != "ops" {
		t.Fatalf("the value does not check against the default token file: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "admin.tokens")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", fi.Mode(), err)
	}
	list, err := tk.Tokens(ctx)
	if err != nil || len(list.Items) != 1 || list.Items[0].Name != "ops" || list.Items[0].Expired {
		t.Fatalf("list %+v: %v", list, err)
	}
	if err := tk.RevokeToken(ctx, "ops"); err != nil {
		t.Fatal(err)
	}
	if err := tk.RevokeToken(ctx, "ops"); !errors.Is(err, token.ErrUnknown) {
		t.Fatalf("second revoke: %v", err)
	}

	st, err := badger.Open(ctx, filepath.Join(dir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	evs, err := st.TailAudit(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ev := range evs {
		if !strings.HasPrefix(ev.Actor, "local") {
			t.Errorf("actor %q", ev.Actor)
		}
		got = append(got, ev.Action+" "+ev.Subject+" "+ev.Reason)
	}
	if strings.Join(got, "|") != "token.create ops scope=admin|token.revoke ops " {
		t.Errorf("audit %q", got)
	}

	// A server holds the store: nothing is changed.
	if _, err := tk.CreateToken(ctx, admin.TokenRequest{Name: "late", Scope: "read"}); !errors.Is(err, offline.ErrServerRunning) {
		t.Fatalf("create while the store is open: %v", err)
	}
}

func TestTokensRefuseBadRequestsBeforeOpeningAnything(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	file := filepath.Join(t.TempDir(), "elsewhere.tokens")
	tk := offline.Tokens{DataDir: dir, File: file}
	for _, tc := range []struct{ scope, expires, want string }{
		{"root", "", `scope "root" is not admin, read or enroll`},
		{"read", "30", `lifetime "30"`},
	} {
		if _, err := tk.CreateToken(ctx, admin.TokenRequest{Name: "x", Scope: tc.scope, Expires: tc.expires}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("CreateToken(%q, %q) = %v, want %q", tc.scope, tc.expires, err, tc.want)
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused request made the data dir: %v", err)
	}
	// The configured token file, not the data dir's default.
	if _, err := tk.CreateToken(ctx, admin.TokenRequest{Name: "ops", Scope: "enroll"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(file); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "admin.tokens")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("default token file written: %v", err)
	}
}
