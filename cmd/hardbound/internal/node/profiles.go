package node

import (
	"hardbound/enroll/acme"
	"hardbound/enroll/scep"
	"hardbound/posture"
	"hardbound/store/policy"
)

// A configured profile is seen by three layers, each taking only its part:
// posture (authorization: formats, posture age, actions, VLANs), ACME and
// SCEP (enrollment: validity, formats, device identity, challenges). This
// file is the one place a ProfileConfig becomes those views; Validate has
// already checked every field with the owning package's rule (policy for
// names and formats, posture for actions, scep for the identity).

// effectiveProfiles is the configured profiles, or one strict default.
// Every layer gets the same list.
func (c *Config) effectiveProfiles() []ProfileConfig {
	if len(c.Profiles) > 0 {
		return c.Profiles
	}
	return []ProfileConfig{{Name: policy.DefaultProfile, Noncompliant: string(posture.ActionReject), Unknown: string(posture.ActionReject)}}
}

// profileNames is the names of effectiveProfiles.
func (c *Config) profileNames() []string {
	var out []string
	for _, p := range c.effectiveProfiles() {
		out = append(out, p.Name)
	}
	return out
}

// postureProfiles is the authorization view of every profile.
func (c *Config) postureProfiles() []posture.Profile {
	var out []posture.Profile
	for _, p := range c.effectiveProfiles() {
		out = append(out, p.postureView())
	}
	return out
}

func (p ProfileConfig) postureView() posture.Profile {
	return posture.Profile{
		Name: p.Name, Formats: p.Formats, MaxAge: p.PostureMaxAge.D(),
		Noncompliant: posture.Action(p.Noncompliant), Unknown: posture.Action(p.Unknown),
		QuarantineVLAN: p.QuarantineVLAN, VLAN: p.VLAN, SessionTimeout: p.SessionTimeout.D(),
		Minimums: p.minimums,
	}
}

func (p ProfileConfig) acmeView() acme.Profile {
	return acme.Profile{Name: p.Name, Validity: p.Validity.D(), Formats: p.Formats,
		RequireInventory: p.requireInventory(), Minimums: p.minimums}
}

func (p ProfileConfig) scepIdentity() scep.Identity {
	return scep.Identity{Source: scep.IdentitySource(p.SCEP.Identity), URIPrefix: p.SCEP.URIPrefix, Alias: p.SCEP.Alias}
}

// scepView is the SCEP view; intune validates the challenges of profiles
// that use Intune (nil when mdm.intune is not configured, which Validate
// refuses for such profiles).
func (p ProfileConfig) scepView(intune scep.Validator) scep.Profile {
	sp := scep.Profile{
		Name: p.Name, Validity: p.Validity.D(), Platform: p.SCEP.Platform,
		Identity:           p.scepIdentity(),
		StaticChallenge:    p.SCEP.static,
		RequireAttestation: p.SCEP.RequireAttestation,
		Formats:            p.Formats,
	}
	if p.SCEP.Intune {
		sp.Validator = intune
	}
	return sp
}
