// Package gate is the issuance gate every enrollment protocol applies
// before it issues (docs/inventory.md §3): the device's inventory record,
// the profile (the record's, never the one the request names), the
// attestation format its platform attests with, and the profile's
// minimums on the attested facts. Errors are sentinels each protocol maps
// to its own refusal (ACME problem documents, SCEP failInfo).
package gate

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync/atomic"

	"hardbound/store"
	"hardbound/store/policy"
)

// Sentinel errors, matched with errors.Is. Each names the refusal's
// bounded reason (metric label, audit reason) in Reason.
var (
	ErrNotInInventory   = errors.New("not in the inventory")
	ErrProfileMismatch  = errors.New("profile mismatch")
	ErrPlatformMismatch = errors.New("platform mismatch")
	ErrBelowMinimum     = policy.ErrBelowMinimum
	ErrRevoked          = errors.New("device revoked")
)

// Reason is the bounded label of a gate error ("" for nil, "error" for
// an error that is not the gate's).
func Reason(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrNotInInventory):
		return "not_in_inventory"
	case errors.Is(err, ErrProfileMismatch):
		return "profile_mismatch"
	case errors.Is(err, ErrPlatformMismatch):
		return "platform_mismatch"
	case errors.Is(err, ErrBelowMinimum):
		return "below_minimum"
	case errors.Is(err, ErrRevoked):
		return "unauthorized"
	}
	return "error"
}

// Store is what the gate reads (store.Store satisfies it).
type Store interface {
	GetDevice(ctx context.Context, id string) (*store.Device, error)
	FindDeviceByAlias(ctx context.Context, kind, value string) (*store.Device, error)
	ListCerts(ctx context.Context, f store.CertFilter, p store.Page) ([]*store.Cert, string, error)
	GetAttestation(ctx context.Context, id string) (*store.Attestation, error)
}

// Profile is what the gate needs of a profile.
type Profile struct {
	Name             string
	RequireInventory bool
	Minimums         policy.Minimums
}

// Gate applies the inventory and attested-fact policy.
type Gate struct {
	st  Store
	set atomic.Pointer[profileSet] // replaced whole by SetProfiles
}

// profileSet is one configuration of the gate's profiles.
type profileSet struct {
	profiles map[string]Profile
	deflt    string
}

func newSet(profiles []Profile, deflt string) (*profileSet, error) {
	ps := &profileSet{profiles: make(map[string]Profile, len(profiles)), deflt: deflt}
	for _, p := range profiles {
		ps.profiles[p.Name] = p
	}
	if _, ok := ps.profiles[deflt]; !ok {
		return nil, fmt.Errorf("gate: default profile %q is not a profile", deflt)
	}
	return ps, nil
}

// New builds a Gate; deflt is the profile of a record that names none.
func New(st Store, profiles []Profile, deflt string) (*Gate, error) {
	ps, err := newSet(profiles, deflt)
	if err != nil {
		return nil, err
	}
	g := &Gate{st: st}
	g.set.Store(ps)
	return g, nil
}

// SetProfiles replaces the profiles (a configuration reload) in one step:
// every Admit that starts after it returns applies the new ones. On error
// the gate keeps its profiles.
func (g *Gate) SetProfiles(profiles []Profile, deflt string) error {
	ps, err := newSet(profiles, deflt)
	if err != nil {
		return err
	}
	g.set.Store(ps)
	return nil
}

// Request is one issuance about to happen.
type Request struct {
	// DeviceID and Identities are what the evidence (or the challenge)
	// names: the device id and the aliases it proves (serial, udid,
	// ek_sha256...).
	DeviceID   string
	Identities map[string]string
	// Format and Facts are the verified attestation; Format "" or
	// policy.FormatNone is an unattested key (no platform or minimum
	// check applies to it: the profile's formats decide).
	Format string
	Facts  map[string]string
	// Profile is the profile the request is for; Named says the client
	// chose it (a profile URL) rather than took the default.
	Profile string
	Named   bool
}

// Decision is an admitted request: the device's record (nil when it has
// none and the profile does not require one), the profile to issue in, and
// the facts to record (with the OS family from the record, when the
// evidence does not state it).
type Decision struct {
	Record  *store.Device
	Profile Profile
	Facts   map[string]string
}

// DeviceID is the id to issue to: the record's when there is one.
func (d *Decision) DeviceID(fallback string) string {
	if d.Record != nil {
		return d.Record.ID
	}
	return fallback
}

// maxBindingsChecked bounds the bindings read to learn a device's format
// when its record has no platform.
const maxBindingsChecked = 16

// Admit applies the gate. Errors wrap a sentinel above (or are the
// store's).
func (g *Gate) Admit(ctx context.Context, r Request) (*Decision, error) {
	ps := g.set.Load()
	rec, err := g.find(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("gate: inventory lookup: %w", err)
	}
	name := r.Profile
	if name == "" {
		name = ps.deflt
	}
	if rec != nil {
		own := rec.Profile
		if own == "" {
			own = ps.deflt
		}
		if r.Named && own != r.Profile {
			return nil, fmt.Errorf("%w: device %q belongs to profile %q, not %q", ErrProfileMismatch, rec.ID, own, r.Profile)
		}
		name = own
	}
	p, ok := ps.profiles[name]
	if !ok {
		return nil, fmt.Errorf("%w: device %q belongs to profile %q, which this server does not serve", ErrProfileMismatch, r.DeviceID, name)
	}
	if p.RequireInventory && !rec.InInventory() {
		if rec != nil {
			src := rec.Source
			if src == "" {
				src = "its source"
			}
			return nil, fmt.Errorf("%w: device %q was removed from the inventory by %s (profile %q enrolls only inventoried devices)", ErrNotInInventory, rec.ID, src, p.Name)
		}
		return nil, fmt.Errorf("%w: device %q (profile %q enrolls only inventoried devices)", ErrNotInInventory, r.DeviceID, p.Name)
	}
	if rec != nil && rec.Status == store.DeviceRevoked {
		return nil, fmt.Errorf("%w: device %q", ErrRevoked, rec.ID)
	}
	d := &Decision{Record: rec, Profile: p, Facts: r.Facts}
	if !policy.IsHardware(r.Format) {
		return d, nil
	}
	if rec != nil {
		if err := g.checkPlatform(ctx, rec, r.Format); err != nil {
			return nil, err
		}
	}
	d.Facts = factsFor(r.Format, r.Facts, rec)
	if err := p.Minimums.Check(r.Format, d.Facts); err != nil {
		return nil, fmt.Errorf("profile %q: %w", p.Name, err)
	}
	return d, nil
}

// find returns the device the request names: by its device id, then by
// each identity as an alias; nil, nil when there is none.
func (g *Gate) find(ctx context.Context, r Request) (*store.Device, error) {
	if r.DeviceID != "" {
		d, err := g.st.GetDevice(ctx, r.DeviceID)
		if err == nil {
			return d, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
	}
	for _, kind := range slices.Sorted(maps.Keys(r.Identities)) {
		v := r.Identities[kind]
		if v == "" {
			continue
		}
		d, err := g.st.FindDeviceByAlias(ctx, kind, v)
		if err == nil {
			return d, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
	}
	return nil, nil
}

// checkPlatform refuses a format that is not the record's platform's, or,
// for a record without a platform, not the format of its attested bindings.
func (g *Gate) checkPlatform(ctx context.Context, rec *store.Device, format string) error {
	if err := policy.CheckPlatformFormat(rec.Platform, format); err != nil {
		return fmt.Errorf("%w: device %q: %w", ErrPlatformMismatch, rec.ID, err)
	}
	if rec.Platform != "" {
		return nil
	}
	certs, _, err := g.st.ListCerts(ctx, store.CertFilter{DeviceID: rec.ID, NoDER: true}, store.Page{Limit: maxBindingsChecked})
	if err != nil {
		return fmt.Errorf("gate: bindings of %q: %w", rec.ID, err)
	}
	for _, c := range certs {
		if !c.Attested || c.AttestationID == "" {
			continue
		}
		a, err := g.st.GetAttestation(ctx, c.AttestationID)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("gate: attestation %s: %w", c.AttestationID, err)
		}
		if a.Format != format {
			return fmt.Errorf("%w: device %q attested with %s before (certificate %s), not %s", ErrPlatformMismatch, rec.ID, a.Format, c.Serial, format)
		}
	}
	return nil
}

// factsFor is the attestation's facts, with the OS family of an Apple
// device taken from its inventory record when the evidence does not state
// it (only macOS evidence does: enroll/attest).
func factsFor(format string, facts map[string]string, rec *store.Device) map[string]string {
	if format != policy.FormatApple || facts["os"] != "" || rec == nil {
		return facts
	}
	switch rec.Platform {
	case policy.PlatformIOS, policy.PlatformMacOS:
		f := maps.Clone(facts)
		if f == nil {
			f = map[string]string{}
		}
		f["os"] = rec.Platform
		f["os_source"] = "inventory"
		return f
	}
	return facts
}
