package ui

import (
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"hardbound/admin"
	"hardbound/admin/metrics"
	"hardbound/store"
	"hardbound/store/policy"
)

// The metric families the overview charts (admin/metrics names).
const (
	famAuth    = "hardbound_radius_auth_duration_seconds_count"
	famRejects = "hardbound_radius_rejects_total"
	famEnroll  = "hardbound_enroll_enrollments_total"
	famDynauth = "hardbound_dynauth_answers_total"
	famConvs   = "hardbound_radius_conversations"
)

// Families are what the console needs its History to keep.
var Families = []string{famAuth, famRejects, famEnroll, famDynauth, famConvs}

// countCap bounds how far the overview counts live sessions.
const countCap = 10000

type count struct {
	Label string
	N     float64
}

type overviewData struct {
	Metrics       bool
	Interval      time.Duration
	AuthRate      float64
	Accepts       float64
	Rejects       float64
	Conversations float64
	Charts        []chart
	RejectReasons []count
	Enrollments   []count
	CoA           []count
	LiveSessions  int
	LiveMore      bool
	Audit         *verified
	CA            *caInfo
}

type caInfo struct {
	Subject  string
	NotAfter time.Time
	DaysLeft int
}

func counts(m map[string]float64) []count {
	var out []count
	for _, k := range metrics.Groups(m) {
		if m[k] > 0 {
			out = append(out, count{Label: dash(k), N: m[k]})
		}
	}
	return out
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request, s *session) {
	d := overviewData{Audit: c.lastVerified()}
	if m := c.deps.Metrics; m != nil {
		d.Metrics, d.Interval = true, m.Interval()
		now := c.now()
		auth := m.Rates(famAuth, nil, "result")
		if pts := sumSeries(auth); len(pts) > 0 {
			d.AuthRate = pts[len(pts)-1].V
		}
		tot := m.Totals(famAuth, nil, "result")
		d.Accepts, d.Rejects = tot["accept"], tot["reject"]
		if v := m.Values(famConvs, nil, "")[""]; len(v) > 0 {
			d.Conversations = v[len(v)-1].V
		}
		d.RejectReasons = counts(m.Totals(famRejects, nil, "reason"))
		d.Enrollments = counts(joinTotals(m, famEnroll, "protocol", "result"))
		d.CoA = counts(joinTotals(m, famDynauth, "code", "result"))
		d.Charts = []chart{
			newChart("Authentications per second", "by result", auth, now),
			newChart("Rejects per second", "by reason", m.Rates(famRejects, nil, "reason"), now),
			newChart("Enrollments per second", "by result", m.Rates(famEnroll, nil, "result"), now),
			newChart("Disconnect/CoA answers per second", "by result", m.Rates(famDynauth, nil, "result"), now),
		}
	}
	n, more, err := c.countLive(r)
	if err != nil {
		c.problem(w, r, s, http.StatusInternalServerError, "Could not count sessions: "+err.Error())
		return
	}
	d.LiveSessions, d.LiveMore = n, more
	if ca := c.deps.CA; ca != nil {
		d.CA = &caInfo{Subject: ca.Subject.String(), NotAfter: ca.NotAfter, DaysLeft: int(ca.NotAfter.Sub(c.now()).Hours() / 24)}
	}
	c.render(w, r, http.StatusOK, "overview", page{Title: "Overview", Nav: "overview", S: s, Data: d, Refresh: 10})
}

// joinTotals totals a family by two labels joined as "a / b".
func joinTotals(m Metrics, fam, a, b string) map[string]float64 {
	out := map[string]float64{}
	for av := range m.Totals(fam, nil, a) {
		for bv, n := range m.Totals(fam, map[string]string{a: av}, b) {
			out[av+" / "+bv] += n
		}
	}
	return out
}

func sumSeries(m map[string][]metrics.Point) []metrics.Point {
	var out []metrics.Point
	for _, pts := range m {
		if out == nil {
			out = append([]metrics.Point(nil), pts...)
			continue
		}
		for i := range out {
			if i < len(pts) {
				out[i].V += pts[i].V
			}
		}
	}
	return out
}

func (c *Console) countLive(r *http.Request) (int, bool, error) {
	n, p := 0, store.Page{Limit: 1000}
	for n < countCap {
		items, next, err := c.deps.Store.ListSessions(r.Context(), "", true, p)
		if err != nil {
			return 0, false, err
		}
		n += len(items)
		if next == "" {
			return n, false, nil
		}
		p.After = next
	}
	return n, true, nil
}

// Verified tells the console of a verification of the audit chain made
// elsewhere (the server's periodic one), for the overview.
func (c *Console) Verified(r store.VerifyResult, at time.Time) {
	c.verifyMu.Lock()
	defer c.verifyMu.Unlock()
	if c.lastVerify == nil || !at.Before(c.lastVerify.At) {
		c.lastVerify = &verified{At: at, Result: r}
	}
}

func (c *Console) lastVerified() *verified {
	c.verifyMu.Lock()
	defer c.verifyMu.Unlock()
	return c.lastVerify
}

// pageSize is the rows of a listing page.
const pageSize = 50

type devicesData struct {
	Q, Status, Compliance, Platform, Profile string
	Items                                    []*store.Device
	Next                                     string
	After                                    string
	Scanned                                  int
	Statuses, Compliances, Platforms         []string
}

// platformScan bounds how many devices a platform filter reads for one
// page (the store filters status, compliance and profile itself).
const platformScan = 5000

func (c *Console) devices(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	d := devicesData{Q: strings.TrimSpace(q.Get("q")), Status: q.Get("status"), Compliance: q.Get("compliance"),
		Platform: q.Get("platform"), Profile: q.Get("profile"), After: q.Get("after"),
		Statuses:    []string{string(store.DeviceActive), string(store.DeviceQuarantined), string(store.DeviceRevoked)},
		Compliances: []string{string(store.ComplianceCompliant), string(store.ComplianceNoncompliant), string(store.ComplianceUnknown)},
		Platforms:   policy.Platforms()}
	if d.Q != "" {
		// A search is an exact device id or MDM identity (serial, UDID,
		// Intune id): the store indexes those, not substrings.
		dev, err := c.findDevice(r, d.Q)
		if err == nil {
			http.Redirect(w, r, "/ui/devices/"+url.PathEscape(dev.ID), http.StatusSeeOther)
			return
		}
		if !errors.Is(err, store.ErrNotFound) {
			c.problem(w, r, s, http.StatusInternalServerError, err.Error())
			return
		}
		c.render(w, r, http.StatusNotFound, "devices", page{Title: "Devices", Nav: "devices", S: s, Data: d,
			Error: fmt.Sprintf("No device has the id, serial, UDID or Intune id %q.", d.Q)})
		return
	}
	if !slices.Contains(append(d.Statuses, ""), d.Status) || !slices.Contains(append(d.Compliances, ""), d.Compliance) {
		c.problem(w, r, s, http.StatusBadRequest, "Unknown status or compliance filter.")
		return
	}
	f := store.DeviceFilter{Status: store.DeviceStatus(d.Status), Compliance: store.Compliance(d.Compliance), Profile: d.Profile}
	p := store.Page{After: d.After, Limit: pageSize}
	for {
		items, next, err := c.deps.Store.ListDevices(r.Context(), f, p)
		if err != nil {
			c.problem(w, r, s, http.StatusInternalServerError, err.Error())
			return
		}
		d.Scanned += len(items)
		for _, it := range items {
			if d.Platform == "" || it.Platform == d.Platform {
				d.Items = append(d.Items, it)
			}
		}
		d.Next = next
		if next == "" || len(d.Items) >= pageSize || d.Scanned >= platformScan || d.Platform == "" {
			break
		}
		p.After = next
	}
	c.render(w, r, http.StatusOK, "devices", page{Title: "Devices", Nav: "devices", S: s, Data: d})
}

func (c *Console) findDevice(r *http.Request, q string) (*store.Device, error) {
	if d, err := c.deps.Store.GetDevice(r.Context(), q); err == nil || !errors.Is(err, store.ErrNotFound) {
		return d, err
	}
	for _, kind := range []string{"serial", "udid", "intune_id"} {
		if d, err := c.deps.Store.FindDeviceByAlias(r.Context(), kind, q); err == nil || !errors.Is(err, store.ErrNotFound) {
			return d, err
		}
	}
	return nil, store.ErrNotFound
}

type certRow struct {
	C   *store.Cert
	Att *store.Attestation
}

type deviceData struct {
	D        *store.Device
	Certs    []certRow
	Sessions []*store.Session
	Auths    []*store.AuditEvent
	Changes  []*store.AuditEvent
	Window   int
	Done     string
}

// historyWindow is how many of the latest audit events the device page
// searches for the device's authentications and standing changes.
const historyWindow = 5000

func (c *Console) device(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	dev, err := c.deps.Store.GetDevice(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		c.problem(w, r, s, http.StatusNotFound, fmt.Sprintf("No device %q.", id))
		return
	}
	if err != nil {
		c.problem(w, r, s, http.StatusInternalServerError, err.Error())
		return
	}
	d := deviceData{D: dev, Window: historyWindow, Done: r.URL.Query().Get("done")}
	certs, _, err := c.deps.Store.ListCerts(r.Context(), store.CertFilter{DeviceID: id, NoDER: true}, store.Page{Limit: 1000})
	if err != nil {
		c.problem(w, r, s, http.StatusInternalServerError, err.Error())
		return
	}
	for _, ct := range certs {
		row := certRow{C: ct}
		if ct.AttestationID != "" {
			if a, err := c.deps.Store.GetAttestation(r.Context(), ct.AttestationID); err == nil {
				row.Att = a
			}
		}
		d.Certs = append(d.Certs, row)
	}
	if d.Sessions, _, err = c.deps.Store.ListSessions(r.Context(), id, false, store.Page{Limit: 50}); err != nil {
		c.problem(w, r, s, http.StatusInternalServerError, err.Error())
		return
	}
	evs, err := c.deps.Store.TailAudit(r.Context(), historyWindow)
	if err != nil {
		c.problem(w, r, s, http.StatusInternalServerError, err.Error())
		return
	}
	for i := len(evs) - 1; i >= 0; i-- {
		ev := evs[i]
		if ev.Subject != id {
			continue
		}
		if ev.Action == "radius.auth" {
			if len(d.Auths) < 15 {
				d.Auths = append(d.Auths, ev)
			}
		} else if len(d.Changes) < 30 {
			d.Changes = append(d.Changes, ev)
		}
	}
	c.render(w, r, http.StatusOK, "device", page{Title: "Device " + id, Nav: "devices", S: s, Data: d})
}

var deviceActions = map[string]string{"quarantine": "Quarantine", "release": "Release", "revoke": "Revoke"}

type confirmData struct {
	Kind     string // device | cert
	ID       string
	Action   string
	Verb     string
	D        *store.Device
	C        *store.Cert
	Reasons  []admin.CRLReason
	Note     string
	CRL      string
	LiveHint int
}

func (c *Console) deviceConfirm(w http.ResponseWriter, r *http.Request, s *session) {
	c.renderDeviceConfirm(w, r, s, http.StatusOK, "", "", "")
}

func (c *Console) renderDeviceConfirm(w http.ResponseWriter, r *http.Request, s *session, code int, msg, note, crl string) {
	id, action := r.PathValue("id"), r.PathValue("action")
	verb, ok := deviceActions[action]
	if !ok {
		c.notFound(w, r)
		return
	}
	dev, err := c.deps.Store.GetDevice(r.Context(), id)
	if err != nil {
		c.problem(w, r, s, http.StatusNotFound, fmt.Sprintf("No device %q.", id))
		return
	}
	live, _, _ := c.deps.Store.ListSessions(r.Context(), id, true, store.Page{Limit: 1000})
	d := confirmData{Kind: "device", ID: id, Action: action, Verb: verb, D: dev, Note: note, CRL: crl, LiveHint: len(live)}
	if action == "revoke" {
		d.Reasons = admin.CRLReasons()
	}
	c.render(w, r, code, "confirm", page{Title: verb + " " + id, Nav: "devices", S: s, Data: d, Error: msg})
}

// note reads the operator's reason: required, one line, at most 200
// characters (it goes into the audit chain).
func note(r *http.Request) (string, error) {
	n := strings.TrimSpace(r.PostFormValue("note"))
	switch {
	case n == "":
		return "", errors.New("say why: the reason goes into the audit chain")
	case len(n) > 200 || strings.ContainsAny(n, "\r\n"):
		return "", errors.New("the reason must be one line of at most 200 characters")
	}
	return n, nil
}

func (c *Console) deviceAction(w http.ResponseWriter, r *http.Request, s *session) {
	id, action := r.PathValue("id"), r.PathValue("action")
	if _, ok := deviceActions[action]; !ok {
		c.notFound(w, r)
		return
	}
	n, err := note(r)
	crl := r.PostFormValue("crl_reason")
	if err != nil {
		c.renderDeviceConfirm(w, r, s, http.StatusBadRequest, err.Error(), "", crl)
		return
	}
	if r.PostFormValue("confirm") != "yes" {
		c.renderDeviceConfirm(w, r, s, http.StatusBadRequest, "Tick the confirmation box.", n, crl)
		return
	}
	detail := ""
	switch action {
	case "quarantine":
		_, err = c.deps.Standing.Quarantine(r.Context(), id, s.Actor())
	case "release":
		_, err = c.deps.Standing.Release(r.Context(), id, s.Actor())
	case "revoke":
		var code int
		if code, err = admin.ParseReason(crl); err == nil {
			detail = " crl_reason=" + admin.CRLReasonName(code)
			_, _, err = c.deps.Standing.RevokeDevice(r.Context(), id, code, s.Actor())
		}
	}
	if err != nil {
		code := http.StatusConflict
		if errors.Is(err, store.ErrNotFound) {
			code = http.StatusNotFound
		}
		c.renderDeviceConfirm(w, r, s, code, "The change was refused: "+err.Error(), n, crl)
		return
	}
	// Standing audited the change itself; this event carries why.
	c.record(r.Context(), &store.AuditEvent{Actor: s.Actor(), Action: "console." + action, Subject: id, Result: "ok",
		Reason: n + detail, Source: r.RemoteAddr})
	http.Redirect(w, r, "/ui/devices/"+url.PathEscape(id)+"?done="+action, http.StatusSeeOther)
}

type certsData struct {
	Device  string
	Revoked bool
	Items   []*store.Cert
	After   string
	Next    string
	Done    string
}

func (c *Console) certs(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	d := certsData{Device: q.Get("device"), Revoked: q.Get("revoked") == "true", After: q.Get("after"), Done: q.Get("done")}
	var err error
	d.Items, d.Next, err = c.deps.Store.ListCerts(r.Context(), store.CertFilter{DeviceID: d.Device, RevokedOnly: d.Revoked, NoDER: true},
		store.Page{After: d.After, Limit: pageSize})
	if err != nil {
		c.problem(w, r, s, http.StatusInternalServerError, err.Error())
		return
	}
	c.render(w, r, http.StatusOK, "certs", page{Title: "Certificates", Nav: "certs", S: s, Data: d})
}

func (c *Console) certConfirm(w http.ResponseWriter, r *http.Request, s *session) {
	c.renderCertConfirm(w, r, s, http.StatusOK, "", "", "")
}

func (c *Console) renderCertConfirm(w http.ResponseWriter, r *http.Request, s *session, code int, msg, n, crl string) {
	serial := strings.ToLower(r.PathValue("serial"))
	ct, err := c.deps.Store.GetCertBySerial(r.Context(), serial)
	if err != nil {
		c.problem(w, r, s, http.StatusNotFound, fmt.Sprintf("No certificate with serial %s.", serial))
		return
	}
	ct.DER = nil
	d := confirmData{Kind: "cert", ID: serial, Action: "revoke", Verb: "Revoke", C: ct, Reasons: admin.CRLReasons(), Note: n, CRL: crl}
	c.render(w, r, code, "confirm", page{Title: "Revoke certificate " + serial, Nav: "certs", S: s, Data: d, Error: msg})
}

func (c *Console) certRevoke(w http.ResponseWriter, r *http.Request, s *session) {
	serial := strings.ToLower(r.PathValue("serial"))
	crl := r.PostFormValue("crl_reason")
	n, err := note(r)
	if err != nil {
		c.renderCertConfirm(w, r, s, http.StatusBadRequest, err.Error(), "", crl)
		return
	}
	if r.PostFormValue("confirm") != "yes" {
		c.renderCertConfirm(w, r, s, http.StatusBadRequest, "Tick the confirmation box.", n, crl)
		return
	}
	code, err := admin.ParseReason(crl)
	if err != nil {
		c.renderCertConfirm(w, r, s, http.StatusBadRequest, err.Error(), n, crl)
		return
	}
	if _, err := c.deps.Standing.RevokeCert(r.Context(), serial, code, s.Actor()); err != nil {
		c.renderCertConfirm(w, r, s, http.StatusConflict, "The revocation was refused: "+err.Error(), n, crl)
		return
	}
	c.record(r.Context(), &store.AuditEvent{Actor: s.Actor(), Action: "console.cert_revoke", Subject: serial, Result: "ok",
		Reason: n + " crl_reason=" + admin.CRLReasonName(code), Source: r.RemoteAddr})
	http.Redirect(w, r, "/ui/certs?done="+url.QueryEscape(serial), http.StatusSeeOther)
}

type sessionsData struct {
	Device string
	All    bool
	Items  []*store.Session
	After  string
	Next   string
}

func (c *Console) sessionsPage(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	d := sessionsData{Device: q.Get("device"), All: q.Get("all") == "true", After: q.Get("after")}
	var err error
	d.Items, d.Next, err = c.deps.Store.ListSessions(r.Context(), d.Device, !d.All, store.Page{After: d.After, Limit: pageSize})
	if err != nil {
		c.problem(w, r, s, http.StatusInternalServerError, err.Error())
		return
	}
	c.render(w, r, http.StatusOK, "sessions", page{Title: "Sessions", Nav: "sessions", S: s, Data: d, Refresh: 15})
}

type auditData struct {
	Actor, Action, Subject, Result string
	N                              int
	Items                          []*store.AuditEvent
	Verified                       *verified
	JustVerified                   bool
}

func (c *Console) auditData(r *http.Request) (auditData, error) {
	q := r.URL.Query()
	d := auditData{Actor: q.Get("actor"), Action: q.Get("action"), Subject: q.Get("subject"), Result: q.Get("result"), N: 100}
	if v := q.Get("n"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10000 {
			return d, errors.New("n must be 1..10000")
		}
		d.N = n
	}
	evs, err := c.deps.Store.TailAudit(r.Context(), d.N)
	if err != nil {
		return d, err
	}
	for i := len(evs) - 1; i >= 0; i-- {
		ev := evs[i]
		if (d.Actor == "" || strings.Contains(ev.Actor, d.Actor)) && (d.Action == "" || strings.Contains(ev.Action, d.Action)) &&
			(d.Subject == "" || strings.Contains(ev.Subject, d.Subject)) && (d.Result == "" || ev.Result == d.Result) {
			d.Items = append(d.Items, ev)
		}
	}
	d.Verified = c.lastVerified()
	return d, nil
}

func (c *Console) audit(w http.ResponseWriter, r *http.Request, s *session) {
	d, err := c.auditData(r)
	if err != nil {
		c.problem(w, r, s, http.StatusBadRequest, err.Error())
		return
	}
	c.render(w, r, http.StatusOK, "audit", page{Title: "Audit", Nav: "audit", S: s, Data: d})
}

// verify recomputes the whole chain (a read, but a POST: it costs a scan
// of every event) and keeps the result for the overview.
func (c *Console) verify(w http.ResponseWriter, r *http.Request, s *session) {
	res, err := c.deps.Store.VerifyAudit(r.Context())
	if err != nil {
		c.problem(w, r, s, http.StatusInternalServerError, err.Error())
		return
	}
	at := c.now()
	c.Verified(res, at)
	if c.deps.OnVerify != nil {
		c.deps.OnVerify(res, at)
	}
	d, err := c.auditData(r)
	if err != nil {
		c.problem(w, r, s, http.StatusBadRequest, err.Error())
		return
	}
	d.JustVerified = true
	c.render(w, r, http.StatusOK, "audit", page{Title: "Audit", Nav: "audit", S: s, Data: d})
}

func (c *Console) nas(w http.ResponseWriter, r *http.Request, s *session) {
	c.render(w, r, http.StatusOK, "nas", page{Title: "NAS clients", Nav: "nas", S: s, Data: c.deps.Clients})
}

// Formatting helpers for the templates.

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "–"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "in " + (-d).Round(time.Second).String()
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

func dash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

func short(s string) string {
	if len(s) > 16 {
		return s[:16] + "…"
	}
	return s
}

func reasonName(code int) string {
	if n := admin.CRLReasonName(code); n != "" {
		return fmt.Sprintf("%s (%d)", n, code)
	}
	return strconv.Itoa(code)
}

func fmtNum(v float64) string {
	if v == float64(int64(v)) {
		return strconv.FormatInt(int64(v), 10)
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

func fmtRate(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v < 10:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

// query builds "?k=v&..." from pairs, leaving out empty values.
func query(kv ...string) template.URL {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			q.Set(kv[i], kv[i+1])
		}
	}
	if len(q) == 0 {
		return ""
	}
	return template.URL("?" + q.Encode())
}
