package postgres

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/jackc/pgx/v5"

	"hardbound/store"
)

// backupFormat names the stream Backup writes: one JSON object a line, a
// header first, then every row of every record table as PostgreSQL's
// row_to_json gives it. It is this backend's own format; moving data
// between backends goes through the store API.
const backupFormat = "hardbound-postgres-backup"

// backupTables are the record tables, in restore order. The change feed
// is not backed up: a restore is announced as one store.ChangeReset.
var backupTables = []string{"devices", "aliases", "certs", "attestations", "attestation_keys",
	"challenges", "sessions", "acme_accounts", "audit", "audit_head", "audit_checkpoints", "audit_cursors", "audit_pruned"}

type backupHeader struct {
	Format string `json:"format"`
	Schema int    `json:"schema"`
}

type backupLine struct {
	Table string          `json:"t"`
	Row   json.RawMessage `json:"r"`
}

// Backup writes every record in one consistent snapshot; writers are not
// held up.
func (s *Store) Backup(ctx context.Context, w io.Writer) error {
	bw := bufio.NewWriter(w)
	err := s.readTx(ctx, "backup", func(tx pgx.Tx) error {
		enc := json.NewEncoder(bw)
		if err := enc.Encode(backupHeader{Format: backupFormat, Schema: SchemaVersion()}); err != nil {
			return err
		}
		for _, table := range backupTables {
			// table is one of the constants above, never input.
			rows, err := tx.Query(ctx, "SELECT row_to_json(t) FROM "+table+" t")
			if err != nil {
				return err
			}
			for rows.Next() {
				var b []byte
				if err := rows.Scan(&b); err != nil {
					rows.Close()
					return err
				}
				if err := enc.Encode(backupLine{Table: table, Row: b}); err != nil {
					rows.Close()
					return err
				}
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("store/postgres: backup: %w", err)
	}
	return nil
}

const (
	// maxBackupLine bounds one line of a backup (a record with its DER is
	// a few KiB).
	maxBackupLine = 4 << 20
	restoreBatch  = 500
)

// Restore loads a backup made by Backup into an empty store (a store with
// any record fails with store.ErrExists), in one transaction: it is all
// in or nothing is. Every node, this one included, is told through the
// change feed with one store.ChangeReset.
func (s *Store) Restore(ctx context.Context, r io.Reader) error {
	br := bufio.NewReaderSize(r, 64<<10)
	ran := false
	return s.changing(ctx, "restore", nil, func(tx pgx.Tx) (*store.Change, error) {
		// A retried transaction would read on from where the reader
		// stopped: fail instead.
		if ran {
			return nil, errors.New("restore interrupted by a conflicting transaction; retry it on an idle store")
		}
		ran = true
		var empty bool
		if err := tx.QueryRow(ctx, `SELECT NOT (EXISTS (SELECT 1 FROM devices) OR EXISTS (SELECT 1 FROM certs)
			OR EXISTS (SELECT 1 FROM attestations) OR EXISTS (SELECT 1 FROM challenges) OR EXISTS (SELECT 1 FROM sessions)
			OR EXISTS (SELECT 1 FROM acme_accounts) OR EXISTS (SELECT 1 FROM audit) OR EXISTS (SELECT 1 FROM audit_checkpoints))`).Scan(&empty); err != nil {
			return nil, err
		}
		if !empty {
			return nil, fmt.Errorf("%w: store is not empty", store.ErrExists)
		}
		if err := restoreTx(ctx, tx, br); err != nil {
			return nil, err
		}
		return &store.Change{Kind: store.ChangeReset, At: s.now()}, nil
	})
}

func restoreTx(ctx context.Context, tx pgx.Tx, br *bufio.Reader) error {
	return readBackup(br, func(table string, rows []json.RawMessage) error {
		arr, err := json.Marshal(rows)
		if err != nil {
			return err
		}
		if table == "audit_head" {
			_, err = tx.Exec(ctx, `UPDATE audit_head SET (seq, hash) = (SELECT p.seq, p.hash
				FROM json_array_elements($1::json) e, json_populate_record(NULL::audit_head, e) p LIMIT 1)`, arr)
		} else {
			// readBackup checked table against backupTables.
			_, err = tx.Exec(ctx, "INSERT INTO "+table+" SELECT p.* FROM json_array_elements($1::json) e, json_populate_record(NULL::"+table+", e) p", arr)
		}
		if err != nil {
			return fmt.Errorf("restore %s: %w", table, err)
		}
		return nil
	})
}

// readBackup parses a backup stream: it checks the header and calls fn
// with the rows of one table at a time, at most restoreBatch of them, in
// the order of the stream. A table not in backupTables, a line that is
// not JSON or longer than maxBackupLine, and a header from another format
// or a newer schema are errors.
func readBackup(br *bufio.Reader, fn func(table string, rows []json.RawMessage) error) error {
	line, err := readLine(br)
	if err != nil {
		return fmt.Errorf("header: %w", err)
	}
	var h backupHeader
	if err := json.Unmarshal(line, &h); err != nil || h.Format != backupFormat {
		return errors.New("not a hardbound PostgreSQL backup")
	}
	if h.Schema > SchemaVersion() {
		return fmt.Errorf("%w: backup has schema %d", ErrSchemaTooNew, h.Schema)
	}
	var (
		table string
		batch []json.RawMessage
	)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := fn(table, batch)
		batch = nil
		return err
	}
	for {
		line, err := readLine(br)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		var l backupLine
		if err := json.Unmarshal(line, &l); err != nil {
			return fmt.Errorf("bad backup line: %w", err)
		}
		if !slices.Contains(backupTables, l.Table) {
			return fmt.Errorf("backup names unknown table %q", l.Table)
		}
		if len(l.Row) == 0 || l.Row[0] != '{' {
			return fmt.Errorf("backup row of %s is not a JSON object", l.Table)
		}
		if l.Table != table || len(batch) == restoreBatch {
			if err := flush(); err != nil {
				return err
			}
			table = l.Table
		}
		batch = append(batch, l.Row)
	}
	return flush()
}

// readLine reads one newline-terminated line of at most maxBackupLine
// bytes; io.EOF at a clean end.
func readLine(br *bufio.Reader) ([]byte, error) {
	var buf bytes.Buffer
	for {
		part, err := br.ReadSlice('\n')
		buf.Write(part)
		if buf.Len() > maxBackupLine {
			return nil, fmt.Errorf("backup line longer than %d bytes", maxBackupLine)
		}
		switch {
		case err == nil:
			return bytes.TrimSpace(buf.Bytes()), nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(bytes.TrimSpace(buf.Bytes())) > 0:
			return bytes.TrimSpace(buf.Bytes()), nil
		default:
			return nil, err
		}
	}
}
