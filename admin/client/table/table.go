// Package table is how the CLI shows the admin API's answers to a person:
// aligned tables (or, with --json, the answer itself as indented JSON)
// and progress lines on a terminal. Times are UTC RFC 3339; an empty
// field is "-".
package table

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"hardbound/admin"
	"hardbound/admin/client"
)

// Write writes v as indented JSON when asJSON, else what text writes.
func Write(w io.Writer, asJSON bool, v any, text func(io.Writer) error) error {
	if !asJSON {
		return text(w)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// Print writes v as indented JSON when asJSON, else the tab-separated
// rows of rows as aligned columns.
func Print(w io.Writer, asJSON bool, v any, rows func(w io.Writer)) error {
	return Write(w, asJSON, v, func(w io.Writer) error {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		rows(tw)
		return tw.Flush()
	})
}

// Time is t in UTC RFC 3339, "-" when unset.
func Time(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Devices is one row a device.
func Devices(w io.Writer, ds []admin.Device) {
	fmt.Fprintln(w, "ID\tSTATUS\tPOSTURE\tSOURCE\tPOSTURE AT\tPROFILE\tPLATFORM")
	for _, d := range ds {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.ID, d.Status, orDash(string(d.Posture.State)),
			orDash(d.Posture.Source), Time(d.Posture.UpdatedAt), orDash(d.Profile), orDash(d.Platform))
	}
}

// DeviceDetail is the device, then its certificates, attestations and
// sessions, each a table.
func DeviceDetail(w io.Writer, d admin.DeviceDetail) {
	Devices(w, []admin.Device{*d.Device})
	fmt.Fprintln(w)
	Certs(w, d.Certs)
	fmt.Fprintln(w)
	Attestations(w, d.Attestations)
	fmt.Fprintln(w)
	Sessions(w, d.Sessions)
}

// Certs is one row a certificate.
func Certs(w io.Writer, cs []admin.Cert) {
	fmt.Fprintln(w, "SERIAL\tDEVICE\tPROTOCOL\tATTESTED\tNOT AFTER\tREVOKED")
	for _, c := range cs {
		rev := "-"
		if c.Revoked != nil {
			rev = fmt.Sprintf("%s (reason %d)", Time(c.Revoked.At), c.Revoked.Reason)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%t\t%s\t%s\n", c.Serial, c.DeviceID, c.Protocol, c.Attested, Time(c.NotAfter), rev)
	}
}

// Sessions is one row an accounting session.
func Sessions(w io.Writer, ss []admin.Session) {
	fmt.Fprintln(w, "NAS\tACCT-SESSION-ID\tDEVICE\tCALLING-STATION\tSTARTED\tUPDATED\tSTOPPED")
	for _, s := range ss {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.NAS, s.AcctSessionID, orDash(s.DeviceID),
			orDash(s.CallingStationID), Time(s.StartedAt), Time(s.UpdatedAt), Time(s.StoppedAt))
	}
}

// Attestations are a device's attested facts and whether they meet its
// profile's minimums.
func Attestations(w io.Writer, as []admin.DeviceAttestation) {
	fmt.Fprintln(w, "CERT\tFORMAT\tPROFILE\tOS\tPATCH\tMINIMUMS")
	for _, a := range as {
		os := orDash(strings.TrimSpace(a.Facts["os"] + " " + a.Facts["os_version"]))
		mins := "met"
		if !a.MeetsMinimums {
			mins = "BELOW: " + a.BelowMinimum
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", a.CertSerial, a.Format, a.Profile, os, orDash(a.Facts["os_patch_level"]), mins)
	}
}

// List is a page's rows, then, when the listing goes on, how to get the
// next page.
func List[T any](w io.Writer, l admin.List[T], rows func(io.Writer, []T)) {
	rows(w, l.Items)
	if l.Next != "" {
		fmt.Fprintf(w, "(%d shown; more: repeat with --after %s, or --limit up to 1000)\n", len(l.Items), l.Next)
	}
}

// Challenge is a minted SCEP challenge.
func Challenge(w io.Writer, c admin.ChallengeResponse) {
	fmt.Fprintf(w, "challenge\t%s\ndevice\t%s\nexpires\t%s\n", c.Challenge, c.DeviceID, Time(c.ExpiresAt))
	if c.KeySHA256 != "" {
		fmt.Fprintf(w, "key sha256\t%s\n", c.KeySHA256)
	}
}

// Tokens is one row a token (never a value).
func Tokens(w io.Writer, ts []admin.TokenInfo) {
	fmt.Fprintln(w, "NAME\tSCOPE\tCREATED\tEXPIRES")
	for _, t := range ts {
		exp := Time(t.ExpiresAt)
		if t.ExpiresAt.IsZero() {
			exp = "never"
		}
		if t.Expired {
			exp += " (expired)"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", t.Name, t.Scope, Time(t.CreatedAt), exp)
	}
}

// Expiry says when a token expires.
func Expiry(t admin.TokenInfo) string {
	if t.ExpiresAt.IsZero() {
		return "never expires"
	}
	return "expires " + Time(t.ExpiresAt)
}

// Audit is one row an audit event.
func Audit(w io.Writer, evs []admin.AuditEvent) {
	fmt.Fprintln(w, "SEQ\tTIME\tACTOR\tACTION\tSUBJECT\tRESULT\tREASON")
	for _, ev := range evs {
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", ev.Seq, Time(ev.Time), ev.Actor, ev.Action, orDash(ev.Subject), ev.Result, orDash(ev.Reason))
	}
}

// Verify is the outcome of an audit chain verification: one line when it
// holds, else the first break and up to five further findings.
func Verify(w io.Writer, out admin.VerifyResult) {
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

// Inventory is what an add or import did: the counts, then the changes
// and the refused records with their lines.
func Inventory(w io.Writer, r admin.InventoryReport) {
	verb := "applied"
	if r.DryRun {
		verb = "dry run, nothing written"
	}
	fmt.Fprintf(w, "inventory (%s): %d added, %d updated, %d unchanged, %d refused\n", verb, r.Added, r.Updated, r.Unchanged, r.Failed)
	if len(r.Changes) > 0 {
		fmt.Fprintln(w, "LINE\tDEVICE\tCHANGE\tFIELDS")
		for _, c := range r.Changes {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", lineOrDash(c.Line), c.ID, c.Action, orDash(strings.Join(c.Fields, ",")))
		}
	}
	if len(r.Errors) > 0 {
		fmt.Fprintln(w, "LINE\tDEVICE\tREFUSED BECAUSE")
		for _, e := range r.Errors {
			fmt.Fprintf(w, "%s\t%s\t%s\n", lineOrDash(e.Line), orDash(e.ID), e.Error)
		}
	}
	if r.Truncated {
		fmt.Fprintln(w, "(the lists are truncated; the counts are exact)")
	}
}

func lineOrDash(n int) string {
	if n <= 0 {
		return "-"
	}
	return fmt.Sprint(n)
}

// IsTerminal reports whether w is a terminal, where a live progress line
// belongs.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// Progress returns a callback that redraws one line "done/n what (rate/s)"
// on w at most ten times a second, and finishes it at the last item.
func Progress(w io.Writer, what string) func(done, n int) {
	var mu sync.Mutex
	var last time.Time
	start := time.Now()
	return func(done, n int) {
		mu.Lock()
		defer mu.Unlock()
		if done < n && time.Since(last) < 100*time.Millisecond {
			return
		}
		last = time.Now()
		rate := float64(done) / max(time.Since(start).Seconds(), 0.001)
		fmt.Fprintf(w, "\r%d/%d %s (%.0f/s)", done, n, what, rate)
		if done == n {
			fmt.Fprintln(w)
		}
	}
}

// Records returns a callback that redraws one line "N records (rate/s)"
// on w, for a stream of unknown length, and ends it when done.
func Records(w io.Writer) func(lines int, done bool) {
	start := time.Now()
	return func(lines int, done bool) {
		rate := float64(lines) / max(time.Since(start).Seconds(), 0.001)
		fmt.Fprintf(w, "\r%d records (%.0f/s)", lines, rate)
		if done {
			fmt.Fprintln(w)
		}
	}
}

// TerminalRecords is Records(w) when w is a terminal, else nil: a log
// file gets no progress lines.
func TerminalRecords(w io.Writer) func(lines int, done bool) {
	if !IsTerminal(w) {
		return nil
	}
	return Records(w)
}

// NewToken tells of a created token. Saved to a file (savedTo), a line on
// stderr says where; with asJSON the answer goes to stdout as JSON; else
// the value goes alone on stdout, so that `> file` captures exactly it,
// and stderr says it is shown this once.
func NewToken(stdout, stderr io.Writer, asJSON bool, res admin.TokenCreated, savedTo string) error {
	exp := Expiry(res.TokenInfo)
	switch {
	case savedTo != "":
		fmt.Fprintf(stderr, "token %q (scope %s, %s) written to %s\n", res.Name, res.Scope, exp, savedTo)
		return nil
	case asJSON:
		return Write(stdout, true, res, nil)
	}
	fmt.Fprintf(stderr, "token %q (scope %s, %s); it is shown this once:\n", res.Name, res.Scope, exp)
	_, err := fmt.Fprintln(stdout, res.Token)
	return err
}

// Reload is what a configuration reload applied and what waits for a
// restart.
func Reload(w io.Writer, rep admin.ReloadReport) {
	fmt.Fprintf(w, "%s reloaded\napplied:\t%s\nrestart required:\t%s\n", rep.Path, keyList(rep.Applied), keyList(rep.RestartRequired))
}

// keyList is config keys separated by commas, "-" for none.
func keyList(k []string) string {
	if len(k) == 0 {
		return "-"
	}
	return strings.Join(k, ", ")
}

// TicketKeys is the answer to a ticket key rotation.
func TicketKeys(w io.Writer, resp admin.TicketKeysResponse) {
	fmt.Fprintf(w, "ticket keys replaced (shared: %v); the next authentication of every device is a full handshake\n", resp.Shared)
}

// NAS is a NAS certificate issued as NAME into dir, with the files written
// (client.NASFiles).
func NAS(w io.Writer, name, dir string, resp admin.NASResponse) {
	key, crt, ca := client.NASFiles(dir, name)
	fmt.Fprintf(w, "NAS %s: serial %s, valid until %s\n", name, resp.Serial, resp.NotAfter)
	fmt.Fprintf(w, "wrote %s, %s and %s\n", key, crt, ca)
}
