package node

import (
	"context"
	"crypto/x509"
	"net/http"

	"hardbound/enroll/ocsp"
)

// startOCSP builds the OCSP responder (enroll.ocsp); nil when disabled.
// It answers from the store and from in.posture, which subscribed to the
// change feed first, so the decision is fresh when the responder's cache
// is dropped.
func (in *Node) startOCSP() (*ocsp.Responder, error) {
	oc := in.cfg.Enroll.OCSP
	if !oc.Enabled {
		return nil, nil
	}
	r, err := ocsp.New(oc.Config(), in.ca, in.st, in.posture, ocsp.WithLogger(in.log),
		ocsp.WithMetrics(in.metrics.Enroll()))
	if err != nil {
		return nil, err
	}
	in.onClose(func(context.Context) error { r.Close(); return nil })
	return r, nil
}

// crlHolds is the CRL's source of holds (enroll.ocsp.crl_holds), nil when off.
func (in *Node) crlHolds(r *ocsp.Responder) func(context.Context) ([]x509.RevocationListEntry, error) {
	if r == nil || !in.cfg.Enroll.OCSP.CRLHolds {
		return nil
	}
	return func(ctx context.Context) ([]x509.RevocationListEntry, error) { return r.Holds(ctx, in.st) }
}

// mountOCSP puts /ocsp (POST) and /ocsp/<request> (GET) on mux.
func mountOCSP(mux *http.ServeMux, r *ocsp.Responder) {
	if r == nil {
		return
	}
	h := r.Handler("/ocsp")
	mux.Handle("/ocsp", h)
	mux.Handle("/ocsp/", h)
}
