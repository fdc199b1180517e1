package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"hardbound/admin"
	"hardbound/enroll/gate"
	"hardbound/radius"
	"hardbound/store"
)

// A reload (SIGHUP, `hardbound config reload`) re-reads the configuration
// file as the start did (Config.Load: the file, the defaults, Validate and
// the command line's overrides) and applies, in one step per component,
// the settings that can change at run time; every other changed key is
// reported as needing a restart and keeps its running value. Which keys
// are which is written in docs/admin.md ("Reloading the configuration").

// copyReloadable sets in dst the run-time settings of src: each profile's
// inventory and posture policy (profiles matched by name) and the Android
// policy knobs. Everything else of dst stays.
func copyReloadable(dst, src *Config) {
	for i := range dst.Profiles {
		p := &dst.Profiles[i]
		j := slices.IndexFunc(src.Profiles, func(q ProfileConfig) bool { return q.Name == p.Name })
		if j < 0 {
			continue
		}
		q := src.Profiles[j]
		p.inventoryProfileConfig = q.inventoryProfileConfig // require_inventory, min_os, min_patch_level
		p.PostureMaxAge, p.Noncompliant, p.Unknown = q.PostureMaxAge, q.Noncompliant, q.Unknown
		p.QuarantineVLAN, p.VLAN, p.SessionTimeout = q.QuarantineVLAN, q.VLAN, q.SessionTimeout
	}
	a, b := &dst.Enroll.Android, src.Enroll.Android
	a.AllowUnlockedBootloader, a.AllowSelfSignedBoot, a.MinOSPatchLevel = b.AllowUnlockedBootloader, b.AllowSelfSignedBoot, b.MinOSPatchLevel
	a.StatusMaxAge, a.StatusUnavailable = b.StatusMaxAge, b.StatusUnavailable
}

// clone copies c deeply enough for copyReloadable to write the copy.
func (c *Config) clone() *Config {
	out := *c
	out.Profiles = slices.Clone(c.Profiles)
	return &out
}

// withoutReloadable is c with every run-time setting at its zero value:
// what is left differs between two configurations only where a restart
// is needed.
func (c *Config) withoutReloadable() *Config {
	out := c.clone()
	blank := &Config{}
	for _, p := range out.Profiles {
		blank.Profiles = append(blank.Profiles, ProfileConfig{Name: p.Name})
	}
	copyReloadable(out, blank)
	return out
}

// changedKeys lists the keys (as the file writes them; profiles by name)
// whose values differ between a and b. Values are never in the answer:
// some are secrets.
func changedKeys(a, b *Config) ([]string, error) {
	ta, err := yamlTree(a)
	if err != nil {
		return nil, err
	}
	tb, err := yamlTree(b)
	if err != nil {
		return nil, err
	}
	var out []string
	diffTree("", ta, tb, &out)
	return out, nil
}

func yamlTree(c *Config) (any, error) {
	b, err := yaml.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	var t any
	if err := yaml.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return t, nil
}

func diffTree(path string, a, b any, out *[]string) {
	join := func(k string) string {
		if path == "" {
			return k
		}
		return path + "." + k
	}
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok {
			*out = append(*out, path)
			return
		}
		keys := map[string]bool{}
		for k := range x {
			keys[k] = true
		}
		for k := range y {
			keys[k] = true
		}
		sorted := make([]string, 0, len(keys))
		for k := range keys {
			sorted = append(sorted, k)
		}
		sort.Strings(sorted)
		for _, k := range sorted {
			diffTree(join(k), x[k], y[k], out)
		}
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			*out = append(*out, path)
			return
		}
		for i := range x {
			diffTree(fmt.Sprintf("%s[%s]", path, elemLabel(x[i], y[i], i)), x[i], y[i], out)
		}
	default:
		if !reflect.DeepEqual(a, b) {
			*out = append(*out, path)
		}
	}
}

// elemLabel names a list element by its name when both sides have the
// same one (profiles, NAS clients), else by its index.
func elemLabel(a, b any, i int) string {
	ma, _ := a.(map[string]any)
	mb, _ := b.(map[string]any)
	if n, ok := ma["name"].(string); ok && n != "" && mb["name"] == n {
		return n
	}
	return fmt.Sprint(i)
}

// Reload re-reads the configuration file and applies its run-time
// settings (see above); actor is who asked (admin:<token>, system:sighup).
// A file that does not load or validate is refused with an error wrapping
// admin.ErrConfigRefused and naming the file, and the running
// configuration stays. Both outcomes are logged and audited.
func (in *Node) Reload(ctx context.Context, actor string) (admin.ReloadReport, error) {
	in.reloadMu.Lock()
	defer in.reloadMu.Unlock()
	cur := in.live.Load()
	path := cur.File
	if path == "" {
		path = "(built-in defaults)" // serve --dev without --config
	}
	rep := admin.ReloadReport{Path: path, Applied: []string{}, RestartRequired: []string{}}
	if cur.Load == nil {
		return rep, errors.New("config reload: this node was not started from a configuration file")
	}
	next, err := cur.Load()
	if err == nil {
		in.keepDevAdditions(next)
		rep.RestartRequired, err = changedKeys(cur.withoutReloadable(), next.withoutReloadable())
	}
	var merged *Config
	if err == nil {
		merged = cur.clone()
		copyReloadable(merged, next)
		rep.Applied, err = changedKeys(cur, merged)
	}
	if err == nil {
		rep.ReviewingSessions, err = in.applyPolicy(merged, actor)
	}
	if err != nil {
		err = fmt.Errorf("%w: %s: %w; the running configuration stays", admin.ErrConfigRefused, path, err)
		in.log.Error("config reload refused", "file", path, "actor", actor, "err", err)
		in.auditReload(ctx, actor, path, "error", "invalid: "+err.Error())
		return rep, err
	}
	in.log.Info("configuration reloaded", "file", path, "actor", actor, "applied", rep.Applied, "restart_required", rep.RestartRequired)
	if len(rep.RestartRequired) > 0 {
		in.log.Warn("changed settings take effect only after a restart", "file", path, "keys", rep.RestartRequired)
	}
	in.auditReload(ctx, actor, path, "ok", fmt.Sprintf("applied=%s restart_required=%s",
		strings.Join(rep.Applied, ","), strings.Join(rep.RestartRequired, ",")))
	return rep, nil
}

// maxAuditReason bounds the reason of a reload's audit event.
const maxAuditReason = 1024

func (in *Node) auditReload(ctx context.Context, actor, path, result, reason string) {
	if len(reason) > maxAuditReason {
		reason = reason[:maxAuditReason]
	}
	ev := &store.AuditEvent{Time: time.Now(), Actor: actor, Action: "config.reload", Subject: path, Result: result, Reason: reason}
	if err := in.st.AppendAudit(context.WithoutCancel(ctx), ev); err != nil {
		in.log.Error("audit append failed", "action", ev.Action, "err", err)
	}
}

// keepDevAdditions gives next what --dev added to the running
// configuration (the 127.0.0.0/8 NAS client), so that it is not reported
// as a change.
func (in *Node) keepDevAdditions(next *Config) {
	if !in.cfg.Dev {
		return
	}
	has := func(c *Config) (radius.FileClient, bool) {
		i := slices.IndexFunc(c.RADIUS.Clients, func(fc radius.FileClient) bool { return fc.Name == devNASClient })
		if i < 0 {
			return radius.FileClient{}, false
		}
		return c.RADIUS.Clients[i], true
	}
	if fc, ok := has(in.cfg); ok {
		if _, ok := has(next); !ok {
			next.RADIUS.Clients = append(slices.Clone(next.RADIUS.Clients), fc)
		}
	}
}

// applyPolicy hands merged's run-time settings to the components, each
// replacing its own in one step: posture (authentication and the
// enforcer's plans), the issuance gate, the attestation verifier's
// Android policy and the status list's policy. When profiles changed the
// live sessions are judged again in the background (posture
// ReviewSessions): those the new profiles no longer admit alike are
// disconnected as after a standing change.
func (in *Node) applyPolicy(merged *Config, actor string) (reviewing bool, err error) {
	cur := in.live.Load()
	profilesChanged := !reflect.DeepEqual(cur.postureProfiles(), merged.postureProfiles())
	gateChanged := !reflect.DeepEqual(cur.gateProfiles(), merged.gateProfiles())
	if profilesChanged {
		// Posture first: it checks the profiles as New did, and a refusal
		// here leaves every component as it was.
		old, dropped, err := in.posture.SetProfiles(merged.postureProfiles())
		if err != nil {
			return false, err
		}
		reviewing = true
		in.wg.Add(1)
		go func() {
			defer in.wg.Done()
			t0 := time.Now()
			n, pub, err := in.posture.ReviewSessions(in.ctx, old, actor)
			if err != nil && in.ctx.Err() == nil {
				in.log.Error("review of live sessions after a reload", "err", err)
			}
			in.log.Info("live sessions judged under the reloaded profiles", "sessions", n, "certificates_disconnected", pub,
				"took", time.Since(t0).Round(time.Millisecond))
			if dropped {
				// Bindings cached under the old minimums were dropped.
				_ = in.posture.Warm(in.ctx) // logs itself
			}
		}()
	}
	if gateChanged && in.gate != nil {
		ps := merged.gateProfiles()
		if err := in.gate.SetProfiles(ps, ps[0].Name); err != nil {
			// The names did not change (that needs a restart), so the
			// default is there: this is a bug; say so and go on.
			in.log.Error("issuance gate kept its profiles", "err", err)
		}
	}
	a := merged.Enroll.Android
	if in.enroll != nil {
		in.enroll.verifier.SetAndroidPolicy(a.Policy())
	}
	if in.statusList != nil {
		in.statusList.SetPolicy(a.StatusMaxAge.D(), a.StatusUnavailable == "accept")
	}
	in.live.Store(merged)
	return reviewing, nil
}

// gateProfiles is the issuance gate's view of every profile; the first
// is the default.
func (c *Config) gateProfiles() []gate.Profile {
	var ps []gate.Profile
	for _, p := range c.effectiveProfiles() {
		ps = append(ps, gate.Profile{Name: p.Name, RequireInventory: p.requireInventory(), Minimums: p.minimums})
	}
	return ps
}

// ReloadOn reloads the configuration on every value of sig (SIGHUP, which
// serve relays) until the node stops.
func (in *Node) ReloadOn(sig <-chan os.Signal) {
	in.wg.Add(1)
	go func() {
		defer in.wg.Done()
		for {
			select {
			case <-in.ctx.Done():
				return
			case <-sig:
				_, _ = in.Reload(in.ctx, "system:sighup") // logged and audited
			}
		}
	}()
}
