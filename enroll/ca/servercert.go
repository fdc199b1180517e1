package ca

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"hardbound/store/atomicfile"
)

// ServerCert loads dataDir/tls/<name>.{crt,key} when it was issued by the
// current issuing CA and has more than 30 days left; otherwise it issues a
// new one and writes it (key 0600). Supplicants pin the CA and server name,
// so a stable certificate across restarts avoids needless churn. With
// loopbackIPs and no IP among names, 127.0.0.1 and ::1 are added (for the
// HTTPS listeners the CLI reaches by address).
func (c *CA) ServerCert(ctx context.Context, dataDir, name string, names []string, loopbackIPs bool) (tls.Certificate, error) {
	dir := filepath.Join(dataDir, "tls")
	crtPath, keyPath := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	var dns []string
	var ips []net.IP
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			ips = append(ips, ip)
		} else {
			dns = append(dns, n)
		}
	}
	if len(ips) == 0 && loopbackIPs {
		ips = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	}
	if kp, err := tls.LoadX509KeyPair(crtPath, keyPath); err == nil {
		leaf, err := x509.ParseCertificate(kp.Certificate[0])
		// Reuse only a cert for exactly these names: a changed server_names
		// (or an older cert with IP SANs the RADIUS flight no longer wants)
		// gets a new one.
		if err == nil && leaf.CheckSignatureFrom(c.Issuing()) == nil && time.Until(leaf.NotAfter) > 30*24*time.Hour &&
			slices.Equal(leaf.DNSNames, dns) && slices.EqualFunc(leaf.IPAddresses, ips, net.IP.Equal) {
			kp.Leaf = leaf
			return kp, nil
		}
	}
	kp, err := c.IssueServerTLS(ctx, dns, ips, 0)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issue %s server certificate: %w", name, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return tls.Certificate{}, err
	}
	var crt []byte
	for _, der := range kp.Certificate {
		crt = append(crt, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(kp.PrivateKey)
	if err != nil {
		return tls.Certificate{}, err
	}
	if err := atomicfile.Write(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return tls.Certificate{}, err
	}
	if err := atomicfile.Write(crtPath, crt, 0o644); err != nil {
		return tls.Certificate{}, err
	}
	return kp, nil
}
