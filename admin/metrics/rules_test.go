package metrics

import (
	"io"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// TestAuditAlertRules: the shipped alert rules parse and name only
// metrics this registry exposes.
func TestAuditAlertRules(t *testing.T) {
	b, err := os.ReadFile("../../deploy/prometheus/hardbound-audit.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	r := New()
	r.AuditExport().ExportLag("s", 1)
	r.AuditExport().ExportDelivered("s", 1, time.Now())
	rec := httptest.NewRecorder()
	r.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	exposed, _ := io.ReadAll(rec.Body)
	names := regexp.MustCompile(`hardbound_[a-z_]+`)
	n := 0
	for _, g := range f.Groups {
		for _, rule := range g.Rules {
			if rule.Alert == "" || rule.Expr == "" {
				t.Errorf("rule %+v lacks alert or expr", rule)
			}
			for _, m := range names.FindAllString(rule.Expr, -1) {
				n++
				if !strings.Contains(string(exposed), "\n"+m+"{") {
					t.Errorf("alert %s uses %s, which is not exposed", rule.Alert, m)
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("no hardbound metric in the rules")
	}
}
