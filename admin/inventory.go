package admin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"

	"hardbound/store"
	"hardbound/store/inventory"
	"hardbound/store/policy"
)

// InventoryStore is what the inventory endpoints read and write
// (store.Store satisfies it).
type InventoryStore interface {
	inventory.Store
	ListCerts(ctx context.Context, f store.CertFilter, p store.Page) ([]*store.Cert, string, error)
	GetAttestation(ctx context.Context, id string) (*store.Attestation, error)
}

// Inventory is the inventory endpoints' collaborators (docs/inventory.md).
type Inventory struct {
	Store InventoryStore
	// KnownProfile refuses records naming a profile that is not
	// configured; nil accepts any valid name.
	KnownProfile func(string) bool
	// Minimums are a profile's attested-fact minimums, shown against each
	// attestation by GET /api/v1/devices/{id}/attestations; nil: none.
	Minimums func(profile string) policy.Minimums
}

func (s *Server) inventoryRoutes(m *http.ServeMux) {
	s.auth(m, "POST /api/v1/devices", writes, s.addDevice)
	s.auth(m, "POST /api/v1/inventory/import", writes, s.importInventory)
	s.auth(m, "GET /api/v1/devices/{id}/attestations", reads, s.deviceAttestations)
}

// InventoryRecord is one device as an admin or an import states it
// (POST /api/v1/devices, and the records of an import).
type InventoryRecord struct {
	ID       string            `json:"id,omitempty"`
	Platform string            `json:"platform"`
	Serial   string            `json:"serial,omitempty"`
	UDID     string            `json:"udid,omitempty"`
	IntuneID string            `json:"intune_id,omitempty"`
	EKSHA256 string            `json:"ek_sha256,omitempty"`
	Aliases  map[string]string `json:"aliases,omitempty"`
	Profile  string            `json:"profile,omitempty"`
	Owner    string            `json:"owner,omitempty"`
}

// InventoryRecordOf is a parsed record (an import file's row) as the API
// carries it.
func InventoryRecordOf(r inventory.Record) InventoryRecord {
	return InventoryRecord{ID: r.ID, Platform: r.Platform, Serial: r.Serial, UDID: r.UDID, IntuneID: r.IntuneID,
		EKSHA256: r.EKSHA256, Aliases: r.Aliases, Profile: r.Profile, Owner: r.Owner}
}

func (r InventoryRecord) record() inventory.Record {
	return inventory.Record{ID: r.ID, Platform: r.Platform, Serial: r.Serial, UDID: r.UDID, IntuneID: r.IntuneID,
		EKSHA256: r.EKSHA256, Aliases: r.Aliases, Profile: r.Profile, Owner: r.Owner}
}

// InventoryReport is what an add or an import did, or would do (dry run).
type InventoryReport struct {
	Source    string              `json:"source"`
	DryRun    bool                `json:"dry_run"`
	Added     int                 `json:"added"`
	Updated   int                 `json:"updated"`
	Unchanged int                 `json:"unchanged"`
	Removed   int                 `json:"removed"`
	Failed    int                 `json:"failed"`
	Changes   []InventoryChange   `json:"changes"`
	Errors    []InventoryRowError `json:"errors"`
	Truncated bool                `json:"truncated,omitempty"`
}

// InventoryChange is one record added or updated, with the changed fields.
type InventoryChange struct {
	Line   int      `json:"line,omitempty"`
	ID     string   `json:"id"`
	Action string   `json:"action"`
	Fields []string `json:"fields,omitempty"`
}

// InventoryRowError is a record the import refused (the others applied).
type InventoryRowError struct {
	Line  int    `json:"line,omitempty"`
	ID    string `json:"id,omitempty"`
	Error string `json:"error"`
}

func inventoryReportOf(r *inventory.Report) InventoryReport {
	out := InventoryReport{Source: r.Source, DryRun: r.DryRun, Added: r.Added, Updated: r.Updated, Unchanged: r.Unchanged,
		Removed: r.Removed, Failed: r.Failed, Truncated: r.Truncated,
		Changes: each(r.Changes, func(c inventory.Change) InventoryChange {
			return InventoryChange{Line: c.Line, ID: c.ID, Action: c.Action, Fields: c.Fields}
		}),
		Errors: each(r.Errors, func(e inventory.RowError) InventoryRowError {
			return InventoryRowError{Line: e.Line, ID: e.ID, Error: e.Error}
		}),
	}
	return out
}

// DeviceAddResponse is POST /api/v1/devices: the record as stored and
// what changed.
type DeviceAddResponse struct {
	Device Device          `json:"device"`
	Report InventoryReport `json:"report"`
}

var errNoInventory = errors.New("admin: inventory is not served by this server")

func (s *Server) inventoryDeps(w http.ResponseWriter) *Inventory {
	if s.deps.Inventory == nil || s.deps.Inventory.Store == nil {
		writeErr(w, http.StatusNotImplemented, errNoInventory.Error())
		return nil
	}
	return s.deps.Inventory
}

func (s *Server) apply(ctx context.Context, inv *Inventory, rows []inventory.Row, dryRun bool) (*inventory.Report, error) {
	return inventory.Apply(ctx, inv.Store, rows, inventory.Options{
		Source: inventory.SourceAdmin, Actor: actorOf(ctx), DryRun: dryRun, KnownProfile: inv.KnownProfile, Now: s.now,
	})
}

// addDevice is POST /api/v1/devices: one record, added or updated (an
// existing device found by id or by any identity), as `hardbound device
// add` sends it. A refused record answers 400 with the reason.
func (s *Server) addDevice(w http.ResponseWriter, r *http.Request) {
	inv := s.inventoryDeps(w)
	if inv == nil {
		return
	}
	var in InventoryRecord
	if err := decode(r, &in, false); err != nil {
		s.refuse(w, r, "inventory.add", in.ID, err)
		return
	}
	rep, err := s.apply(r.Context(), inv, []inventory.Row{{Record: in.record()}}, false)
	if err != nil {
		s.refuse(w, r, "inventory.add", in.ID, err)
		return
	}
	if rep.Failed > 0 {
		s.refuse(w, r, "inventory.add", rep.Errors[0].ID, fmt.Errorf("%w: %s", errBadRequest, rep.Errors[0].Error))
		return
	}
	rec := in.record()
	_ = rec.Normalize(nil) // Apply accepted it
	d, err := inventory.Find(r.Context(), inv.Store, &rec)
	if err == nil && d == nil && !rep.DryRun {
		err = fmt.Errorf("device %q: %w", rec.ID, store.ErrNotFound)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	code := http.StatusOK
	if rep.Added > 0 {
		code = http.StatusCreated
	}
	writeJSON(w, code, DeviceAddResponse{Device: deviceOf(d), Report: inventoryReportOf(rep)})
}

// importInventory is POST /api/v1/inventory/import: a CSV (text/csv) or
// JSON (application/json) import of at most the API's body limit;
// ?dry_run=true reports without writing. `hardbound device import` parses
// larger files itself and sends them in parts.
func (s *Server) importInventory(w http.ResponseWriter, r *http.Request) {
	inv := s.inventoryDeps(w)
	if inv == nil {
		return
	}
	dryRun, _ := strconv.ParseBool(r.URL.Query().Get("dry_run"))
	format := inventory.FormatJSON
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err == nil && mt == "text/csv" {
		format = inventory.FormatCSV
	}
	body, err := io.ReadAll(r.Body)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		s.refuse(w, r, "inventory.import", "", fmt.Errorf("%w: body larger than %d bytes: send the file in parts", errBadRequest, mbe.Limit))
		return
	}
	if err != nil {
		s.refuse(w, r, "inventory.import", "", fmt.Errorf("%w: read body: %v", errBadRequest, err))
		return
	}
	rows, err := inventory.Parse(bytes.NewReader(body), format)
	if err != nil {
		s.refuse(w, r, "inventory.import", "", fmt.Errorf("%w: %v", errBadRequest, err))
		return
	}
	rep, err := s.apply(r.Context(), inv, rows, dryRun)
	if err != nil {
		s.refuse(w, r, "inventory.import", "", err)
		return
	}
	if !dryRun {
		s.record(r.Context(), &store.AuditEvent{V: store.RecordVersion, Actor: actorOf(r.Context()), Action: "inventory.import",
			Result: "ok", Source: r.RemoteAddr,
			Reason: fmt.Sprintf("%d records: %d added, %d updated, %d unchanged, %d refused", len(rows), rep.Added, rep.Updated, rep.Unchanged, rep.Failed)})
	}
	writeJSON(w, http.StatusOK, inventoryReportOf(rep))
}

// DeviceAttestation is one binding's verified evidence, with whether it
// meets its profile's minimums now (`hardbound device show`).
type DeviceAttestation struct {
	CertSerial    string            `json:"cert_serial"`
	Profile       string            `json:"profile"`
	Format        string            `json:"format"`
	Facts         map[string]string `json:"facts,omitempty"`
	VerifiedAt    time.Time         `json:"verified_at"`
	MeetsMinimums bool              `json:"meets_minimums"`
	BelowMinimum  string            `json:"below_minimum,omitempty"`
	Revoked       bool              `json:"revoked,omitempty"`
}

func (s *Server) deviceAttestations(w http.ResponseWriter, r *http.Request) {
	inv := s.inventoryDeps(w)
	if inv == nil {
		return
	}
	ctx := r.Context()
	id := r.PathValue("id")
	if _, err := inv.Store.GetDevice(ctx, id); err != nil {
		s.fail(w, r, err)
		return
	}
	certs, _, err := inv.Store.ListCerts(ctx, store.CertFilter{DeviceID: id, NoDER: true}, store.Page{Limit: 1000})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := []DeviceAttestation{}
	for _, c := range certs {
		if !c.Attested || c.AttestationID == "" {
			continue
		}
		a, err := inv.Store.GetAttestation(ctx, c.AttestationID)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		da := DeviceAttestation{CertSerial: c.Serial, Profile: c.Profile, Format: a.Format, Facts: a.Facts,
			VerifiedAt: a.VerifiedAt, MeetsMinimums: true, Revoked: c.Revoked != nil}
		if inv.Minimums != nil {
			if err := inv.Minimums(c.Profile).Check(a.Format, a.Facts); err != nil {
				da.MeetsMinimums, da.BelowMinimum = false, err.Error()
			}
		}
		out = append(out, da)
	}
	writeJSON(w, http.StatusOK, List[DeviceAttestation]{Items: out})
}
