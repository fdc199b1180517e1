package inventory

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"hardbound/store"
	"hardbound/store/policy"
)

// Store is what Apply reads and writes (store.Store satisfies it).
type Store interface {
	GetDevice(ctx context.Context, id string) (*store.Device, error)
	FindDeviceByAlias(ctx context.Context, kind, value string) (*store.Device, error)
	PutDevice(ctx context.Context, d *store.Device) error
	UpdateDevice(ctx context.Context, id string, fn func(*store.Device) error, ev *store.AuditEvent) (*store.Device, error)
	ListDevices(ctx context.Context, f store.DeviceFilter, p store.Page) ([]*store.Device, string, error)
	AppendAudit(ctx context.Context, ev *store.AuditEvent) error
}

// Options say who applies the records and how.
type Options struct {
	// Source is written to the records (store.Device.Source); required.
	Source string
	// Actor is the audit actor (admin:<token>, mdm:jamf...); default
	// "inventory:" + Source.
	Actor string
	// DryRun computes the report and writes nothing.
	DryRun bool
	// Complete says the rows are Source's whole listing: a device whose
	// record came from Source and that the listing lacks is removed
	// (store.Device.RemovedAt), so enrollment refuses it. Only a complete
	// listing proves a device gone: an MDM sync that failed part way must
	// not set it.
	Complete bool
	// KnownProfile, if set, refuses records naming another profile.
	KnownProfile func(string) bool
	Now          func() time.Time
}

// MaxReportChanges bounds Report.Changes (the counts stay exact).
const MaxReportChanges = 1000

// Report is what Apply did, or would do (DryRun).
type Report struct {
	Source    string     `json:"source"`
	DryRun    bool       `json:"dry_run"`
	Added     int        `json:"added"`
	Updated   int        `json:"updated"`
	Unchanged int        `json:"unchanged"`
	Removed   int        `json:"removed"`
	Failed    int        `json:"failed"`
	Changes   []Change   `json:"changes,omitempty"`
	Errors    []RowError `json:"errors,omitempty"`
	// Truncated: Changes or Errors hold only the first MaxReportChanges.
	Truncated bool `json:"truncated,omitempty"`
}

// Change is one record added, updated or removed, with the fields that
// changed.
type Change struct {
	Line   int      `json:"line,omitempty"`
	ID     string   `json:"id"`
	Action string   `json:"action"` // add | update | remove
	Fields []string `json:"fields,omitempty"`
}

// RowError is a record that was refused; the others still apply.
type RowError struct {
	Line  int    `json:"line,omitempty"`
	ID    string `json:"id,omitempty"`
	Error string `json:"error"`
}

func (r *Report) change(c Change) {
	if len(r.Changes) < MaxReportChanges {
		r.Changes = append(r.Changes, c)
	} else {
		r.Truncated = true
	}
}

func (r *Report) fail(line int, id string, err error) {
	r.Failed++
	if len(r.Errors) < MaxReportChanges {
		r.Errors = append(r.Errors, RowError{Line: line, ID: id, Error: err.Error()})
	} else {
		r.Truncated = true
	}
}

// ErrConflict is wrapped when a record's identities belong to two
// devices, or would move a device to a platform its bindings contradict.
var ErrConflict = errors.New("inventory: conflicting record")

// Apply writes rows to the inventory. A row that is invalid or conflicts
// is reported and skipped; a store failure stops Apply and is returned
// with the report so far. Every write is audited (inventory.add,
// inventory.update, inventory.remove).
func Apply(ctx context.Context, st Store, rows []Row, o Options) (*Report, error) {
	if o.Source == "" {
		return nil, errors.New("inventory: Options.Source is required")
	}
	if o.Actor == "" {
		o.Actor = "inventory:" + o.Source
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	rep := &Report{Source: o.Source, DryRun: o.DryRun}
	seen := make(map[string]bool, len(rows))
	for _, row := range rows {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		if err := applyRow(ctx, st, row, o, rep, seen); err != nil {
			return rep, err
		}
	}
	if o.Complete {
		if err := prune(ctx, st, o, rep, seen); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

func applyRow(ctx context.Context, st Store, row Row, o Options, rep *Report, seen map[string]bool) error {
	r := row.Record
	if err := r.Normalize(o.KnownProfile); err != nil {
		// Its device, if the raw identities name one, is still listed:
		// one bad entry must not remove a device from inventory.
		if d, _ := find(ctx, st, &r); d != nil {
			seen[d.ID] = true
		}
		rep.fail(row.Line, r.ID, err)
		return nil
	}
	old, err := find(ctx, st, &r)
	if errors.Is(err, ErrConflict) {
		rep.fail(row.Line, r.ID, err)
		return nil
	}
	if err != nil {
		return err
	}
	id := r.ID
	if old != nil {
		id = old.ID
	}
	if seen[id] {
		rep.fail(row.Line, id, fmt.Errorf("%w: device %q is listed twice", ErrConflict, id))
		return nil
	}
	seen[id] = true
	if old == nil {
		return add(ctx, st, row, r, o, rep)
	}
	return update(ctx, st, row, old, r, o, rep)
}

// Find returns the device r names (by id, else by any of its identities),
// or nil when there is none; identities naming two devices wrap
// ErrConflict. r should be normalized.
func Find(ctx context.Context, st Store, r *Record) (*store.Device, error) { return find(ctx, st, r) }

// find returns the device the record names: by id, else by any of its
// identities; nil when none. Identities naming two devices conflict.
func find(ctx context.Context, st Store, r *Record) (*store.Device, error) {
	var found *store.Device
	if r.ID != "" {
		d, err := st.GetDevice(ctx, r.ID)
		switch {
		case err == nil:
			found = d
		case !errors.Is(err, store.ErrNotFound):
			return nil, fmt.Errorf("inventory: get device %q: %w", r.ID, err)
		}
	}
	ids := r.Identities()
	for _, kind := range slices.Sorted(maps.Keys(ids)) {
		d, err := st.FindDeviceByAlias(ctx, kind, ids[kind])
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("inventory: find %s %q: %w", kind, ids[kind], err)
		}
		if found != nil && found.ID != d.ID {
			return nil, fmt.Errorf("%w: %s %q belongs to device %q, not %q", ErrConflict, kind, ids[kind], d.ID, found.ID)
		}
		found = d
	}
	return found, nil
}

func add(ctx context.Context, st Store, row Row, r Record, o Options, rep *Report) error {
	now := o.Now().UTC()
	d := &store.Device{
		V: store.RecordVersion, ID: r.ID, Platform: r.Platform, Profile: r.Profile, Owner: r.Owner, Source: o.Source,
		Status: store.DeviceActive, Posture: store.Posture{State: store.ComplianceUnknown},
		Aliases: r.Identities(), CreatedAt: now, UpdatedAt: now,
	}
	if len(d.Aliases) == 0 {
		d.Aliases = nil
	}
	if !o.DryRun {
		err := st.PutDevice(ctx, d)
		if errors.Is(err, store.ErrExists) {
			rep.fail(row.Line, r.ID, fmt.Errorf("%w: %w", ErrConflict, err))
			return nil
		}
		if err != nil {
			return fmt.Errorf("inventory: add %q: %w", r.ID, err)
		}
		if err := audit(ctx, st, o, "inventory.add", r.ID, fmt.Sprintf("source %s, platform %s, profile %s", o.Source, r.Platform, profileName(r.Profile))); err != nil {
			return err
		}
	}
	rep.Added++
	rep.change(Change{Line: row.Line, ID: r.ID, Action: "add"})
	return nil
}

func profileName(p string) string {
	if p == "" {
		return policy.DefaultProfile
	}
	return p
}

// merge applies r to d and names the fields it changed.
func merge(d *store.Device, r Record, source string) ([]string, error) {
	var fields []string
	switch {
	case r.Platform == d.Platform:
	case d.Platform == "" || (d.Platform == policy.PlatformApple && policy.PlatformFormat(r.Platform) == policy.FormatApple):
		d.Platform = r.Platform
		fields = append(fields, "platform")
	case r.Platform == policy.PlatformApple && policy.PlatformFormat(d.Platform) == policy.FormatApple:
		// "apple" says less than the record's ios or macos: keep it.
	default:
		return nil, fmt.Errorf("%w: platform %s, but the record is %s (attests with %s): revoke and re-add the device to change it",
			ErrConflict, r.Platform, d.Platform, policy.PlatformFormat(d.Platform))
	}
	if r.Profile != "" && r.Profile != d.Profile {
		d.Profile = r.Profile
		fields = append(fields, "profile")
	}
	if r.Owner != "" && r.Owner != d.Owner {
		d.Owner = r.Owner
		fields = append(fields, "owner")
	}
	for k, v := range r.Identities() {
		if d.Aliases[k] != v {
			if d.Aliases == nil {
				d.Aliases = map[string]string{}
			}
			d.Aliases[k] = v
			fields = append(fields, "aliases."+k)
		}
	}
	if d.Source != source {
		d.Source = source
		fields = append(fields, "source")
	}
	if !d.RemovedAt.IsZero() {
		d.RemovedAt = time.Time{}
		fields = append(fields, "removed_at")
	}
	slices.Sort(fields)
	return fields, nil
}

func update(ctx context.Context, st Store, row Row, old *store.Device, r Record, o Options, rep *Report) error {
	probe := *old
	probe.Aliases = maps.Clone(old.Aliases)
	fields, err := merge(&probe, r, o.Source)
	if err != nil {
		rep.fail(row.Line, old.ID, err)
		return nil
	}
	if len(fields) == 0 {
		rep.Unchanged++
		return nil
	}
	if !o.DryRun {
		ev := &store.AuditEvent{V: store.RecordVersion, Time: o.Now().UTC(), Actor: o.Actor, Action: "inventory.update",
			Subject: old.ID, Result: "ok", Reason: "source " + o.Source + " changed " + strings.Join(fields, ", ")}
		_, err := st.UpdateDevice(ctx, old.ID, func(d *store.Device) error {
			fields, err = merge(d, r, o.Source)
			return err
		}, ev)
		switch {
		case errors.Is(err, ErrConflict), errors.Is(err, store.ErrExists):
			rep.fail(row.Line, old.ID, err)
			return nil
		case err != nil:
			return fmt.Errorf("inventory: update %q: %w", old.ID, err)
		}
	}
	rep.Updated++
	rep.change(Change{Line: row.Line, ID: old.ID, Action: "update", Fields: fields})
	return nil
}

// prune removes from inventory the devices of o.Source the listing lacks.
func prune(ctx context.Context, st Store, o Options, rep *Report, seen map[string]bool) error {
	var gone []string
	p := store.Page{Limit: 1000}
	for {
		devs, next, err := st.ListDevices(ctx, store.DeviceFilter{}, p)
		if err != nil {
			return fmt.Errorf("inventory: list devices: %w", err)
		}
		for _, d := range devs {
			if d.Source == o.Source && d.InInventory() && !seen[d.ID] {
				gone = append(gone, d.ID)
			}
		}
		if next == "" {
			break
		}
		p.After = next
	}
	for _, id := range gone {
		if !o.DryRun {
			now := o.Now().UTC()
			ev := &store.AuditEvent{V: store.RecordVersion, Time: now, Actor: o.Actor, Action: "inventory.remove",
				Subject: id, Result: "ok", Reason: "no longer listed by " + o.Source}
			_, err := st.UpdateDevice(ctx, id, func(d *store.Device) error {
				if d.Source != o.Source || !d.InInventory() {
					return errUnchanged
				}
				d.RemovedAt = now
				return nil
			}, ev)
			if errors.Is(err, errUnchanged) || errors.Is(err, store.ErrNotFound) {
				continue // rewritten since it was listed
			}
			if err != nil {
				return fmt.Errorf("inventory: remove %q: %w", id, err)
			}
		}
		rep.Removed++
		rep.change(Change{ID: id, Action: "remove"})
	}
	return nil
}

var errUnchanged = errors.New("inventory: unchanged")

// audit appends the event of a record PutDevice wrote (PutDevice takes no
// event); a failure stops Apply, since every inventory write is audited.
func audit(ctx context.Context, st Store, o Options, action, subject, reason string) error {
	err := st.AppendAudit(ctx, &store.AuditEvent{V: store.RecordVersion, Time: o.Now().UTC(), Actor: o.Actor,
		Action: action, Subject: subject, Result: "ok", Reason: reason})
	if err != nil {
		return fmt.Errorf("inventory: audit %s of %q: %w", action, subject, err)
	}
	return nil
}
