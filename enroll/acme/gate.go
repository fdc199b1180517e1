package acme

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"slices"

	"hardbound/enroll/attest"
	"hardbound/store"
	"hardbound/store/policy"
)

// admission is what the gate decided for a verified attestation: the
// device's inventory record (nil when it has none) and the profile the
// certificate is issued in, which is the record's.
type admission struct {
	record  *store.Device
	profile Profile
	facts   map[string]string
}

// admit is the issuance gate (docs/inventory.md): it runs once the
// attestation verified and proved the order's identifier, at the challenge
// and again at finalize (the record may have changed in between). In
// order:
//
//  1. the device's record, by the proved device id, then by every identity
//     the evidence proves (serial, udid, ek_sha256...);
//  2. the profile is the record's: an order under another profile's URL is
//     refused, never adopted; the default URL takes the record's;
//  3. a profile that requires inventory refuses a device without a record,
//     or whose record its source removed;
//  4. the format must be the record's platform's (an Android attestation
//     naming a Mac's serial is not the Mac), and the formats of the
//     record's attested bindings fix it when the platform is not known;
//  5. the attested facts must meet the profile's minimums.
func (s *Server) admit(ctx context.Context, req *request, res *attest.Result, orderProfile string, named bool, ident Identifier) (*admission, *Problem) {
	rec, err := s.inventoryRecord(ctx, res)
	if err != nil {
		s.log.Error("inventory lookup failed", "device", res.DeviceID, "err", err)
		return nil, serverInternal("inventory lookup failed")
	}
	name := orderProfile
	if rec != nil {
		req.device = rec.ID
		own := rec.Profile
		if own == "" {
			own = s.deflt
		}
		if named && own != orderProfile {
			return nil, problem(ProblemUnauthorized, http.StatusForbidden, "profile_mismatch",
				"device %q belongs to profile %q, not %q: enroll at %s/profile/%s/directory", rec.ID, own, orderProfile, s.base(req.r), own)
		}
		name = own
	}
	p, ok := s.profiles[name]
	if !ok {
		return nil, problem(ProblemUnauthorized, http.StatusForbidden, "profile_mismatch",
			"device %q belongs to profile %q, which this server does not serve", rec.ID, name)
	}
	if p.RequireInventory && !rec.InInventory() {
		why := "is not in the inventory"
		if rec != nil {
			why = "was removed from the inventory by " + orDefault(rec.Source, "its source")
		}
		pr := problem(ProblemRejectedIdentifier, http.StatusForbidden, "not_in_inventory",
			"device %q (identifier %q) %s: profile %q enrolls only inventoried devices", res.DeviceID, ident.Value, why, p.Name)
		idc := ident
		pr.Subproblems = []Subproblem{{Type: ProblemRejectedIdentifier, Detail: "not in inventory", Identifier: &idc}}
		return nil, pr
	}
	if rec != nil && rec.Status == store.DeviceRevoked {
		return nil, unauthorized("device is revoked")
	}
	if !p.allows(res.Format) {
		return nil, problem(ProblemBadAttestationStatement, http.StatusBadRequest, "bad_attestation",
			"attestation format %q is not allowed by profile %q", res.Format, p.Name)
	}
	if rec != nil {
		if pr := s.checkPlatform(ctx, rec, res.Format); pr != nil {
			return nil, pr
		}
	}
	facts := factsFor(res, rec)
	if err := p.Minimums.Check(res.Format, facts); err != nil {
		return nil, problem(ProblemUnauthorized, http.StatusForbidden, "below_minimum", "profile %q: %v", p.Name, err)
	}
	return &admission{record: rec, profile: p, facts: facts}, nil
}

// inventoryRecord finds the device the evidence proves: by its device id,
// then by each proved identity as an alias. nil, nil when there is none.
func (s *Server) inventoryRecord(ctx context.Context, res *attest.Result) (*store.Device, error) {
	if res.DeviceID != "" {
		d, err := s.store.GetDevice(ctx, res.DeviceID)
		if err == nil {
			return d, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
	}
	for _, kind := range slices.Sorted(maps.Keys(res.Identifiers)) {
		v := res.Identifiers[kind]
		if v == "" {
			continue
		}
		d, err := s.store.FindDeviceByAlias(ctx, kind, v)
		if err == nil {
			return d, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
	}
	return nil, nil
}

// maxBindingsChecked bounds the bindings read to learn a device's format
// when its record has no platform.
const maxBindingsChecked = 16

// checkPlatform refuses a format that is not the record's platform's, or,
// for a record without a platform, not the format of its attested bindings.
func (s *Server) checkPlatform(ctx context.Context, rec *store.Device, format string) *Problem {
	if err := policy.CheckPlatformFormat(rec.Platform, format); err != nil {
		return problem(ProblemUnauthorized, http.StatusForbidden, "platform_mismatch", "device %q: %v", rec.ID, err)
	}
	if rec.Platform != "" {
		return nil
	}
	certs, _, err := s.store.ListCerts(ctx, store.CertFilter{DeviceID: rec.ID, NoDER: true}, store.Page{Limit: maxBindingsChecked})
	if err != nil {
		s.log.Error("binding lookup failed", "device", rec.ID, "err", err)
		return serverInternal("binding lookup failed")
	}
	for _, c := range certs {
		if !c.Attested || c.AttestationID == "" {
			continue
		}
		a, err := s.store.GetAttestation(ctx, c.AttestationID)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			s.log.Error("attestation lookup failed", "device", rec.ID, "err", err)
			return serverInternal("attestation lookup failed")
		}
		if a.Format != format {
			return problem(ProblemUnauthorized, http.StatusForbidden, "platform_mismatch",
				"device %q attested with %s before (certificate %s), not %s", rec.ID, a.Format, c.Serial, format)
		}
	}
	return nil
}

// factsFor is the attestation's facts, with the OS family of an Apple
// device taken from its inventory record when the evidence does not state
// it (only macOS evidence does: enroll/attest).
func factsFor(res *attest.Result, rec *store.Device) map[string]string {
	if res.Format != policy.FormatApple || res.Facts["os"] != "" || rec == nil {
		return res.Facts
	}
	switch rec.Platform {
	case policy.PlatformIOS, policy.PlatformMacOS:
		f := maps.Clone(res.Facts)
		if f == nil {
			f = map[string]string{}
		}
		f["os"] = rec.Platform
		f["os_source"] = "inventory"
		return f
	}
	return res.Facts
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
