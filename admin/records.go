package admin

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"hardbound/store"
	"hardbound/store/auditexport"
)

func (s *Server) listDevices(w http.ResponseWriter, r *http.Request) {
	p, err := page(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	q := r.URL.Query()
	f := store.DeviceFilter{Status: store.DeviceStatus(q.Get("status")), Compliance: store.Compliance(q.Get("compliance")), Profile: q.Get("profile")}
	switch f.Status {
	case "", store.DeviceActive, store.DeviceQuarantined, store.DeviceRevoked:
	default:
		s.fail(w, r, fmt.Errorf("%w: status must be active, quarantined or revoked", errBadRequest))
		return
	}
	switch f.Compliance {
	case "", store.ComplianceCompliant, store.ComplianceNoncompliant, store.ComplianceUnknown:
	default:
		s.fail(w, r, fmt.Errorf("%w: compliance must be compliant, noncompliant or unknown", errBadRequest))
		return
	}
	items, next, err := s.deps.Store.ListDevices(r.Context(), f, p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, List[Device]{Items: each(items, deviceOf), Next: next})
}

func (s *Server) getDevice(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	d, err := s.deps.Store.GetDevice(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	certs, _, err := s.deps.Store.ListCerts(r.Context(), store.CertFilter{DeviceID: id, NoDER: true}, store.Page{Limit: 1000})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	sess, _, err := s.deps.Store.ListSessions(r.Context(), id, true, store.Page{Limit: 1000})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	dev := deviceOf(d)
	writeJSON(w, http.StatusOK, DeviceDetail{Device: &dev, Certs: each(certs, certOf),
		Sessions: each(sess, sessionOf)})
}

func (s *Server) quarantine(w http.ResponseWriter, r *http.Request) {
	d, err := s.deps.Standing.Quarantine(r.Context(), r.PathValue("id"), actorOf(r.Context()))
	s.deviceResult(w, r, d, err, "device.quarantine")
}

func (s *Server) release(w http.ResponseWriter, r *http.Request) {
	d, err := s.deps.Standing.Release(r.Context(), r.PathValue("id"), actorOf(r.Context()))
	s.deviceResult(w, r, d, err, "device.release")
}

// deviceResult answers a standing change of the device in the path.
func (s *Server) deviceResult(w http.ResponseWriter, r *http.Request, d *store.Device, err error, action string) {
	if err != nil {
		s.refuse(w, r, action, r.PathValue("id"), err)
		return
	}
	writeJSON(w, http.StatusOK, deviceOf(d))
}

func (s *Server) setPosture(w http.ResponseWriter, r *http.Request) {
	var req PostureRequest
	err := decode(r, &req, false)
	if err == nil {
		switch req.State {
		case store.ComplianceCompliant, store.ComplianceNoncompliant, store.ComplianceUnknown:
		default:
			err = fmt.Errorf("%w: state must be compliant, noncompliant or unknown", errBadRequest)
		}
	}
	if err != nil {
		s.refuse(w, r, "posture.set", r.PathValue("id"), err)
		return
	}
	d, err := s.deps.Standing.SetCompliance(r.Context(), r.PathValue("id"), req.State, "admin", actorOf(r.Context()))
	s.deviceResult(w, r, d, err, "posture.set")
}

// readRevoke reads a RevokeRequest (the body may be empty) and its reason.
func (s *Server) readRevoke(w http.ResponseWriter, r *http.Request) (int, bool) {
	var req RevokeRequest
	if err := decode(r, &req, true); err != nil {
		s.fail(w, r, err)
		return 0, false
	}
	n, err := ParseReason(req.Reason)
	if err != nil {
		s.fail(w, r, err)
		return 0, false
	}
	return n, true
}

func (s *Server) revokeDevice(w http.ResponseWriter, r *http.Request) {
	reason, ok := s.readRevoke(w, r)
	if !ok {
		return
	}
	d, certs, err := s.deps.Standing.RevokeDevice(r.Context(), r.PathValue("id"), reason, actorOf(r.Context()))
	if err != nil {
		s.refuse(w, r, "device.revoke", r.PathValue("id"), err)
		return
	}
	dev := deviceOf(d)
	writeJSON(w, http.StatusOK, DeviceDetail{Device: &dev, Certs: each(certs, certOf), Sessions: []Session{}})
}

func (s *Server) revokeCert(w http.ResponseWriter, r *http.Request) {
	reason, ok := s.readRevoke(w, r)
	if !ok {
		return
	}
	c, err := s.deps.Standing.RevokeCert(r.Context(), strings.ToLower(r.PathValue("serial")), reason, actorOf(r.Context()))
	if err != nil {
		s.refuse(w, r, "cert.revoke", r.PathValue("serial"), err)
		return
	}
	writeJSON(w, http.StatusOK, certOf(c))
}

func (s *Server) listCerts(w http.ResponseWriter, r *http.Request) {
	p, err := page(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	q := r.URL.Query()
	f := store.CertFilter{DeviceID: q.Get("device"), RevokedOnly: q.Get("revoked") == "true", NoDER: true}
	items, next, err := s.deps.Store.ListCerts(r.Context(), f, p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, List[Cert]{Items: each(items, certOf), Next: next})
}

func (s *Server) getCert(w http.ResponseWriter, r *http.Request) {
	c, err := s.deps.Store.GetCertBySerial(r.Context(), strings.ToLower(r.PathValue("serial")))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, CertDetail{Cert: certOf(c), DER: c.DER})
}

func (s *Server) getAttestation(w http.ResponseWriter, r *http.Request) {
	a, err := s.deps.Store.GetAttestation(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, attestationOf(a))
}

func (s *Server) listSessions(w http.ResponseWriter, r *http.Request) {
	p, err := page(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	q := r.URL.Query()
	items, next, err := s.deps.Store.ListSessions(r.Context(), q.Get("device"), q.Get("all") != "true", p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, List[Session]{Items: each(items, sessionOf), Next: next})
}

func (s *Server) tailAudit(w http.ResponseWriter, r *http.Request) {
	n := 50
	if v := r.URL.Query().Get("n"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 || n > 10000 {
			s.fail(w, r, fmt.Errorf("%w: n must be 1..10000", errBadRequest))
			return
		}
	}
	evs, err := s.deps.Store.TailAudit(r.Context(), n)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, List[AuditEvent]{Items: each(evs, auditEventOf)})
}

// verifyAudit is GET (the server's checkpoints; ?full=1 from seq 1) and
// POST (the checkpoints in the body) /api/v1/audit/verify.
func (s *Server) verifyAudit(w http.ResponseWriter, r *http.Request) {
	full := r.URL.Query().Get("full") == "1"
	var external []store.AuditCheckpoint
	if r.Method == http.MethodPost {
		var req VerifyRequest
		if err := decode(r, &req, false); err != nil {
			s.fail(w, r, err)
			return
		}
		external = make([]store.AuditCheckpoint, 0, len(req.Checkpoints))
		for _, c := range req.Checkpoints {
			external = append(external, c.record())
		}
	}
	if s.deps.Audit == nil {
		if external != nil {
			writeErr(w, http.StatusNotImplemented, "audit checkpoints are not enabled")
			return
		}
		res, err := s.deps.Store.VerifyAudit(r.Context())
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, verifyResultOf(res))
		return
	}
	rep, err := s.deps.Audit.Verify(r.Context(), full, external)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, reportOf(rep))
}

// exportAudit is GET /api/v1/audit/export?from_seq=N|since=RFC3339&format=jsonl|rfc5424:
// the chain streamed, with its checkpoints, for an investigation.
func (s *Server) exportAudit(w http.ResponseWriter, r *http.Request) {
	if s.deps.Audit == nil {
		writeErr(w, http.StatusNotImplemented, "audit export is not enabled")
		return
	}
	q := r.URL.Query()
	o := auditexport.ExportOptions{Format: q.Get("format")}
	if v := q.Get("from_seq"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			s.fail(w, r, fmt.Errorf("%w: from_seq must be a number", errBadRequest))
			return
		}
		o.FromSeq = n
	}
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			s.fail(w, r, fmt.Errorf("%w: since must be an RFC 3339 time", errBadRequest))
			return
		}
		o.Since = t
	}
	switch o.Format {
	case "", auditexport.FormatJSONL:
		w.Header().Set("Content-Type", "application/x-ndjson")
	case auditexport.FormatRFC5424:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	default:
		s.fail(w, r, fmt.Errorf("%w: format must be jsonl or rfc5424", errBadRequest))
		return
	}
	if _, err := s.deps.Audit.Export(r.Context(), w, o); err != nil {
		// The status is sent; the client sees a cut stream (no final
		// newline or a short count) and the log says why.
		s.log.ErrorContext(r.Context(), "audit export failed", "err", err)
	}
}
