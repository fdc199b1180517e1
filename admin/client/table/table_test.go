package table_test

import (
	"bytes"
	"encoding/json"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hardbound/admin"
	"hardbound/admin/client/table"
	"hardbound/store"
)

var at = time.Date(2026, 12, 1, 10, 0, 0, 0, time.FixedZone("CET", 3600))

// TestPrinters: what a person reads for each answer; the wanted text is
// the exact output, aligned by the tabwriter.
func TestPrinters(t *testing.T) {
	t.Parallel()
	problems := []admin.VerifyProblem{{Seq: 4, Kind: "rewritten", Detail: "hash differs"}}
	for i := range 7 {
		problems = append(problems, admin.VerifyProblem{Seq: uint64(5 + i), Kind: "broken", Detail: "link"})
	}
	for _, tc := range []struct {
		name string
		rows func(w io.Writer)
		want string
	}{
		{"devices with empty fields as dashes", func(w io.Writer) {
			table.Devices(w, []admin.Device{{ID: "d1", Status: store.DeviceActive, Posture: admin.Posture{State: store.ComplianceCompliant, Source: "intune", UpdatedAt: at}, Profile: "corp"}})
		}, "ID  STATUS  POSTURE    SOURCE  POSTURE AT            PROFILE  PLATFORM\n" +
			"d1  active  compliant  intune  2026-12-01T09:00:00Z  corp     -\n"},
		{"a page that goes on", func(w io.Writer) {
			table.List(w, admin.List[admin.Session]{Items: []admin.Session{{NAS: "sw1", AcctSessionID: "a1", StartedAt: at}}, Next: "a1"}, table.Sessions)
		}, "NAS  ACCT-SESSION-ID  DEVICE  CALLING-STATION  STARTED               UPDATED  STOPPED\n" +
			"sw1  a1               -       -                2026-12-01T09:00:00Z  -        -\n" +
			"(1 shown; more: repeat with --after a1, or --limit up to 1000)\n"},
		{"a revoked certificate", func(w io.Writer) {
			table.Certs(w, []admin.Cert{{Serial: "ab", DeviceID: "d1", Protocol: "acme", Attested: true, NotAfter: at, Revoked: &admin.Revocation{At: at, Reason: 1}}})
		}, "SERIAL  DEVICE  PROTOCOL  ATTESTED  NOT AFTER             REVOKED\n" +
			"ab      d1      acme      true      2026-12-01T09:00:00Z  2026-12-01T09:00:00Z (reason 1)\n"},
		{"tokens: never, expired", func(w io.Writer) {
			table.Tokens(w, []admin.TokenInfo{{Name: "ops", Scope: "admin", CreatedAt: at}, {Name: "old", Scope: "read", CreatedAt: at, ExpiresAt: at, Expired: true}})
		}, "NAME  SCOPE  CREATED               EXPIRES\n" +
			"ops   admin  2026-12-01T09:00:00Z  never\n" +
			"old   read   2026-12-01T09:00:00Z  2026-12-01T09:00:00Z (expired)\n"},
		{"verify OK with its anchor", func(w io.Writer) {
			table.Verify(w, admin.VerifyResult{OK: true, Events: 9, FromSeq: 3, HeadSeq: 11, Checkpoints: 2, AnchorSeq: 3})
		}, "audit chain OK: 9 events checked (seq 3-11), signed checkpoint at seq 3 matches\n"},
		{"verify OK without checkpoints", func(w io.Writer) {
			table.Verify(w, admin.VerifyResult{OK: true, Events: 9, FromSeq: 1, HeadSeq: 9})
		}, "audit chain OK: 9 events checked (seq 1-9), no signed checkpoint to hold it against\n"},
		{"verify broken, the first five further findings", func(w io.Writer) {
			table.Verify(w, admin.VerifyResult{BrokenSeq: 4, Problem: "hash differs", Problems: problems})
		}, "audit chain BROKEN at seq 4: hash differs\n" +
			"  seq 5: broken: link\n  seq 6: broken: link\n  seq 7: broken: link\n  seq 8: broken: link\n  seq 9: broken: link\n" +
			"  ... and 2 more (--json lists up to 100)\n"},
		{"inventory dry run", func(w io.Writer) {
			table.Inventory(w, admin.InventoryReport{DryRun: true, Added: 1, Failed: 1, Truncated: true,
				Changes: []admin.InventoryChange{{Line: 2, ID: "S1", Action: "add"}},
				Errors:  []admin.InventoryRowError{{Line: 3, Error: "platform \"amiga\""}}})
		}, "inventory (dry run, nothing written): 1 added, 0 updated, 0 unchanged, 1 refused\n" +
			"LINE  DEVICE  CHANGE  FIELDS\n2     S1      add     -\n" +
			"LINE  DEVICE  REFUSED BECAUSE\n3     -       platform \"amiga\"\n" +
			"(the lists are truncated; the counts are exact)\n"},
		{"attestations below the minimum", func(w io.Writer) {
			table.Attestations(w, []admin.DeviceAttestation{{CertSerial: "ab", Format: "apple", Profile: "corp",
				Facts: map[string]string{"os": "iOS", "os_version": "17.1"}, BelowMinimum: "os_version 17.1 < 17.4"}})
		}, "CERT  FORMAT  PROFILE  OS        PATCH  MINIMUMS\n" +
			"ab    apple   corp     iOS 17.1  -      BELOW: os_version 17.1 < 17.4\n"},
		{"challenge bound to a key", func(w io.Writer) {
			table.Challenge(w, admin.ChallengeResponse{Challenge: "c", DeviceID: "d1", KeySHA256: "aa", ExpiresAt: at})
		}, "challenge   c\ndevice      d1\nexpires     2026-12-01T09:00:00Z\nkey sha256  aa\n"},
		{"a reload, nothing waiting for a restart", func(w io.Writer) {
			table.Reload(w, admin.ReloadReport{Path: "hb.yaml", Applied: []string{"mdm.intune", "profiles"}})
		}, "hb.yaml reloaded\napplied:           mdm.intune, profiles\nrestart required:  -\n"},
		{"ticket keys replaced", func(w io.Writer) { table.TicketKeys(w, admin.TicketKeysResponse{Shared: true}) },
			"ticket keys replaced (shared: true); the next authentication of every device is a full handshake\n"},
		{"a NAS and its files", func(w io.Writer) {
			table.NAS(w, "sw1", filepath.Join("out", "nas"), admin.NASResponse{Serial: "ab", NotAfter: "2027-12-01T09:00:00Z"})
		}, "NAS sw1: serial ab, valid until 2027-12-01T09:00:00Z\n" +
			"wrote " + filepath.Join("out", "nas", "sw1.key") + ", " + filepath.Join("out", "nas", "sw1.crt") + " and " + filepath.Join("out", "nas", "ca.crt") + "\n"},
	} {
		var b bytes.Buffer
		if err := table.Print(&b, false, nil, tc.rows); err != nil {
			t.Fatal(err)
		}
		if b.String() != tc.want {
			t.Errorf("%s:\n%s\nwant\n%s", tc.name, b.String(), tc.want)
		}
	}
}

func TestPrintWithJSONWritesTheAnswerIndented(t *testing.T) {
	t.Parallel()
	v := admin.TokenInfo{Name: "ops", Scope: "admin"}
	var b bytes.Buffer
	if err := table.Print(&b, true, v, func(io.Writer) { t.Error("rows printed with --json") }); err != nil {
		t.Fatal(err)
	}
	want, _ := json.MarshalIndent(v, "", "  ")
	if b.String() != string(want)+"\n" {
		t.Errorf("%s, want %s", b.String(), want)
	}
}

func TestExpiry(t *testing.T) {
	t.Parallel()
	if got := table.Expiry(admin.TokenInfo{}); got != "never expires" {
		t.Error(got)
	}
	if got := table.Expiry(admin.TokenInfo{ExpiresAt: at}); got != "expires 2026-12-01T09:00:00Z" {
		t.Error(got)
	}
}

// TestNewTokenShowsTheValueOnlyWhereAsked: saved to a file, the value is
// not printed; with --json it is in the answer; else it is alone on
// stdout (so `> file` captures it) and stderr says it is shown once.
func TestNewTokenShowsTheValueOnlyWhereAsked(t *testing.T) {
	t.Parallel()
	res := admin.TokenCreated{Token: "hb_v", TokenInfo: admin.TokenInfo{Name: "ops", Scope: "admin", ExpiresAt: at}}
	for _, tc := range []struct {
		name, savedTo       string
		asJSON              bool
		wantOut, wantStderr string
	}{
		{"saved", "/tmp/tok", false, "", "token \"ops\" (scope admin, expires 2026-12-01T09:00:00Z) written to /tmp/tok\n"},
		{"saved, --json too", "/tmp/tok", true, "", "token \"ops\" (scope admin, expires 2026-12-01T09:00:00Z) written to /tmp/tok\n"},
		{"json", "", true, "{\n  \"name\": \"ops\",\n  \"scope\": \"admin\",\n  \"expires_at\": \"2026-12-01T10:00:00+01:00\",\n  \"token\": \"hb_v\"\n}\n", ""},
		{"plain", "", false, "hb_v\n", "token \"ops\" (scope admin, expires 2026-12-01T09:00:00Z); it is shown this once:\n"},
	} {
		var out, errw bytes.Buffer
		if err := table.NewToken(&out, &errw, tc.asJSON, res, tc.savedTo); err != nil {
			t.Fatal(err)
		}
		if out.String() != tc.wantOut || errw.String() != tc.wantStderr {
			t.Errorf("%s: stdout %q stderr %q, want %q and %q", tc.name, out.String(), errw.String(), tc.wantOut, tc.wantStderr)
		}
	}
}

// TestProgressLines: a redraw at most every 100ms, the last item always,
// ended with a newline; a buffer is not a terminal.
func TestProgressLines(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	p := table.Progress(&b, "devices")
	for i := 1; i <= 3; i++ {
		p(i, 3)
	}
	if got := b.String(); !strings.HasPrefix(got, "\r1/3 devices (") || !strings.Contains(got, "\r3/3 devices (") || strings.Contains(got, "2/3") || !strings.HasSuffix(got, "/s)\n") {
		t.Errorf("%q", got)
	}
	b.Reset()
	r := table.Records(&b)
	r(10000, false)
	r(12345, true)
	if got := b.String(); !strings.HasPrefix(got, "\r10000 records (") || !strings.Contains(got, "\r12345 records (") || !strings.HasSuffix(got, "/s)\n") {
		t.Errorf("%q", got)
	}
	if table.IsTerminal(&b) {
		t.Error("a buffer is a terminal")
	}
	if table.TerminalRecords(&b) != nil {
		t.Error("progress lines for a buffer")
	}
}
