package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/spf13/cobra"

	"hardbound/admin"
	"hardbound/store"
	"hardbound/store/auditexport"
)

func newAuditCmd(e *env, cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Read, verify and export the audit chain"}
	var n int
	tail := &cobra.Command{
		Use: "tail", Short: "Show the latest audit events", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out admin.List[admin.AuditEvent]
			if err := cf.call(cmd.Context(), e, "GET", fmt.Sprintf("/api/v1/audit?n=%d", n), nil, &out); err != nil {
				return err
			}
			return output(e, cf, out, func(w io.Writer) { auditRows(w, out.Items) })
		},
	}
	tail.Flags().IntVarP(&n, "n", "n", 20, "how many events")
	cmd.AddCommand(tail, newAuditVerifyCmd(e, cf), newAuditExportCmd(e, cf))
	return cmd
}

// maxSentCheckpoints bounds what `verify --checkpoints` sends (the admin
// API takes bodies up to 1 MiB, a checkpoint is ~300 bytes).
const maxSentCheckpoints = 2000

func newAuditVerifyCmd(e *env, cf *clientFlags) *cobra.Command {
	var full bool
	var cpFile string
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Recompute the audit chain and hold it against signed checkpoints",
		Long: "Recompute the audit chain from the newest signed checkpoint (--full: from seq 1) and report a\n" +
			"missing tail or a rewritten event by seq. --checkpoints FILE holds the chain against the\n" +
			"checkpoints a sink received instead (a syslog file or JSON lines), which catches a rewrite of\n" +
			"the whole database.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out admin.VerifyResult
			path := "/api/v1/audit/verify"
			if full {
				path += "?full=1"
			}
			if cpFile == "" {
				if err := cf.call(cmd.Context(), e, "GET", path, nil, &out); err != nil {
					return err
				}
			} else {
				req, err := readCheckpointFile(cpFile)
				if err != nil {
					return err
				}
				if len(req.Checkpoints) == 0 {
					return fmt.Errorf("%s holds no audit checkpoint", cpFile)
				}
				if err := cf.call(cmd.Context(), e, "POST", path, req, &out); err != nil {
					return err
				}
			}
			if err := output(e, cf, out, func(w io.Writer) { verifyRows(w, out) }); err != nil {
				return err
			}
			if !out.OK {
				return errSilent
			}
			return nil
		},
	}
	verify.Flags().BoolVar(&full, "full", false, "check every event from seq 1, not from the newest checkpoint")
	verify.Flags().StringVar(&cpFile, "checkpoints", "", "hold the chain against the checkpoints in this file (what a sink received)")
	return verify
}

func verifyRows(w io.Writer, out admin.VerifyResult) {
	if out.OK {
		fmt.Fprintf(w, "audit chain OK: %d events checked", out.Events)
		if out.HeadSeq != 0 {
			fmt.Fprintf(w, " (seq %d-%d)", out.FromSeq, out.HeadSeq)
		}
		if out.AnchorSeq != 0 {
			fmt.Fprintf(w, ", signed checkpoint at seq %d matches", out.AnchorSeq)
		} else if out.HeadSeq != 0 && out.Checkpoints == 0 {
			fmt.Fprint(w, ", no signed checkpoint to hold it against")
		}
		fmt.Fprintln(w)
		return
	}
	fmt.Fprintf(w, "audit chain BROKEN at seq %d: %s\n", out.BrokenSeq, out.Problem)
	rest := out.Problems[min(1, len(out.Problems)):]
	const shown = 5
	for _, p := range rest[:min(shown, len(rest))] {
		fmt.Fprintf(w, "  seq %d: %s: %s\n", p.Seq, p.Kind, p.Detail)
	}
	if len(rest) > shown {
		fmt.Fprintf(w, "  ... and %d more (--json lists up to 100)\n", len(rest)-shown)
	}
}

// readCheckpointFile reads the checkpoints of a sink's file, keeping the
// newest maxSentCheckpoints/2 and an even spread of the older ones.
func readCheckpointFile(path string) (admin.VerifyRequest, error) {
	f, err := os.Open(path)
	if err != nil {
		return admin.VerifyRequest{}, err
	}
	defer f.Close()
	cps, err := auditexport.ReadCheckpoints(f)
	if err != nil {
		return admin.VerifyRequest{}, fmt.Errorf("%s: %w", path, err)
	}
	cps = thin(cps, maxSentCheckpoints)
	req := admin.VerifyRequest{Checkpoints: make([]admin.AuditCheckpoint, 0, len(cps))}
	for _, c := range cps {
		req.Checkpoints = append(req.Checkpoints, admin.AuditCheckpoint{Seq: c.Seq, Hash: c.Hash, Time: c.Time, KeyID: c.KeyID, Alg: c.Alg, Sig: c.Sig})
	}
	return req, nil
}

func thin(cps []store.AuditCheckpoint, n int) []store.AuditCheckpoint {
	if len(cps) <= n {
		return cps
	}
	newest := cps[len(cps)-n/2:]
	older := cps[:len(cps)-n/2]
	out := make([]store.AuditCheckpoint, 0, n)
	step := float64(len(older)) / float64(n-len(newest))
	for i := 0; i < n-len(newest); i++ {
		out = append(out, older[int(float64(i)*step)])
	}
	return append(out, newest...)
}

func newAuditExportCmd(e *env, cf *clientFlags) *cobra.Command {
	var since, format, outPath string
	var fromSeq uint64
	export := &cobra.Command{
		Use:   "export",
		Short: "Write the audit chain (with its checkpoints) to a file, for an investigation",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			if fromSeq != 0 {
				q.Set("from_seq", fmt.Sprint(fromSeq))
			}
			if since != "" {
				t, err := time.Parse(time.RFC3339, since)
				if err != nil {
					return fmt.Errorf("--since: %q is not an RFC 3339 time (2026-12-01T00:00:00Z)", since)
				}
				q.Set("since", t.Format(time.RFC3339))
			}
			q.Set("format", format)
			c, err := cf.client(e)
			if err != nil {
				return err
			}
			var w io.Writer = e.stdout
			if outPath != "" && outPath != "-" {
				f, err := os.OpenFile(outPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
				if err != nil {
					return err
				}
				defer f.Close()
				w = f
			}
			lines, err := c.download(cmd.Context(), "/api/v1/audit/export?"+q.Encode(), w, progressTo(e.stderr, outPath))
			if err != nil {
				return err
			}
			if outPath != "" && outPath != "-" {
				fmt.Fprintf(e.stderr, "wrote %d records to %s\n", lines, outPath)
			}
			return nil
		},
	}
	export.Flags().StringVar(&since, "since", "", "first event at or after this time (RFC 3339)")
	export.Flags().Uint64Var(&fromSeq, "from-seq", 0, "first event by seq")
	export.Flags().StringVar(&format, "format", "jsonl", "jsonl or rfc5424")
	export.Flags().StringVarP(&outPath, "output", "o", "", "file to write (default: standard output)")
	return export
}

// progressTo reports progress on w when it is a terminal and the export
// goes to a file; nil otherwise.
func progressTo(w io.Writer, outPath string) func(lines int, done bool) {
	f, ok := w.(*os.File)
	if !ok || outPath == "" || outPath == "-" {
		return nil
	}
	if fi, err := f.Stat(); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return nil
	}
	start := time.Now()
	return func(lines int, done bool) {
		rate := float64(lines) / max(time.Since(start).Seconds(), 0.001)
		fmt.Fprintf(f, "\r%d records (%.0f/s)", lines, rate)
		if done {
			fmt.Fprintln(f)
		}
	}
}

// download streams a GET answer to w line by line, returning the lines.
func (c *apiClient) download(ctx context.Context, path string, w io.Writer, progress func(int, bool)) (int, error) {
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
