package node

import (
	"context"
	"fmt"

	"hardbound/radius"
	"hardbound/radius/dynauth"
	"hardbound/radius/radsec"
)

// devRadSecAddr is where --dev listens for RADIUS/TLS when the file names
// no address (RFC 6614 §2.1's port).
const devRadSecAddr = "[::]:2083"

// startRadSec starts the RADIUS/TLS listener in front of the RADIUS server
// (radius.radsec; off unless addr is set, on under --dev).
func (in *Node) startRadSec() error {
	rc := &in.cfg.RADIUS.RadSec
	addr := rc.Addr
	if addr == "" && in.cfg.Dev {
		addr = devRadSecAddr
	}
	if in.radius == nil || addr == "" {
		return nil
	}
	kp, err := in.ca.ServerCert(in.ctx, in.cfg.DataDir, "radsec", rc.ServerNames, true)
	if err != nil {
		return err
	}
	lcfg := rc.Listener()
	lcfg.Certificate, lcfg.Logger, lcfg.Metrics, lcfg.Auditor = kp, in.log, in.metrics.RadSec(), in.auditor
	if rc.HardboundNAS {
		lcfg.OwnCA, lcfg.Bindings, lcfg.Outage = in.ca.Pool(), in.st, in.posture
	}
	l, err := radsec.New(lcfg, in.radius)
	if err != nil {
		return err
	}
	ln, err := l.Listen(in.ctx, addr)
	if err != nil {
		if rc.Addr == "" {
			// --dev's default port may be taken (another dev server): RADIUS/TLS
			// is then off rather than the whole server.
			in.log.Warn("dev: RADIUS/TLS not started", "addr", addr, "err", err)
			return nil
		}
		return fmt.Errorf("radsec listener: %w", err)
	}
	in.radsec = l
	in.setAddr("radsec", ln.Addr().String())
	done := make(chan struct{})
	in.wg.Add(1)
	go func() {
		defer in.wg.Done()
		defer close(done)
		in.fail("radsec", l.Serve(in.ctx, ln))
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

// coaRoute is the enforcer's Exchanger and NAS lookup: Disconnect/CoA go
// down a NAS's RADIUS/TLS connection while it holds one, by UDP otherwise;
// a NAS known only by its certificate is looked up by name.
func (in *Node) coaRoute(sender *dynauth.Sender) (dynauth.Exchanger, dynauth.NASLookup) {
	lookup := func(name string) (dynauth.NAS, bool) {
		// The server's clients carry the CoA port and secret with their
		// defaults applied. Addr empty: the session's NAS source address is
		// used, which suits clients configured by prefix.
		if c, ok := in.radius.Client(name); ok {
			return dynauth.NAS{Name: c.Name, Port: c.CoAPort, Secret: c.CoASecret}, true
		}
		if in.radsec != nil {
			return dynauth.NAS{Name: name, Secret: []byte(radius.StreamSecret)}, true
		}
		return dynauth.NAS{}, false
	}
	if in.radsec == nil {
		return sender, lookup
	}
	return sender.Via(in.radsec.Stream), lookup
}

// nasIssuer is the admin API's NAS certificate issuer.
func (in *Node) nasIssuer() *radsec.Issuer { return &radsec.Issuer{CA: in.ca, Store: in.st} }
