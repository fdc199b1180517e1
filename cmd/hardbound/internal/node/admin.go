package node

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"time"

	"hardbound/admin"
	"hardbound/admin/token"
	"hardbound/admin/ui"
	"hardbound/store"
)

// historyEvery and historySpan are what the console's charts sample.
const (
	historyEvery = 10 * time.Second
	historySpan  = time.Hour
)

// adminHandler is the admin listener's handler: the API under /api/ and,
// unless admin.console.enabled is false, the console under /ui/, both
// behind the token file. The token file is re-read when it changes, so
// `hardbound token create --data-dir` works on it even while the server
// runs.
func (in *Node) adminHandler() (http.Handler, error) {
	path := in.cfg.Admin.TokenPath(in.cfg.DataDir)
	tokens, err := token.OpenFile(path)
	if err != nil {
		return nil, err
	}
	if l, err := tokens.List(time.Now()); err == nil && len(l) == 0 && in.cfg.Admin.Addr != "" {
		in.log.Warn("no admin token yet; make the first one with: hardbound token create NAME --scope admin --data-dir "+in.cfg.DataDir, "file", path)
	}
	deps := in.adminDeps()
	deps.Tokens = tokens
	api, err := admin.New(deps, nil, admin.WithLogger(in.log), admin.WithMetrics(in.metrics.Admin()))
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/", api)
	exported := func(r store.VerifyResult, at time.Time) { in.metrics.AuditVerified(r.OK, r.Events, at) }
	if !in.cfg.Admin.Console.On() {
		in.startAuditVerifier(exported)
		return mux, nil
	}
	hist := in.metrics.NewHistory(historyEvery, historySpan, ui.Families...)
	in.wg.Add(1)
	go func() {
		defer in.wg.Done()
		hist.Run(in.ctx)
	}()
	var clients []ui.NASClient
	for _, c := range in.cfg.RADIUS.Clients {
		clients = append(clients, ui.NASClient{Name: c.Name, CIDR: c.CIDR, CoAPort: c.CoAPort,
			RequireMessageAuthenticator: c.RequireMessageAuthenticator == nil || *c.RequireMessageAuthenticator,
			SendRejectReason:            c.SendRejectReason, TLSMaxVersion: c.TLSMaxVersion})
	}
	con, err := ui.New(ui.Deps{Store: in.heldSt, Standing: in.posture, Tokens: tokens, Metrics: hist, Clients: clients, CA: in.ca.Issuing(), Inventory: deps.Inventory,
		OnVerify: exported},
		ui.Options{IdleTimeout: in.cfg.Admin.Console.IdleTimeout.D(), Logger: in.log})
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	in.startAuditVerifier(func(r store.VerifyResult, at time.Time) {
		exported(r, at)
		con.Verified(r, at)
	})
	mux.Handle(ui.Prefix, con)
	mux.Handle("GET /{$}", http.RedirectHandler(ui.Prefix, http.StatusSeeOther))
	return mux, nil
}

// certExpiry exports when a server certificate expires (the alert rules
// warn before it does).
func (in *Node) certExpiry(name string, kp tls.Certificate) {
	leaf := kp.Leaf
	if leaf == nil && len(kp.Certificate) > 0 {
		leaf, _ = x509.ParseCertificate(kp.Certificate[0])
	}
	if leaf != nil {
		in.metrics.CertExpiry(name, leaf.NotAfter)
	}
}

// verifyAudit checks the chain from its newest signed checkpoint when the
// audit section keeps checkpoints (reading only the events since it), else
// recomputes it whole.
func (in *Node) verifyAudit() (store.VerifyResult, error) {
	if in.audit == nil {
		return in.st.VerifyAudit(in.ctx)
	}
	rep, err := in.audit.Verify(in.ctx, false, nil)
	if err != nil {
		return store.VerifyResult{}, err
	}
	return store.VerifyResult{Events: rep.HeadSeq, OK: rep.OK, BrokenSeq: rep.BrokenSeq, Problem: rep.Problem}, nil
}

// startAuditVerifier checks the audit chain at start and every
// admin.audit_verify_interval, exporting the outcome for the alert on a
// broken chain.
func (in *Node) startAuditVerifier(report func(store.VerifyResult, time.Time)) {
	every := in.cfg.Admin.AuditVerifyInterval.D()
	if every <= 0 {
		return
	}
	in.wg.Add(1)
	go func() {
		defer in.wg.Done()
		t := time.NewTimer(0)
		defer t.Stop()
		for {
			select {
			case <-in.ctx.Done():
				return
			case <-t.C:
			}
			r, err := in.verifyAudit()
			switch {
			case err != nil && in.ctx.Err() == nil:
				in.log.Error("audit chain verification failed to run", "err", err)
			case err == nil:
				report(r, time.Now())
				if !r.OK {
					in.log.Error("audit chain BROKEN", "seq", r.BrokenSeq, "problem", r.Problem)
				}
			}
			t.Reset(every)
		}
	}()
}
