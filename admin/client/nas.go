package client

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"

	"hardbound/admin"
	"hardbound/store/atomicfile"
)

// NASFiles are the files IssueNAS writes in its directory.
func NASFiles(dir, name string) (key, cert, ca string) {
	return filepath.Join(dir, name+".key"), filepath.Join(dir, name+".crt"), filepath.Join(dir, "ca.crt")
}

// IssueNAS gets a NAS certificate for RADIUS/TLS from the server's CA.
// The P-256 key is made here and never sent; the server records the
// certificate, so the NAS is a client at once. It writes the NASFiles in
// dir (created 0700): the key (0600), the chain the NAS presents and the
// CAs it trusts for the server.
func (c *Client) IssueNAS(ctx context.Context, name string, dns []string, dir string) (admin.NASResponse, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return admin.NASResponse{}, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: name}}, key)
	if err != nil {
		return admin.NASResponse{}, err
	}
	resp, err := post[admin.NASResponse](ctx, c, "/api/v1/nas", admin.NASRequest{Name: name, DNS: dns, CSR: base64.StdEncoding.EncodeToString(der)})
	if err != nil {
		return resp, err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return resp, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return resp, err
	}
	keyPath, certPath, caPath := NASFiles(dir, name)
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600},
		{certPath, []byte(resp.Certificate), 0o644},
		{caPath, []byte(resp.CABundle), 0o644},
	} {
		if err := atomicfile.Write(f.path, f.data, f.mode); err != nil {
			return resp, err
		}
	}
	return resp, nil
}
