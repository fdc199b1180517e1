package node

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"time"

	"hardbound/admin"
	"hardbound/eaptls"
	"hardbound/enroll/devbind"
	"hardbound/radius"
	"hardbound/radius/dynauth"
	"hardbound/store"
)

// startComponents starts RADIUS and enrollment.
func (in *Node) startComponents() error {
	if err := in.startRADIUS(); err != nil {
		return err
	}
	if err := in.startRadSec(); err != nil {
		return err
	}
	if err := in.startMDM(); err != nil {
		return err
	}
	if err := in.startEnroll(); err != nil {
		return err
	}
	return in.startEnforcer()
}

func (in *Node) startRADIUS() error {
	rc := in.cfg.RADIUS
	if rc.AuthAddr == "" && rc.AcctAddr == "" {
		return nil
	}
	kp, err := in.ca.ServerCert(in.ctx, in.cfg.DataDir, "radius", rc.ServerNames, false)
	if err != nil {
		return err
	}
	in.certExpiry("radius", kp)
	m := in.metrics.RADIUS()
	ecfg := rc.EAP(kp, in.ca.Pool())
	ecfg.Logger, ecfg.Metrics = in.log, m
	eap, err := eaptls.NewServer(ecfg)
	if err != nil {
		return fmt.Errorf("eaptls: %w", err)
	}
	cfg := rc.Server()
	keyFile := rc.ClassKeyFile
	if keyFile == "" {
		keyFile = filepath.Join(in.cfg.DataDir, "radius-class.key")
	}
	if cfg.ClassKey, err = radius.LoadClassKey(keyFile); err != nil {
		return err
	}
	srv, err := radius.New(cfg, eap, in.posture, in.st, in.auditor, radius.WithLogger(in.log), radius.WithMetrics(m),
		radius.WithSessionStarts(&in.sessionStarts))
	if err != nil {
		return err
	}
	in.radius = srv
	// The server's own listeners carry the receive buffer a login storm needs.
	auth, acct, err := srv.Listen(in.ctx, rc.AuthAddr, rc.AcctAddr)
	if err != nil {
		return fmt.Errorf("radius listener: %w", err)
	}
	if auth != nil {
		in.setAddr("radius-auth", auth.LocalAddr().String())
	}
	if acct != nil {
		in.setAddr("radius-acct", acct.LocalAddr().String())
	}
	done := make(chan struct{})
	in.wg.Add(1)
	go func() {
		defer in.wg.Done()
		defer close(done)
		in.fail("radius", srv.Serve(in.ctx, auth, acct))
	}()
	in.onClose(func(ctx context.Context) error {
		select {
		case <-done:
		case <-ctx.Done():
		}
		return nil
	})
	return nil
}

// sessionStarts hands the RADIUS server's session starts to the enforcer,
// which starts after it (radius.SessionStarts); before, and without one,
// they go nowhere.
type sessionStarts struct {
	e atomic.Pointer[dynauth.Enforcer]
}

func (s *sessionStarts) set(e *dynauth.Enforcer) { s.e.Store(e) }

func (s *sessionStarts) SessionStarted(ctx context.Context, sess *store.Session, admitted time.Time) {
	if e := s.e.Load(); e != nil {
		e.SessionStarted(ctx, sess, admitted)
	}
}

// adminDeps are the admin API's collaborators: the enrollment endpoints
// only with enrollment configured, test enrollment only in --dev.
func (in *Node) adminDeps() admin.Deps {
	d := admin.Deps{Store: in.st, Standing: in.posture, Inventory: in.inventoryDeps(), NAS: in.nasIssuer()}
	if in.audit != nil {
		d.Audit = in.audit
	}
	if in.cfg.Load != nil {
		d.Reload = in
	}
	if in.radius != nil {
		d.TicketKeys = in.radius
	}
	if in.enroll != nil {
		d.Challenges = in.enroll.minter
		d.TPM = in.enroll.minter
	}
	if in.cfg.Dev {
		d.DevEnroll = devbind.NewEnroller(in.ca, in.st)
	}
	return d
}
