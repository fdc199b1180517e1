package posture

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"

	"hardbound/store"
	"hardbound/store/policy"
)

// EventPolicy is published by ReviewSessions for a certificate whose live
// sessions were admitted under profiles that SetProfiles replaced and
// that the new profiles would not admit the same way (refused now, or to
// another VLAN). CertSHA256 names the certificate; Device is its device.
const EventPolicy EventKind = "policy"

// profileSet is one configuration of profiles, never modified once built.
type profileSet struct {
	byName map[string]*Profile
}

func (ps *profileSet) get(name string) *Profile {
	if p, ok := ps.byName[name]; ok {
		return p
	}
	return ps.byName[policy.DefaultProfile]
}

// buildProfiles checks profiles as New takes them and adds the strict
// default profile unless they name it.
func (s *Service) buildProfiles(profiles []Profile) (*profileSet, error) {
	set := &profileSet{byName: make(map[string]*Profile, len(profiles)+1)}
	for i := range profiles {
		p := profiles[i]
		if p.Name == "" {
			return nil, fmt.Errorf("posture: profiles[%d]: name is empty", i)
		}
		if _, dup := set.byName[p.Name]; dup {
			return nil, fmt.Errorf("posture: profiles[%d]: duplicate name %q", i, p.Name)
		}
		for _, a := range []*Action{&p.Noncompliant, &p.Unknown} {
			var err error
			if *a, err = ParseAction(string(*a)); err != nil {
				return nil, fmt.Errorf("posture: profile %q: %w", p.Name, err)
			}
		}
		if p.Formats.AdmitsUnattested() {
			s.log.Warn("WARNING: profile admits unattested certificates", "profile", p.Name)
		}
		p.Formats = slices.Clone(p.Formats)
		set.byName[p.Name] = &p
	}
	if _, ok := set.byName[policy.DefaultProfile]; !ok {
		set.byName[policy.DefaultProfile] = &Profile{Name: policy.DefaultProfile, Noncompliant: ActionReject, Unknown: ActionReject}
	}
	return set, nil
}

// Profiles is one configuration of profiles as SetProfiles returns the
// one it replaced, for ReviewSessions.
type Profiles struct{ set *profileSet }

// SetProfiles replaces the profiles (checked as New checks them) in one
// step: every decision that starts after it returns judges by the new
// ones, the Disconnect/CoA enforcer plans by them, and ticket lifetimes
// follow them. Cached bindings carry whether their attestation meets
// their profile's minimums, so when any profile's minimums changed every
// cached binding is dropped (the next decision, or Warm, reloads it).
// It returns the replaced profiles, for ReviewSessions, and whether the
// binding cache was dropped. Sessions admitted before are not touched
// here: ReviewSessions treats them as a standing change.
func (s *Service) SetProfiles(profiles []Profile) (old Profiles, dropped bool, err error) {
	set, err := s.buildProfiles(profiles)
	if err != nil {
		return Profiles{}, false, err
	}
	prev := s.profiles.Swap(set)
	if minimumsChanged(prev, set) {
		// After the swap: a binding loaded with the old minimums from
		// now on took its generation before this clear, so it is not
		// cached (cache.put).
		s.certs.clear()
		dropped = true
	}
	return Profiles{set: prev}, dropped, nil
}

func minimumsChanged(a, b *profileSet) bool {
	names := slices.Collect(maps.Keys(a.byName))
	names = append(names, slices.Collect(maps.Keys(b.byName))...)
	for _, n := range names {
		if !reflect.DeepEqual(a.get(n).Minimums, b.get(n).Minimums) {
			return true
		}
	}
	return false
}

// reviewPage is the page size ReviewSessions lists live sessions in.
const reviewPage = 500

// ReviewSessions judges every live session again under the profiles now
// in force and under old (what SetProfiles returned), and publishes an
// EventPolicy for each certificate that old admitted and the new profiles
// refuse, or admit to another VLAN: the enforcer (radius/dynauth) then
// disconnects its sessions and the device re-authenticates under the new
// policy, as after any standing change. The device is marked changed for
// StandingChangedSince. It reads the store for each session (bindings,
// attestations and devices, not the caches, which SetProfiles may have
// dropped) one page at a time, stops when ctx ends, and returns how many
// live sessions it judged and how many certificates it published.
func (s *Service) ReviewSessions(ctx context.Context, old Profiles, actor string) (sessions, published int, err error) {
	if old.set == nil {
		return 0, 0, errors.New("posture: review sessions: no previous profiles")
	}
	seen := map[store.Hash]bool{}
	var p store.Page
	p.Limit = reviewPage
	for {
		if err := ctx.Err(); err != nil {
			return sessions, published, err
		}
		page, next, err := s.st.ListSessions(ctx, "", true, p)
		if err != nil {
			return sessions, published, fmt.Errorf("posture: review sessions: %w", err)
		}
		for _, sess := range page {
			if !sess.Live() || sess.CertSHA256.IsZero() {
				continue
			}
			sessions++
			if seen[sess.CertSHA256] {
				continue
			}
			seen[sess.CertSHA256] = true
			ev, changed, err := s.review(ctx, old.set, sess.CertSHA256)
			if err != nil {
				s.log.WarnContext(ctx, "policy review of a session", "device", sess.DeviceID, "err", err)
				continue
			}
			if changed {
				ev.Source = actor
				s.changes.mark(ev.DeviceID, ev.At)
				s.publish(ev)
				published++
			}
		}
		if next == "" || len(page) == 0 {
			return sessions, published, nil
		}
		p.After = next
	}
}

// review judges one binding under old and current profiles.
func (s *Service) review(ctx context.Context, old *profileSet, sha store.Hash) (Event, bool, error) {
	c, err := s.st.GetCertBinding(ctx, sha)
	if err != nil {
		return Event{}, false, err
	}
	if c.Profile == policy.NASProfile {
		return Event{}, false, nil
	}
	d, err := s.st.GetDevice(ctx, c.DeviceID)
	if err != nil {
		return Event{}, false, err
	}
	ci := infoOf(c, "")
	var a *store.Attestation
	if c.Attested && c.AttestationID != "" {
		if a, err = s.st.GetAttestation(ctx, c.AttestationID); err != nil {
			return Event{}, false, err
		}
		ci.format = a.Format
	}
	now := s.now()
	judge := func(p *Profile) Verdict {
		info := ci
		if a != nil {
			info.belowMin = belowMinimums(p, a)
		}
		return s.judge(Verdict{CertSHA256: sha, DeviceID: c.DeviceID, Profile: c.Profile}, p, now, unixNano(now), c.NotAfter, &info, compactDevice(d))
	}
	was, is := judge(old.get(c.Profile)), judge(s.Profile(c.Profile))
	if !was.Allow || (is.Allow && is.VLAN == was.VLAN) {
		return Event{}, false, nil
	}
	return Event{Kind: EventPolicy, DeviceID: c.DeviceID, CertSHA256: sha, Device: d, At: now}, true, nil
}
