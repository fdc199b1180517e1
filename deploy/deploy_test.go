// Package deploy holds the operations pack (systemd unit, Grafana
// dashboard, Prometheus alert rules); its tests check that every query
// uses a metric the server exports and that the rules and the unit are
// what the pack says they are.
package deploy

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"hardbound/admin/metrics"
)

// metricRE finds metric names in PromQL. Label names and values never
// start with these prefixes in our queries, and durations such as [5m] do
// not match.
var metricRE = regexp.MustCompile(`\b(hardbound_[a-z0-9_]+|process_[a-z0-9_]+|go_[a-z0-9_]+|up)\b`)

func exported(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{"up": true} // Prometheus's own, per scrape target
	for _, n := range metrics.New().Names() {
		names[n] = true
	}
	return names
}

// requireTool fails under CI=true when a tool is missing (.ci/run installs
// it) and skips otherwise.
func requireTool(t *testing.T, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed; .ci/run must install it", tool)
		}
		t.Skipf("%s is not installed", tool)
	}
	return p
}

func checkExprs(t *testing.T, where string, exprs []string, names map[string]bool) {
	t.Helper()
	if len(exprs) == 0 {
		t.Fatalf("%s: no query found", where)
	}
	for _, e := range exprs {
		ms := metricRE.FindAllString(e, -1)
		if len(ms) == 0 {
			t.Errorf("%s: query uses no hardbound metric: %s", where, e)
		}
		for _, m := range ms {
			if !names[m] {
				t.Errorf("%s: %s is not a metric hardbound exports (query %s)", where, m, e)
			}
		}
		if strings.Count(e, "(") != strings.Count(e, ")") || strings.Count(e, "{") != strings.Count(e, "}") {
			t.Errorf("%s: unbalanced brackets in %s", where, e)
		}
	}
}

type dashboard struct {
	Title      string  `json:"title"`
	UID        string  `json:"uid"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	Type    string `json:"type"`
	Title   string `json:"title"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

func TestDashboardQueriesUseExportedMetrics(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join("grafana", "hardbound.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("dashboard without uid or title")
	}
	names := exported(t)
	used := map[string]bool{}
	var graphs int
	for _, p := range d.Panels {
		if p.Type == "row" {
			continue
		}
		graphs++
		var exprs []string
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
			for _, m := range metricRE.FindAllString(tg.Expr, -1) {
				used[m] = true
			}
		}
		checkExprs(t, "panel "+p.Title, exprs, names)
	}
	for _, v := range d.Templating.List {
		if q, ok := v.Query.(map[string]any); ok {
			checkExprs(t, "variable "+v.Name, []string{q["query"].(string)}, names)
		}
	}
	if graphs < 15 {
		t.Errorf("only %d panels", graphs)
	}
	// The families an operator most needs are on the dashboard.
	for _, want := range []string{"hardbound_radius_rejects_total", "hardbound_radius_auth_duration_seconds_bucket",
		"hardbound_enroll_enrollments_total", "hardbound_dynauth_answers_total", "hardbound_posture_mdm_polls_total",
		"hardbound_audit_chain_ok", "hardbound_cert_expiry_timestamp_seconds"} {
		if !used[want] {
			t.Errorf("the dashboard does not show %s", want)
		}
	}
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// ruleFiles are the rule files of the pack (not their tests).
func ruleFiles(t *testing.T) []string {
	t.Helper()
	all, err := filepath.Glob("prometheus/*.yml")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range all {
		if !strings.HasSuffix(f, "_test.yml") {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		t.Fatal("no rule file")
	}
	return out
}

func TestAlertRulesCoverTheOperationsRisksWithExportedMetrics(t *testing.T) {
	t.Parallel()
	names := exported(t)
	got := map[string]bool{}
	var groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	}
	for _, path := range ruleFiles(t) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var rf ruleFile
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		dec.KnownFields(true)
		if err := dec.Decode(&rf); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		groups = append(groups, rf.Groups...)
	}
	for _, g := range groups {
		for _, r := range g.Rules {
			got[r.Alert] = true
			checkExprs(t, "alert "+r.Alert, []string{r.Expr}, names)
			if s := r.Labels["severity"]; s != "warning" && s != "critical" {
				t.Errorf("alert %s: severity %q", r.Alert, s)
			}
			if r.Annotations["summary"] == "" {
				t.Errorf("alert %s has no summary", r.Alert)
			}
		}
	}
	var missing []string
	for _, want := range []string{
		"HardboundRejectRateSpike", "HardboundEnrollmentSpike", "HardboundDisconnectFailures",
		"HardboundAuditChainBroken", "HardboundCertificateExpiresSoon", "HardboundPostureSyncStale",
	} {
		if !got[want] {
			missing = append(missing, want)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("alerts missing: %v", missing)
	}
}

// TestAlertRulesWithPromtool has Prometheus's own tool check the rules'
// syntax and run the unit tests in prometheus/hardbound-alerts_test.yml,
// which feed each alert series that must and must not fire it.
func TestAlertRulesWithPromtool(t *testing.T) {
	t.Parallel()
	promtool := requireTool(t, "promtool")
	for _, args := range [][]string{append([]string{"check", "rules"}, ruleFiles(t)...), {"test", "rules", "prometheus/hardbound-alerts_test.yml"}} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

func TestSystemdUnitIsSandboxed(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("hardbound.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	for _, want := range []string{
		"User=hardbound", "ProtectSystem=strict", "ReadWritePaths=/var/lib/hardbound", "NoNewPrivileges=yes",
		"StateDirectory=hardbound", "ExecStart=/usr/local/bin/hardbound serve --config /etc/hardbound/hardbound.yaml",
		"PrivateTmp=yes", "CapabilityBoundingSet=\n",
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("the unit lacks %q", strings.TrimSpace(want))
		}
	}
	analyze := requireTool(t, "systemd-analyze")
	// systemd-analyze verify wants ExecStart to exist: check a copy
	// pointing at a binary that does.
	dir := t.TempDir()
	unitPath := filepath.Join(dir, "hardbound.service")
	if err := os.WriteFile(unitPath, []byte(strings.ReplaceAll(unit, "/usr/local/bin/hardbound", "/bin/true")), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(analyze, "verify", unitPath).CombinedOutput(); err != nil {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	// The exposure score systemd computes from the sandboxing options
	// (0 is fully locked down, 10 is none; --threshold is in tenths); the
	// unit scores 1.6.
	if out, err := exec.Command(analyze, "security", "--offline=true", "--threshold=20", unitPath).CombinedOutput(); err != nil {
		t.Errorf("systemd-analyze security: exposure above 2.0: %v\n%s", err, out)
	}
}
