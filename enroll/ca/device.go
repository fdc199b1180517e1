package ca

import (
	"crypto/x509"
	"math/big"
	"net/url"
	"strings"
)

// deviceURNPrefix is the opaque part of the SAN URI before the escaped id.
const deviceURNPrefix = "hardbound:device:"

// DeviceURI returns the SAN URI that carries a device id in its certificate:
// urn:hardbound:device:<PathEscape(id)>.
func DeviceURI(id string) *url.URL {
	return &url.URL{Scheme: "urn", Opaque: deviceURNPrefix + url.PathEscape(id)}
}

// DeviceID returns the device id from cert's hardbound SAN URI. It reports
// false if there is none, or if there is more than one (which this CA never
// issues, so such a cert is not trusted to name a device).
func DeviceID(cert *x509.Certificate) (string, bool) {
	if cert == nil {
		return "", false
	}
	var id string
	found := 0
	for _, u := range cert.URIs {
		if u == nil || !strings.EqualFold(u.Scheme, "urn") || !strings.HasPrefix(u.Opaque, deviceURNPrefix) {
			continue
		}
		v, err := url.PathUnescape(strings.TrimPrefix(u.Opaque, deviceURNPrefix))
		if err != nil || v == "" {
			return "", false
		}
		id = v
		found++
	}
	if found != 1 {
		return "", false
	}
	return id, true
}

// SerialString formats a certificate serial the way store.Cert.Serial holds
// it: lower-case hex without leading zeros.
func SerialString(n *big.Int) string {
	if n == nil {
		return ""
	}
	return n.Text(16)
}
