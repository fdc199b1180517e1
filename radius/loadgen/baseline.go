package loadgen

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// The TLS baseline is the yardstick for the EAP-TLS server's CPU: the same
// mutual-auth handshake with bare crypto/tls over loopback TCP, server and
// client in separate processes so the server's CPU can be read from /proc
// exactly as for hardbound serve.

// BaselineServerConfig configures the TLS baseline's server.
type BaselineServerConfig struct {
	// Listen is the TCP address to listen on.
	Listen string
	// Cert and Key are the server's certificate chain and key (PEM), e.g.
	// the RADIUS server's own.
	Cert, Key string
	// ClientCA is the PEM CA that issues client certificates.
	ClientCA string
}

// BaselineServer answers TLS baseline handshakes: RequireAndVerifyClientCert
// against the client CA, no session tickets (EAP-TLS servers resume
// nothing either) and, in TLS 1.3, one application byte like EAP-TLS's
// protected success indication (RFC 9190 §2.5).
type BaselineServer struct {
	ln  net.Listener
	cfg *tls.Config
}

// ListenBaseline loads the certificates and listens on cfg.Listen.
func ListenBaseline(ctx context.Context, cfg BaselineServerConfig) (*BaselineServer, error) {
	kp, err := tls.LoadX509KeyPair(cfg.Cert, cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("server certificate: %w", err)
	}
	b, err := os.ReadFile(cfg.ClientCA)
	if err != nil {
		return nil, fmt.Errorf("client CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("client CA: %s holds no PEM certificate", cfg.ClientCA)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.Listen)
	if err != nil {
		return nil, err
	}
	return &BaselineServer{ln: ln, cfg: &tls.Config{Certificates: []tls.Certificate{kp}, ClientCAs: pool,
		ClientAuth: tls.RequireAndVerifyClientCert, SessionTicketsDisabled: true, MinVersion: tls.VersionTLS12}}, nil
}

// Addr is the address the server listens on.
func (s *BaselineServer) Addr() net.Addr { return s.ln.Addr() }

// Serve answers handshakes until ctx ends, then closes the listener, waits
// for the connections in flight and returns nil.
func (s *BaselineServer) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { s.ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.ln.Close()
			return err
		}
		wg.Go(func() {
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
			c := tls.Server(conn, s.cfg)
			if err := c.Handshake(); err != nil {
				return
			}
			if c.ConnectionState().Version == tls.VersionTLS13 {
				_, _ = c.Write([]byte{0})
			}
			var one [1]byte
			_, _ = c.Read(one[:]) // until the client closes
		})
	}
}

// BaselineConfig configures the TLS baseline's client.
type BaselineConfig struct {
	// Connect is the baseline server's TCP address.
	Connect string
	// Certs are the client certificates, one handshake per certificate in
	// turn. Certs.Dir is the usual source.
	Certs
	// Count handshakes are made, Concurrency at a time; both at least 1.
	Count, Concurrency int
}

// BaselineReport is the outcome of a baseline run.
type BaselineReport struct {
	// Handshakes is the number asked for, TLS the version.
	Handshakes int
	TLS        string
	Elapsed    time.Duration
	// Failed counts the handshakes that failed, FirstErr is the first.
	Failed   int
	FirstErr error
}

// RunBaseline makes cfg.Count mutual-auth handshakes with the baseline
// server. It returns an error only when the run cannot start; failed
// handshakes are in the report.
func RunBaseline(ctx context.Context, cfg BaselineConfig) (BaselineReport, error) {
	sups, err := cfg.Certs.load()
	if err != nil {
		return BaselineReport{}, err
	}
	if cfg.Count < 1 || cfg.Concurrency < 1 {
		return BaselineReport{}, errors.New("count and concurrency must be at least 1")
	}
	var (
		next     atomic.Int64
		failed   atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	d := net.Dialer{Timeout: 10 * time.Second}
	start := time.Now()
	for range min(cfg.Concurrency, cfg.Count) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(cfg.Count) {
					return
				}
				if err := baselineHandshake(ctx, &d, cfg.Connect, sups[i%int64(len(sups))].tls); err != nil {
					failed.Add(1)
					errOnce.Do(func() { firstErr = err })
				}
			}
		})
	}
	wg.Wait()
	return BaselineReport{Handshakes: cfg.Count, TLS: cfg.TLSVersion, Elapsed: time.Since(start),
		Failed: int(failed.Load()), FirstErr: firstErr}, nil
}

// baselineHandshake is one connection: the handshake and, in TLS 1.3, the
// server's one byte, so both sides have done what an EAP-TLS exchange does.
func baselineHandshake(ctx context.Context, d *net.Dialer, addr string, cfg *tls.Config) error {
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(30 * time.Second))
	c := tls.Client(raw, cfg)
	if err := c.HandshakeContext(ctx); err != nil {
		return err
	}
	if c.ConnectionState().Version == tls.VersionTLS13 {
		var one [1]byte
		if _, err := c.Read(one[:]); err != nil {
			return err
		}
	}
	return nil
}

// WriteText writes the report as hardbound bench tls-baseline prints it.
func (r BaselineReport) WriteText(w io.Writer) error {
	_, err := fmt.Fprintf(w, "%d handshakes (TLS %s) in %.2fs: %.1f/s, %d failed\n", r.Handshakes, r.TLS, r.Elapsed.Seconds(),
		float64(r.Handshakes)/r.Elapsed.Seconds(), r.Failed)
	return err
}
