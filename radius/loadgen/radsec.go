package loadgen

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"time"
)

// RadSec is how a load generator's NAS reaches a RADIUS/TLS listener.
type RadSec struct {
	// Cert and Key are the NAS certificate chain and key (PEM files:
	// `hardbound nas issue` writes NAME.crt and NAME.key); CA the bundle
	// that verifies the server (its ca.crt); ServerName the name checked in
	// the server certificate (default the host of the address).
	Cert, Key, CA, ServerName string
	// Shared runs every worker over one connection instead of one each.
	Shared bool
}

// dial opens one RADIUS/TLS connection to addr.
func (r *RadSec) dial(ctx context.Context, addr string) (*tls.Conn, error) {
	if r.Cert == "" || r.Key == "" || r.CA == "" {
		return nil, errors.New("radsec: NAS certificate, key and CA bundle are required")
	}
	kp, err := tls.LoadX509KeyPair(r.Cert, r.Key)
	if err != nil {
		return nil, fmt.Errorf("radsec: NAS certificate: %w", err)
	}
	b, err := os.ReadFile(r.CA)
	if err != nil {
		return nil, fmt.Errorf("radsec: CA: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("radsec: no PEM certificate in %s", r.CA)
	}
	name := r.ServerName
	if name == "" {
		if name, _, err = net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("radsec: server %q: %w", addr, err)
		}
	}
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second},
		Config: &tls.Config{Certificates: []tls.Certificate{kp}, RootCAs: roots, ServerName: name, MinVersion: tls.VersionTLS12}}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("radsec: %w", err)
	}
	return c.(*tls.Conn), nil
}
