package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
)

type benchTLSFlags struct {
	listen, connect, cert, key, clientCA string
	certDir, ca, tlsVersion, serverName  string
	count, concurrency                   int
}

// newBenchTLSBaselineCmd is the yardstick for the EAP-TLS server's CPU: the
// same mutual-auth handshake with bare crypto/tls over loopback TCP, server
// and client in separate processes so the server's CPU can be read from
// /proc exactly as for `serve`.
func newBenchTLSBaselineCmd(e *env) *cobra.Command {
	f := &benchTLSFlags{}
	cmd := &cobra.Command{
		Use:   "tls-baseline",
		Short: "Bare crypto/tls mutual-auth handshakes (server or client), the CPU yardstick for EAP-TLS",
		Long: `tls-baseline runs the handshake EAP-TLS carries, without EAP or RADIUS:
with --listen it is a TLS server (RequireAndVerifyClientCert against
--client-ca, no session tickets, TLS 1.3 sends one application byte like
EAP-TLS's success indication); with --connect it drives --count handshakes,
--concurrency at a time, with the certificates of --cert-dir. Read the
server's CPU from /proc/<pid>/stat before and after (see BENCHMARKS.md).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case f.listen != "" && f.connect == "":
				return tlsBaselineServer(cmd.Context(), e, f)
			case f.connect != "" && f.listen == "":
				return tlsBaselineClient(cmd.Context(), e, f)
			}
			return errors.New("use --listen ADDR (server) or --connect ADDR (client)")
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.listen, "listen", "", "server: TCP address to listen on")
	fl.StringVar(&f.cert, "cert", "", "server: certificate chain (PEM), e.g. <data>/tls/radius.crt")
	fl.StringVar(&f.key, "key", "", "server: private key (PEM)")
	fl.StringVar(&f.clientCA, "client-ca", "", "server: CA that issues client certificates, e.g. <data>/ca/issuing.crt")
	fl.StringVar(&f.connect, "connect", "", "client: server TCP address")
	fl.StringVar(&f.certDir, "cert-dir", "", "client: <id>.crt/<id>.key pairs (bench make-devices --out)")
	fl.StringVar(&f.ca, "ca", "", "client: CA bundle for the server certificate (default <cert-dir>/ca.crt)")
	fl.StringVar(&f.serverName, "server-name", "", "client: expected server name (default: chain check only)")
	fl.StringVar(&f.tlsVersion, "tls", "1.3", "client: 1.2 or 1.3")
	fl.IntVar(&f.count, "count", 1000, "client: handshakes")
	fl.IntVar(&f.concurrency, "concurrency", 8, "client: handshakes in flight")
	return cmd
}

func tlsBaselineServer(ctx context.Context, e *env, f *benchTLSFlags) error {
	kp, err := tls.LoadX509KeyPair(f.cert, f.key)
	if err != nil {
		return fmt.Errorf("server certificate: %w", err)
	}
	b, err := os.ReadFile(f.clientCA)
	if err != nil {
		return fmt.Errorf("client CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return fmt.Errorf("client CA: %s holds no PEM certificate", f.clientCA)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{kp}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert,
		SessionTicketsDisabled: true, MinVersion: tls.VersionTLS12}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", f.listen)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	fmt.Fprintf(e.stdout, "tls-baseline listening on %s, pid %d\n", ln.Addr(), os.Getpid())
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		wg.Go(func() {
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
			s := tls.Server(conn, cfg)
			if err := s.Handshake(); err != nil {
				return
			}
			if s.ConnectionState().Version == tls.VersionTLS13 {
				_, _ = s.Write([]byte{0}) // as EAP-TLS's protected success indication
			}
			var one [1]byte
			_, _ = s.Read(one[:]) // until the client closes
		})
	}
}

func tlsBaselineClient(ctx context.Context, e *env, f *benchTLSFlags) error {
	bf := &benchEAPFlags{secret: "unused", ca: f.ca, certDir: f.certDir, tlsVersion: f.tlsVersion, serverName: f.serverName}
	_, peers, err := bf.load()
	if err != nil {
		return err
	}
	if f.count < 1 || f.concurrency < 1 {
		return errors.New("--count and --concurrency must be at least 1")
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
	for range min(f.concurrency, f.count) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(f.count) {
					return
				}
				if err := tlsBaselineOne(ctx, &d, f.connect, peers[i%int64(len(peers))].tls); err != nil {
					failed.Add(1)
					errOnce.Do(func() { firstErr = err })
				}
			}
		})
	}
	wg.Wait()
	el := time.Since(start)
	fmt.Fprintf(e.stdout, "%d handshakes (TLS %s) in %.2fs: %.1f/s, %d failed\n", f.count, f.tlsVersion, el.Seconds(),
		float64(f.count)/el.Seconds(), failed.Load())
	if firstErr != nil {
		return fmt.Errorf("first failure: %w", firstErr)
	}
	return nil
}

func tlsBaselineOne(ctx context.Context, d *net.Dialer, addr string, cfg *tls.Config) error {
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
