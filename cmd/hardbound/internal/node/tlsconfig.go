package node

import "crypto/tls"

type tlsConfig struct{ *tls.Config }

func newTLSConfig(kp tlsCertificate) *tlsConfig {
	return &tlsConfig{&tls.Config{Certificates: []tls.Certificate{kp}, MinVersion: tls.VersionTLS12}}
}

type tlsCertificate = tls.Certificate
