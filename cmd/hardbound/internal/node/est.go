package node

import (
	"crypto/tls"
	"net/http"
	"slices"

	"hardbound/enroll/est"
	"hardbound/enroll/limit"
)

// startEST builds the EST server (enroll.est); nil when disabled. It
// shares the enrollment rate limiter, so a device or an address has one
// budget across ACME, SCEP and EST.
func (in *Node) startEST(lim *limit.Limiter) (http.Handler, error) {
	ec := in.cfg.Enroll.EST
	if !ec.Enabled {
		return nil, nil
	}
	var names []string
	var profiles []est.Profile
	for _, p := range in.cfg.effectiveProfiles() {
		names = append(names, p.Name)
		profiles = append(profiles, est.Profile{
			Name: p.Name, Validity: p.Validity.D(), Platform: p.SCEP.Platform, Formats: p.Formats,
			RequireAttestation:    slices.Contains(ec.RequireAttestation, p.Name),
			RevokeOnRenew:         ec.RevokeOnRenew,
			RequireChannelBinding: slices.Contains(ec.RequireChannelBinding, p.Name),
		})
	}
	if err := ec.Validate("enroll.est", names); err != nil {
		return nil, err
	}
	roots, inter, err := ec.Pools("enroll.est")
	if err != nil {
		return nil, err
	}
	g, err := in.issuanceGate()
	if err != nil {
		return nil, err
	}
	s, err := est.New(est.Config{Profiles: profiles, Limiter: lim, Logger: in.log, Bootstrap: roots, BootstrapIntermediates: inter, Gate: g,
		Metrics: in.metrics.Enroll()},
		in.ca, in.st, in.posture)
	if err != nil {
		return nil, err
	}
	return s.Handler(), nil
}

// estTLS asks enrollment clients for a certificate without requiring one:
// simplereenroll authenticates with it (and verifies it itself), every
// other endpoint ignores it.
func estTLS(tc *tlsConfig, h http.Handler) *tlsConfig {
	if h != nil {
		tc.ClientAuth = tls.RequestClientCert
	}
	return tc
}
