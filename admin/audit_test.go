package admin_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"hardbound/admin"
	"hardbound/store"
	"hardbound/store/auditexport"
)

// TestAuditVerifyAndExport: with the audit chain's checkpoints wired in,
// GET verify anchors at the newest checkpoint (full=1 from seq 1), POST
// verify holds the chain against checkpoints sent in the body, and export
// streams the events; without it, POST verify and export answer 501.
func TestAuditVerifyAndExport(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := auditexport.NewSigner(priv)
	if err != nil {
		t.Fatal(err)
	}
	keys := auditexport.KeySet{}
	keys.Add(signer.Public())
	var st store.Store
	e, _ := newEnv(t, func(d *admin.Deps) {
		st = d.Store.(store.Store)
		d.Audit = auditexport.NewChain(st, keys, "hb-test")
	})
	for range 5 {
		if err := st.AppendAudit(e.ctx, &store.AuditEvent{Actor: "system", Action: "test", Subject: "x", Result: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	tail, _ := st.TailAudit(e.ctx, 1)
	head := tail[0]
	cp, err := signer.Sign(head.Seq, head.Hash)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.PutAuditCheckpoint(e.ctx, cp); err != nil {
		t.Fatal(err)
	}
	forged := *cp
	forged.Hash[0] ^= 1
	body := func(cps ...store.AuditCheckpoint) string {
		var req admin.VerifyRequest
		for _, c := range cps {
			req.Checkpoints = append(req.Checkpoints, admin.AuditCheckpointOf(c))
		}
		b, _ := json.Marshal(req)
		return string(b)
	}
	tests := []struct {
		name, method, path, body string
		code                     int
		ok                       bool
		from                     uint64
		kind                     string
	}{
		{"newest_checkpoint", "GET", "/api/v1/audit/verify", "", 200, true, head.Seq, ""},
		{"full", "GET", "/api/v1/audit/verify?full=1", "", 200, true, 1, ""},
		{"external_match", "POST", "/api/v1/audit/verify", body(*cp), 200, true, head.Seq, ""},
		{"external_forged_signature", "POST", "/api/v1/audit/verify", body(forged), 200, false, 1, auditexport.ProblemBadCheckpoint},
		{"bad_body", "POST", "/api/v1/audit/verify", `{"checkpoints":1}`, 400, false, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out := e.call(t, tt.method, tt.path, token, tt.body)
			if code != tt.code {
				t.Fatalf("%d %s", code, out)
			}
			if code != 200 {
				return
			}
			var vr admin.VerifyResult
			if err := json.Unmarshal([]byte(out), &vr); err != nil {
				t.Fatal(err)
			}
			if vr.OK != tt.ok || vr.FromSeq != tt.from || (tt.kind != "" && (len(vr.Problems) == 0 || vr.Problems[0].Kind != tt.kind)) {
				t.Fatalf("verify = %+v", vr)
			}
		})
	}
	code, out := e.call(t, "GET", "/api/v1/audit/export?from_seq=2", token, "")
	if code != 200 {
		t.Fatalf("export: %d %s", code, out)
	}
	var seqs []uint64
	cps := 0
	auditexport.ReadRecords(strings.NewReader(out), func(ev *store.AuditEvent, c *store.AuditCheckpoint) error {
		if ev != nil {
			seqs = append(seqs, ev.Seq)
		} else {
			cps++
		}
		return nil
	})
	if len(seqs) == 0 || seqs[0] != 2 || seqs[len(seqs)-1] != head.Seq || cps != 1 {
		t.Fatalf("export: seqs %v, %d checkpoints", seqs, cps)
	}
	if code, _ := e.call(t, "GET", "/api/v1/audit/export?format=csv", token, ""); code != http.StatusBadRequest {
		t.Fatalf("export csv: %d", code)
	}

	plain, _ := newEnv(t, nil)
	if code, _ := plain.call(t, "POST", "/api/v1/audit/verify", token, body(*cp)); code != http.StatusNotImplemented {
		t.Fatalf("POST verify without checkpoints: %d", code)
	}
	if code, _ := plain.call(t, "GET", "/api/v1/audit/export", token, ""); code != http.StatusNotImplemented {
		t.Fatalf("export without the chain: %d", code)
	}
}
