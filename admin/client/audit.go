package client

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"

	"hardbound/admin"
	"hardbound/store"
	"hardbound/store/auditexport"
)

// TailAudit is the latest n audit events.
func (c *Client) TailAudit(ctx context.Context, n int) (admin.List[admin.AuditEvent], error) {
	return get[admin.List[admin.AuditEvent]](ctx, c, fmt.Sprintf("/api/v1/audit?n=%d", n))
}

// MaxSentCheckpoints bounds the checkpoints VerifyAudit sends: the admin
// API takes bodies up to 1 MiB, and a checkpoint is about 300 bytes.
const MaxSentCheckpoints = 2000

// VerifyAudit has the server recompute its audit chain (full: from seq
// 1, else from its newest signed checkpoint). With against, the chain is
// held against those checkpoints (what a sink received) instead of the
// server's own: the newest MaxSentCheckpoints/2 and an even spread of the
// older ones are sent.
func (c *Client) VerifyAudit(ctx context.Context, full bool, against []store.AuditCheckpoint) (admin.VerifyResult, error) {
	path := "/api/v1/audit/verify"
	if full {
		path += "?full=1"
	}
	if against == nil {
		return get[admin.VerifyResult](ctx, c, path)
	}
	cps := auditexport.Thin(against, MaxSentCheckpoints)
	req := admin.VerifyRequest{Checkpoints: make([]admin.AuditCheckpoint, 0, len(cps))}
	for _, cp := range cps {
		req.Checkpoints = append(req.Checkpoints, admin.AuditCheckpointOf(cp))
	}
	return post[admin.VerifyResult](ctx, c, path, req)
}

// ExportQuery selects what ExportAudit streams: from seq FromSeq, or
// events at or after Since, as Format (jsonl or rfc5424).
type ExportQuery struct {
	FromSeq uint64
	Since   time.Time
	Format  string
}

// ExportAudit streams the audit chain with its checkpoints to w and
// returns the records (lines) written. progress, if not nil, is called
// every 10,000 lines and once at the end with done set.
func (c *Client) ExportAudit(ctx context.Context, eq ExportQuery, w io.Writer, progress func(lines int, done bool)) (int, error) {
	q := url.Values{}
	if eq.FromSeq != 0 {
		q.Set("from_seq", strconv.FormatUint(eq.FromSeq, 10))
	}
	if !eq.Since.IsZero() {
		q.Set("since", eq.Since.Format(time.RFC3339))
	}
	q.Set("format", eq.Format)
	return c.download(ctx, "/api/v1/audit/export?"+q.Encode(), w, progress)
}

// ExportAuditFile is ExportAudit into the file at path, created 0600 or
// truncated: an export is evidence, readable by its owner only.
func (c *Client) ExportAuditFile(ctx context.Context, eq ExportQuery, path string, progress func(lines int, done bool)) (int, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, err
	}
	lines, err := c.ExportAudit(ctx, eq, f, progress)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return lines, err
}

// download streams a GET answer to w line by line, returning the lines.
func (c *Client) download(ctx context.Context, path string, w io.Writer, progress func(int, bool)) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("admin API: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return 0, fmt.Errorf("server: HTTP %d: %s", resp.StatusCode, b)
	}
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	bw := bufio.NewWriterSize(w, 64<<10)
	lines := 0
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			if _, werr := bw.Write(line); werr != nil {
				return lines, werr
			}
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return lines, fmt.Errorf("admin API: %w", err)
		}
		lines++
		if progress != nil && lines%10000 == 0 {
			progress(lines, false)
		}
	}
	if progress != nil {
		progress(lines, true)
	}
	return lines, bw.Flush()
}
