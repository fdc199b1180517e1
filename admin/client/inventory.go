package client

import (
	"context"
	"fmt"

	"hardbound/admin"
	"hardbound/store/inventory"
)

// AddDevice puts one record in the inventory, or updates the device it
// names (docs/inventory.md).
func (c *Client) AddDevice(ctx context.Context, rec admin.InventoryRecord) (admin.DeviceAddResponse, error) {
	return post[admin.DeviceAddResponse](ctx, c, "/api/v1/devices", rec)
}

// ImportBatch is how many records one import request carries: the admin
// API caps bodies at 1 MiB, and a record is at most a few hundred bytes.
const ImportBatch = 2000

// ImportInventory applies rows in batches of ImportBatch and sums the
// reports, with the line numbers of the rows' file. A batch that fails
// ends the import with an error naming its lines; the batches before it
// have applied.
func (c *Client) ImportInventory(ctx context.Context, rows []inventory.Row, dryRun bool) (admin.InventoryReport, error) {
	total := admin.InventoryReport{Source: inventory.SourceAdmin, DryRun: dryRun, Changes: []admin.InventoryChange{}, Errors: []admin.InventoryRowError{}}
	path := "/api/v1/inventory/import?"
	if dryRun {
		path += "dry_run=true"
	}
	for lo := 0; lo < len(rows); lo += ImportBatch {
		batch := rows[lo:min(lo+ImportBatch, len(rows))]
		recs := make([]admin.InventoryRecord, len(batch))
		for i, r := range batch {
			recs[i] = admin.InventoryRecordOf(r.Record)
		}
		rep, err := post[admin.InventoryReport](ctx, c, path, map[string]any{"devices": recs})
		if err != nil {
			return total, fmt.Errorf("records %d-%d: %w", batch[0].Line, batch[len(batch)-1].Line, err)
		}
		// The server numbers a batch's records from 1.
		line := func(n int) int {
			if n >= 1 && n <= len(batch) {
				return batch[n-1].Line
			}
			return n
		}
		total.Added += rep.Added
		total.Updated += rep.Updated
		total.Unchanged += rep.Unchanged
		total.Failed += rep.Failed
		total.Truncated = total.Truncated || rep.Truncated
		for _, ch := range rep.Changes {
			ch.Line = line(ch.Line)
			total.Changes = append(total.Changes, ch)
		}
		for _, re := range rep.Errors {
			re.Line = line(re.Line)
			total.Errors = append(total.Errors, re)
		}
	}
	return total, nil
}
