// Package offline administers the data dir of a server that is not
// running: its admin token file, which is how the first token is made
// (docs/admin.md). The answers are the admin API's own types, so the CLI
// shows an offline change as it shows one made through the API.
//
// Every operation opens the data dir's store first: that proves no server
// holds the data dir, so a change made here is never raced by the API, and
// each change is an event in the data dir's audit chain with the actor
// "local:<user>".
package offline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"time"

	"hardbound/admin"
	"hardbound/admin/token"
	"hardbound/store"
	"hardbound/store/badger"
)

// ErrServerRunning: the data dir's store is held by a running server.
var ErrServerRunning = errors.New("the data dir is in use (is the server running?); without --data-dir and --config the command uses the running server's admin API")

// Tokens is the token file of a stopped server's data dir.
type Tokens struct {
	// DataDir is the data dir (its store is at DataDir/db).
	DataDir string
	// File is the token file; "" is DataDir/admin.tokens, the default of
	// admin.token_file.
	File string
}

// The methods are named and typed as admin/client's, so the CLI runs one
// token command against either.

// CreateToken makes a token (scope admin, read or enroll; expires a
// lifetime as token.ParseLifetime reads it, "" never) and returns its
// value.
func (t Tokens) CreateToken(ctx context.Context, req admin.TokenRequest) (admin.TokenCreated, error) {
	var res admin.TokenCreated
	sc, err := token.ParseScope(req.Scope)
	if err != nil {
		return res, err
	}
	life, err := token.ParseLifetime(req.Expires)
	if err != nil {
		return res, err
	}
	err = t.run(ctx, func(set *token.Set, audit func(*store.AuditEvent)) error {
		now := time.Now()
		var exp time.Time
		if life > 0 {
			exp = now.Add(life)
		}
		v, tok, err := set.Create(req.Name, sc, exp, now)
		if err != nil {
			return err
		}
		audit(&store.AuditEvent{Action: "token.create", Subject: tok.Name, Result: "ok", Reason: "scope=" + string(tok.EffectiveScope())})
		res = admin.TokenCreated{Token: v, TokenInfo: admin.TokenInfoOf(tok, now)}
		return nil
	})
	return res, err
}

// Tokens lists the tokens (never their values).
func (t Tokens) Tokens(ctx context.Context) (admin.List[admin.TokenInfo], error) {
	var res admin.List[admin.TokenInfo]
	err := t.run(ctx, func(set *token.Set, _ func(*store.AuditEvent)) error {
		now := time.Now()
		ts, err := set.List(now)
		for _, tok := range ts {
			res.Items = append(res.Items, admin.TokenInfoOf(tok, now))
		}
		return err
	})
	return res, err
}

// RevokeToken revokes the token of that name.
func (t Tokens) RevokeToken(ctx context.Context, name string) error {
	return t.run(ctx, func(set *token.Set, audit func(*store.AuditEvent)) error {
		tok, err := set.Revoke(name, time.Now())
		if err != nil {
			return err
		}
		audit(&store.AuditEvent{Action: "token.revoke", Subject: tok.Name, Result: "ok"})
		return nil
	})
}

// run opens the store and the token file of the data dir and calls fn;
// audit appends an event to the data dir's audit chain as the local user.
func (t Tokens) run(ctx context.Context, fn func(*token.Set, func(*store.AuditEvent)) error) error {
	path := admin.FileConfig{TokenFile: t.File}.TokenPath(t.DataDir)
	if err := os.MkdirAll(t.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	st, err := badger.Open(ctx, filepath.Join(t.DataDir, "db"))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrServerRunning, err)
	}
	defer st.Close()
	set, err := token.OpenFile(path)
	if err != nil {
		return err
	}
	actor := "local"
	if u, err := user.Current(); err == nil {
		actor = "local:" + u.Username
	}
	var auditErr error
	err = fn(set, func(ev *store.AuditEvent) {
		ev.Actor, ev.Time = actor, time.Now()
		auditErr = st.AppendAudit(ctx, ev)
	})
	if err != nil {
		return err
	}
	if auditErr != nil {
		return fmt.Errorf("the token file changed but its audit event was not written: %w", auditErr)
	}
	return nil
}
