package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"hardbound/admin"
	"hardbound/admin/client"
	"hardbound/admin/client/table"
	"hardbound/store"
	"hardbound/store/auditexport"
)

func newAuditCmd(e *env, cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Read, verify and export the audit chain"}
	var n int
	tail := &cobra.Command{
		Use: "tail", Short: "Show the latest audit events", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return show(cmd, e, cf, func(ctx context.Context, c *client.Client) (admin.List[admin.AuditEvent], error) {
				return c.TailAudit(ctx, n)
			}, func(w io.Writer, l admin.List[admin.AuditEvent]) { table.Audit(w, l.Items) })
		},
	}
	tail.Flags().IntVarP(&n, "n", "n", 20, "how many events")
	cmd.AddCommand(tail, newAuditVerifyCmd(e, cf), newAuditExportCmd(e, cf))
	return cmd
}

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
			var against []store.AuditCheckpoint
			if cpFile != "" {
				var err error
				if against, err = auditexport.ReadCheckpointFile(cpFile); err != nil {
					return err
				}
			}
			var ok bool
			err := show(cmd, e, cf, func(ctx context.Context, c *client.Client) (admin.VerifyResult, error) {
				res, err := c.VerifyAudit(ctx, full, against)
				ok = res.OK
				return res, err
			}, table.Verify)
			if err == nil && !ok {
				return errSilent
			}
			return err
		},
	}
	verify.Flags().BoolVar(&full, "full", false, "check every event from seq 1, not from the newest checkpoint")
	verify.Flags().StringVar(&cpFile, "checkpoints", "", "hold the chain against the checkpoints in this file (what a sink received)")
	return verify
}

func newAuditExportCmd(e *env, cf *clientFlags) *cobra.Command {
	var since, outPath string
	var q client.ExportQuery
	export := &cobra.Command{
		Use:   "export",
		Short: "Write the audit chain (with its checkpoints) to a file, for an investigation",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if since != "" {
				t, err := time.Parse(time.RFC3339, since)
				if err != nil {
					return fmt.Errorf("--since: %q is not an RFC 3339 time (2026-12-01T00:00:00Z)", since)
				}
				q.Since = t
			}
			c, err := cf.client(e)
			if err != nil {
				return err
			}
			if outPath == "" || outPath == "-" {
				_, err = c.ExportAudit(cmd.Context(), q, e.stdout, nil)
				return err
			}
			lines, err := c.ExportAuditFile(cmd.Context(), q, outPath, table.TerminalRecords(e.stderr))
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stderr, "wrote %d records to %s\n", lines, outPath)
			return nil
		},
	}
	export.Flags().StringVar(&since, "since", "", "first event at or after this time (RFC 3339)")
	export.Flags().Uint64Var(&q.FromSeq, "from-seq", 0, "first event by seq")
	export.Flags().StringVar(&q.Format, "format", "jsonl", "jsonl or rfc5424")
	export.Flags().StringVarP(&outPath, "output", "o", "", "file to write (default: standard output)")
	return export
}
