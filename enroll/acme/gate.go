package acme

import (
	"context"
	"errors"
	"net/http"

	"hardbound/enroll/attest"
	"hardbound/enroll/gate"
	"hardbound/store"
)

// admission is what the gate decided for a verified attestation: the
// device's inventory record (nil when it has none) and the profile the
// certificate is issued in, which is the record's.
type admission struct {
	record  *store.Device
	profile Profile
	facts   map[string]string
}

// admit applies the issuance gate (enroll/gate, docs/inventory.md §3) to a
// verified attestation that proved the order's identifier, at the
// challenge and again at finalize (the record may have changed in
// between), then the profile's formats. Each refusal is a problem whose
// reason is the gate's label.
func (s *Server) admit(ctx context.Context, req *request, res *attest.Result, orderProfile string, named bool, ident Identifier) (*admission, *Problem) {
	d, err := s.gate.Admit(ctx, gate.Request{
		DeviceID: res.DeviceID, Identities: res.Identifiers, Format: res.Format, Facts: res.Facts,
		Profile: orderProfile, Named: named,
	})
	if err != nil {
		return nil, s.gateProblem(req, err, ident)
	}
	if d.Record != nil {
		req.device = d.Record.ID
	}
	p := s.profiles[d.Profile.Name]
	if !p.allows(res.Format) {
		return nil, problem(ProblemBadAttestationStatement, http.StatusBadRequest, "bad_attestation",
			"attestation format %q is not allowed by profile %q", res.Format, p.Name)
	}
	return &admission{record: d.Record, profile: p, facts: d.Facts}, nil
}

func (s *Server) gateProblem(req *request, err error, ident Identifier) *Problem {
	reason := gate.Reason(err)
	switch {
	case errors.Is(err, gate.ErrNotInInventory):
		p := problem(ProblemRejectedIdentifier, http.StatusForbidden, reason, "identifier %q: %v", ident.Value, err)
		idc := ident
		p.Subproblems = []Subproblem{{Type: ProblemRejectedIdentifier, Detail: "not in inventory", Identifier: &idc}}
		return p
	case errors.Is(err, gate.ErrProfileMismatch):
		return problem(ProblemUnauthorized, http.StatusForbidden, reason, "%v: enroll at %s/directory (or the profile's own directory)", err, s.base(req.r))
	case errors.Is(err, gate.ErrPlatformMismatch), errors.Is(err, gate.ErrBelowMinimum):
		return problem(ProblemUnauthorized, http.StatusForbidden, reason, "%v", err)
	case errors.Is(err, gate.ErrRevoked):
		return unauthorized("device is revoked")
	}
	s.log.Error("issuance gate failed", "device", req.device, "err", err)
	return internalErr(err, "inventory lookup failed")
}
