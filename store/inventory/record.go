// Package inventory is the device inventory: the records that say a device
// is the organisation's, which enrollment requires before it issues
// (docs/inventory.md). A record is a store.Device with its source, owner,
// profile, platform and MDM identities (aliases); this package parses
// imports (CSV, JSON), and applies a set of records to the store, either
// as additions (an admin, an import) or as a source's complete listing
// (an MDM sync), which also removes the devices the source no longer lists.
//
// It stands on store and store/policy only, so admin, the MDM connectors,
// the CLI and the load generators share it.
package inventory

import (
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"hardbound/store/policy"
)

// Alias kinds a record names directly (store.Device.Aliases keys). They
// are the identities an attestation proves (serial, udid, ek_sha256) and
// the MDMs' own ids.
const (
	AliasSerial   = "serial"
	AliasUDID     = "udid"
	AliasIntuneID = "intune_id"
	AliasEKSHA256 = "ek_sha256"
)

// Sources of records written by hardbound itself.
const (
	SourceAdmin  = "admin"
	SourceImport = "import"
	SourceBench  = "bench"
	// SourceEnroll marks a record an issuance created under a profile that
	// does not require inventory.
	SourceEnroll = "enroll"
)

// ErrInvalid is wrapped by every error about a record's content.
var ErrInvalid = errors.New("inventory: invalid record")

// maxField bounds every string of a record (the store's ids are bounded
// alike).
const maxField = 256

// Record is one device as an inventory states it.
type Record struct {
	// ID is the device id. Empty: the first of serial, udid, ek_sha256,
	// intune_id, which is what an attestation proves, so the issuance
	// writes to this record.
	ID       string `json:"id,omitempty"`
	Platform string `json:"platform"`
	Serial   string `json:"serial,omitempty"`
	UDID     string `json:"udid,omitempty"`
	IntuneID string `json:"intune_id,omitempty"`
	// EKSHA256 is the hex SHA-256 of a TPM's EK public key (what TPM
	// attestation proves).
	EKSHA256 string `json:"ek_sha256,omitempty"`
	// Aliases are further MDM identities (jamf_computer_id, azure_ad_id...).
	Aliases map[string]string `json:"aliases,omitempty"`
	// Profile is the profile the device enrolls in; empty: the default.
	Profile string `json:"profile,omitempty"`
	Owner   string `json:"owner,omitempty"`
}

// Identities are the record's aliases, the named ones included.
func (r *Record) Identities() map[string]string {
	m := maps.Clone(r.Aliases)
	if m == nil {
		m = map[string]string{}
	}
	for k, v := range map[string]string{AliasSerial: r.Serial, AliasUDID: r.UDID, AliasIntuneID: r.IntuneID, AliasEKSHA256: r.EKSHA256} {
		if v != "" {
			m[k] = v
		}
	}
	return m
}

// Normalize checks r and brings it to its stored form: platform
// normalized, EK hash lower-case, ID filled in. knownProfile, if set,
// must accept r.Profile.
func (r *Record) Normalize(knownProfile func(string) bool) error {
	// The id first, so that every later refusal names the device.
	r.EKSHA256 = strings.ToLower(r.EKSHA256)
	if r.ID == "" {
		for _, v := range []string{r.Serial, r.UDID, r.EKSHA256, r.IntuneID} {
			if v != "" {
				r.ID = v
				break
			}
		}
	}
	if r.ID == "" {
		return fmt.Errorf("%w: needs an id or one of serial, udid, ek_sha256, intune_id", ErrInvalid)
	}
	p, err := policy.NormalizePlatform(r.Platform)
	if err != nil {
		return fmt.Errorf("%w: platform: %w", ErrInvalid, err)
	}
	r.Platform = p
	if r.EKSHA256 != "" {
		if b, err := hex.DecodeString(r.EKSHA256); err != nil || len(b) != 32 {
			return fmt.Errorf("%w: ek_sha256 must be 64 hex characters", ErrInvalid)
		}
	}
	fields := map[string]string{"id": r.ID, "serial": r.Serial, "udid": r.UDID, "intune_id": r.IntuneID, "profile": r.Profile, "owner": r.Owner}
	for k, v := range r.Aliases {
		if k == "" || v == "" {
			return fmt.Errorf("%w: alias %q=%q: kind and value must not be empty", ErrInvalid, k, v)
		}
		fields["alias kind "+k] = k
		fields["alias "+k] = v
	}
	for _, name := range slices.Sorted(maps.Keys(fields)) {
		if err := checkField(name, fields[name]); err != nil {
			return err
		}
	}
	for _, k := range []string{AliasSerial, AliasUDID, AliasIntuneID, AliasEKSHA256} {
		if v, dup := r.Aliases[k]; dup {
			return fmt.Errorf("%w: alias %s=%q: give it as the %s field", ErrInvalid, k, v, k)
		}
	}
	if r.Profile != "" {
		if err := policy.CheckName(r.Profile); err != nil {
			return fmt.Errorf("%w: profile: %w", ErrInvalid, err)
		}
		if knownProfile != nil && !knownProfile(r.Profile) {
			return fmt.Errorf("%w: profile %q is not configured", ErrInvalid, r.Profile)
		}
	}
	return nil
}

func checkField(name, v string) error {
	if len(v) > maxField {
		return fmt.Errorf("%w: %s is longer than %d octets", ErrInvalid, name, maxField)
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("%w: %s is not UTF-8", ErrInvalid, name)
	}
	for _, c := range v {
		if unicode.IsControl(c) {
			return fmt.Errorf("%w: %s contains a control character", ErrInvalid, name)
		}
	}
	if name != "owner" && strings.ContainsRune(v, ' ') && name != "profile" {
		return fmt.Errorf("%w: %s contains a space", ErrInvalid, name)
	}
	return nil
}
