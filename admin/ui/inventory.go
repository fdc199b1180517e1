package ui

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"

	"hardbound/store"
	"hardbound/store/inventory"
)

// maxImportForm bounds an inventory import posted from the console.
const maxImportForm = 16 << 20

type inventoryData struct {
	Served bool
	Format string
	Text   string
	Report *inventory.Report
	Rows   int
}

func (c *Console) inventoryPage(w http.ResponseWriter, r *http.Request, s *session) {
	d := inventoryData{Served: c.deps.Inventory != nil, Format: "auto"}
	c.render(w, r, http.StatusOK, "inventory", page{Title: "Inventory import", Nav: "inventory", S: s, Data: d})
}

// inventoryImport applies a CSV or JSON inventory file (uploaded or
// pasted) through store/inventory, as POST /api/v1/inventory/import does:
// with "dry_run" it only reports what would change.
func (c *Console) inventoryImport(w http.ResponseWriter, r *http.Request, s *session) {
	d := inventoryData{Served: c.deps.Inventory != nil, Format: r.PostFormValue("format"), Text: r.PostFormValue("text")}
	if !d.Served {
		c.render(w, r, http.StatusNotImplemented, "inventory", page{Title: "Inventory import", Nav: "inventory", S: s, Data: d,
			Error: "This server does not serve inventory."})
		return
	}
	fail := func(code int, msg string) {
		c.render(w, r, code, "inventory", page{Title: "Inventory import", Nav: "inventory", S: s, Data: d, Error: msg})
	}
	body, name := []byte(d.Text), ""
	if f, h, err := r.FormFile("file"); err == nil {
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, maxImportForm+1))
		if err != nil || len(b) > maxImportForm {
			fail(http.StatusRequestEntityTooLarge, fmt.Sprintf("The file is larger than %d MiB: import it in parts or with hardbound device import.", maxImportForm>>20))
			return
		}
		if len(bytes.TrimSpace(b)) > 0 {
			body, name = b, h.Filename
		}
	}
	if len(bytes.TrimSpace(body)) == 0 {
		fail(http.StatusBadRequest, "Choose a file or paste the records.")
		return
	}
	format := inventory.Format(d.Format)
	switch format {
	case inventory.FormatCSV, inventory.FormatJSON:
	default:
		format = inventory.DetectFormat(name, body)
	}
	rows, err := inventory.Parse(bytes.NewReader(body), format)
	if err != nil {
		fail(http.StatusBadRequest, "The file was refused: "+err.Error())
		return
	}
	dry := r.PostFormValue("dry_run") != ""
	inv := c.deps.Inventory
	rep, err := inventory.Apply(r.Context(), inv.Store, rows, inventory.Options{Source: inventory.SourceAdmin, Actor: s.Actor(),
		DryRun: dry, KnownProfile: inv.KnownProfile, Now: c.now})
	if err != nil {
		fail(http.StatusConflict, "The import was refused: "+err.Error())
		return
	}
	d.Report, d.Rows = rep, len(rows)
	if !dry {
		c.record(r.Context(), &store.AuditEvent{V: store.RecordVersion, Actor: s.Actor(), Action: "inventory.import", Result: "ok",
			Source: r.RemoteAddr, Reason: fmt.Sprintf("%d records: %d added, %d updated, %d unchanged, %d refused (console)",
				len(rows), rep.Added, rep.Updated, rep.Unchanged, rep.Failed)})
		d.Text = ""
	}
	c.render(w, r, http.StatusOK, "inventory", page{Title: "Inventory import", Nav: "inventory", S: s, Data: d})
}

// bodyLimit is how large a console form may be: an inventory file, or a
// few fields.
func bodyLimit(r *http.Request) int64 {
	if strings.HasPrefix(r.URL.Path, "/ui/inventory") {
		return maxImportForm + 1<<20
	}
	return 64 << 10
}
