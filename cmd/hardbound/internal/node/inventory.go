package node

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"hardbound/admin"
	"hardbound/enroll/attest"
	"hardbound/enroll/attest/statuslist"
	"hardbound/enroll/gate"
	"hardbound/posture/mdm"
	"hardbound/posture/mdm/intune"
	"hardbound/posture/mdm/jamf"
	"hardbound/store/config"
	"hardbound/store/policy"
)

// The inventory and the attested-fact policy (docs/inventory.md): each
// profile's require_inventory, min_os and min_patch_level, the MDM
// inventory syncs, the Android attestation status list, and the admin
// endpoints that add and import devices.

// inventoryProfileConfig are a profile's inventory keys (embedded in
// ProfileConfig).
type inventoryProfileConfig struct {
	// RequireInventory refuses enrollment of a device without an inventory
	// record (default true, in --dev too: bench make-devices and bench
	// enroll put their devices in it).
	RequireInventory *bool `yaml:"require_inventory"`
	// MinOS is the lowest attested OS version per family (ios, macos,
	// apple, android), MinPatchLevel the lowest Android patch level
	// (YYYYMM); enforced at issuance and at every authentication.
	MinOS         map[string]string `yaml:"min_os"`
	MinPatchLevel int64             `yaml:"min_patch_level"`

	minimums policy.Minimums
}

func (p *inventoryProfileConfig) requireInventory() bool {
	return p.RequireInventory == nil || *p.RequireInventory
}

// validateInventory checks the profile's inventory keys; f is its field
// path.
func (p *inventoryProfileConfig) validateInventory(f string) error {
	m, err := policy.ParseMinimums(p.MinOS, p.MinPatchLevel)
	if err != nil {
		return fieldErr(f+".min_os", "%v", err)
	}
	p.minimums = m
	return nil
}

// validateInventorySources checks that the MDM inventory sections name
// configured profiles.
func (c *Config) validateInventorySources() error {
	known := c.knownProfile
	for field, names := range map[string][]string{
		"mdm.jamf.inventory":   c.MDM.Jamf.Inventory.Profiles(),
		"mdm.intune.inventory": c.MDM.Intune.Inventory.Profiles(),
	} {
		for _, n := range names {
			if !known(n) {
				return fieldErr(field, "no profile named %q", n)
			}
		}
	}
	return nil
}

func (c *Config) knownProfile(name string) bool {
	return slices.ContainsFunc(c.effectiveProfiles(), func(p ProfileConfig) bool { return p.Name == name })
}

func (c *Config) minimums(name string) policy.Minimums {
	for _, p := range c.effectiveProfiles() {
		if p.Name == name {
			return p.minimums
		}
	}
	return policy.Minimums{}
}

// issuanceGate is the one issuance gate ACME, SCEP and EST apply, built
// on first use; a reload replaces its profiles (reload.go).
func (in *Node) issuanceGate() (*gate.Gate, error) {
	if in.gate != nil {
		return in.gate, nil
	}
	ps := in.cfg.gateProfiles()
	g, err := gate.New(in.st, ps, ps[0].Name)
	if err != nil {
		return nil, err
	}
	in.gate = g
	return g, nil
}

// inventoryDeps are the admin API's inventory endpoints.
func (in *Node) inventoryDeps() *admin.Inventory {
	// The minimums device show judges by are the reloaded ones.
	return &admin.Inventory{Store: in.st, KnownProfile: in.cfg.knownProfile,
		Minimums: func(name string) policy.Minimums { return in.live.Load().minimums(name) }}
}

// androidOptions are the verifier's Android policy and status list. The
// list is read in the background; until its first read succeeds (or from
// the store's copy) Android attestations are refused unless the section says
// accept. --dev without an explicit status_list checks none: its test
// chains are on no list and a trial machine may be offline.
func (in *Node) androidOptions() []attest.Option {
	ac := in.cfg.Enroll.Android
	opts := []attest.Option{attest.WithAndroidPolicy(ac.Policy())}
	src := ac.StatusSource()
	if in.cfg.Dev && ac.StatusList == "" {
		src = ""
	}
	if src == "" {
		in.log.Warn("WARNING: the Android attestation status list is off: leaked attestation keys are not refused")
		return opts
	}
	l, err := statuslist.New(statuslist.Config{
		Source: src, Refresh: ac.StatusRefresh.D(), MaxAge: ac.StatusMaxAge.D(), FailOpen: ac.StatusUnavailable == "accept",
		// The last good list lives in the store, shared by every node; the
		// data-dir file of earlier versions is imported once.
		Store: in.st, ImportFile: filepath.Join(in.cfg.DataDir, "android-status.json"), Logger: in.log,
	})
	if err != nil {
		// Validate accepted the source, so this is a bug; fail closed.
		in.log.Error("android status list", "err", err)
		return append(opts, attest.WithAndroidStatus(unavailable{err}))
	}
	// Before the listeners: an enrollment right after a start while the
	// source is down is judged by the stored list, not refused.
	lctx, cancel := context.WithTimeout(in.ctx, 10*time.Second)
	_ = l.Load(lctx) // logged; a failing refresh reads the store again
	cancel()
	in.statusList = l
	in.wg.Add(1)
	go func() {
		defer in.wg.Done()
		_ = l.Run(in.ctx) // logs its own failures; ends with the node
	}()
	return append(opts, attest.WithAndroidStatus(l))
}

// unavailable is a status list that refuses everything.
type unavailable struct{ err error }

func (unavailable) Revoked(string) (string, bool) { return "", false }
func (u unavailable) Unavailable() error          { return u.err }

// startInventory starts the Jamf and Intune inventory syncs that are
// enabled; it returns the Jamf sync's hint for its webhook handler (nil
// without one).
func (in *Node) startInventory() (jamfHint func(), err error) {
	mc := in.cfg.MDM
	start := func(name string, l mdm.Lister, interval, minGap time.Duration) *mdm.InventorySync {
		s, err2 := mdm.NewInventorySync(mdm.InventorySyncConfig{Source: name, Lister: l, Store: in.st,
			KnownProfile: in.cfg.knownProfile, Interval: interval, MinGap: minGap, Metrics: in.metrics.Dynauth(), Logger: in.log})
		if err2 != nil {
			err = err2
			return nil
		}
		in.wg.Add(1)
		go func() {
			defer in.wg.Done()
			in.fail(name+" inventory", s.Run(in.ctx))
		}()
		return s
	}
	if jc := mc.Jamf; jc.Inventory.Enabled {
		secret, err := config.ReadSecret("mdm.jamf.api_client_secret_file", jc.APIClientSecretFile)
		if err != nil {
			return nil, err
		}
		api, err := jamf.NewAPIClient(jc.API(secret))
		if err != nil {
			return nil, err
		}
		if s := start("jamf", api.Lister(jc.Inventory.Lister()), jc.Inventory.Interval.D(), jc.Inventory.MinGap.D()); s != nil {
			jamfHint = s.Hint
		}
	}
	if ic := mc.Intune; ic.Inventory.Enabled && err == nil {
		secret, err := config.ReadSecret("mdm.intune.client_secret_file", ic.ClientSecretFile)
		if err != nil {
			return nil, err
		}
		icfg := ic.Poller(secret)
		icfg.Updater, icfg.Logger = in.posture, in.log
		p, err := intune.New(icfg)
		if err != nil {
			return nil, fmt.Errorf("intune inventory: %w", err)
		}
		start("intune", p.Lister(ic.Inventory.Lister()), ic.Inventory.Interval.D(), 0)
	}
	return jamfHint, err
}
