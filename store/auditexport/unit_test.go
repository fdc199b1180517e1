package auditexport

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"hardbound/store"
	"hardbound/store/auditexport/rsyslogtest"
	"hardbound/store/badger/badgertest"
	"hardbound/store/config"
)

func TestFileConfigValidate(t *testing.T) {
	ok := SinkConfig{Name: "siem", Type: "syslog", Address: "siem.example:6514"}
	fac := 99
	tests := []struct {
		name  string
		sinks []SinkConfig
		field string // "" : valid
	}{
		{"none", nil, ""},
		{"syslog_tls_default", []SinkConfig{ok}, ""},
		{"syslog_udp", []SinkConfig{{Name: "u", Type: "syslog", Transport: "udp", Address: "127.0.0.1:514"}}, ""},
		{"http_token", []SinkConfig{{Name: "h", Type: "http", URL: "https://c.example/in", TokenFile: "/t"}}, ""},
		{"bad_name", []SinkConfig{{Name: "a b", Type: "syslog", Address: "h:1"}}, "audit.sinks[0].name"},
		{"duplicate_name", []SinkConfig{ok, ok}, "audit.sinks[1].name"},
		{"bad_type", []SinkConfig{{Name: "x", Type: "kafka"}}, "audit.sinks[0].type"},
		{"bad_transport", []SinkConfig{{Name: "x", Type: "syslog", Transport: "relp", Address: "h:1"}}, "audit.sinks[0].transport"},
		{"no_address", []SinkConfig{{Name: "x", Type: "syslog"}}, "audit.sinks[0].address"},
		{"address_without_port", []SinkConfig{{Name: "x", Type: "syslog", Address: "h"}}, "audit.sinks[0].address"},
		{"tls_files_on_tcp", []SinkConfig{{Name: "x", Type: "syslog", Transport: "tcp", Address: "h:1", CAFile: "/ca"}}, "audit.sinks[0].ca_file"},
		{"http_plain", []SinkConfig{{Name: "x", Type: "http", URL: "http://c.example/in"}}, "audit.sinks[0].url"},
		{"http_no_url", []SinkConfig{{Name: "x", Type: "http"}}, "audit.sinks[0].url"},
		{"cert_without_key", []SinkConfig{{Name: "x", Type: "syslog", Address: "h:1", CertFile: "/c"}}, "audit.sinks[0].cert_file"},
		{"bad_facility", []SinkConfig{{Name: "x", Type: "syslog", Address: "h:1", Facility: &fac}}, "audit.sinks[0].facility"},
		{"batch_too_big", []SinkConfig{{Name: "x", Type: "syslog", Address: "h:1", BatchSize: 1 << 20}}, "audit.sinks[0].batch_size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultFileConfig()
			c.Sinks = tt.sinks
			err := c.Validate("audit")
			var fe *config.FieldError
			switch {
			case tt.field == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.field != "" && (!errors.As(err, &fe) || fe.Field != tt.field):
				t.Fatalf("Validate = %v, want an error on %s", err, tt.field)
			}
		})
	}
}

// rfc5424 is the shape of the messages (RFC 5424 §6): PRI, version 1,
// timestamp, hostname, app, procid, msgid, one SD element, MSG.
var rfc5424 = regexp.MustCompile(`^<(\d{1,3})>1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z) (\S{1,255}) hardbound (\d+) (audit|checkpoint) \[hardbound@32473 seq="(\d+)" hash="([0-9a-f]{64})"\] (\{.*\})$`)

func TestSyslogMessage(t *testing.T) {
	ev := &store.AuditEvent{V: 1, Seq: 42, Time: time.Date(2026, 12, 2, 10, 0, 0, 123456789, time.UTC), Actor: "nas:ap1",
		Action: "radius.auth", Subject: "dev \"x\" ]", Result: "reject", Reason: "revoked"}
	ev.Hash = ev.ComputeHash()
	cp, err := testSigner(t).Sign(42, ev.Hash)
	if err != nil {
		t.Fatal(err)
	}
	f := newSyslogFormat(13, "host with space\n", 77)
	tests := []struct {
		name    string
		it      item
		pri     string
		msgid   string
		wantRec string
	}{
		{"reject_event_is_notice", item{ev: ev}, strconv.Itoa(13*8 + 5), "audit", TypeEvent},
		{"checkpoint", item{cp: cp}, strconv.Itoa(13*8 + 6), "checkpoint", TypeCheckpoint},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := f.appendMessage(nil, tt.it)
			if err != nil {
				t.Fatal(err)
			}
			m := rfc5424.FindSubmatch(b)
			if m == nil {
				t.Fatalf("not RFC 5424: %s", b)
			}
			if string(m[1]) != tt.pri || string(m[3]) != "host_with_space_" || string(m[4]) != "77" || string(m[5]) != tt.msgid || string(m[6]) != "42" || string(m[7]) != ev.Hash.String() {
				t.Fatalf("header fields %q", m[1:8])
			}
			var got []string
			err = ReadRecords(bytes.NewReader(append(b, '\n')), func(e *store.AuditEvent, c *store.AuditCheckpoint) error {
				if e != nil {
					got = append(got, TypeEvent)
					if e.ComputeHash() != ev.Hash || e.Subject != ev.Subject {
						t.Errorf("event does not survive the message: %+v", e)
					}
				} else {
					got = append(got, TypeCheckpoint)
					if c.Seq != 42 || !bytes.Equal(c.Sig, cp.Sig) {
						t.Errorf("checkpoint does not survive the message: %+v", c)
					}
				}
				return nil
			})
			if err != nil || len(got) != 1 || got[0] != tt.wantRec {
				t.Fatalf("ReadRecords: %v, %v", got, err)
			}
		})
	}
}

func TestCheckpointSignatures(t *testing.T) {
	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecSigner, err := NewSigner(p256)
	if err != nil {
		t.Fatal(err)
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if _, err := NewSigner(p384); err == nil {
		t.Fatal("a P-384 key was accepted")
	}
	other := testSigner(t)
	for _, s := range []*Signer{testSigner(t), ecSigner} {
		ks := KeySet{}
		if err := ks.Add(s.Public()); err != nil {
			t.Fatal(err)
		}
		cp, err := s.Sign(7, store.Hash{1})
		if err != nil {
			t.Fatal(err)
		}
		if err := ks.Verify(cp); err != nil {
			t.Fatalf("%s: %v", s.alg, err)
		}
		tamper := []struct {
			name string
			edit func(c *store.AuditCheckpoint)
			want error
		}{
			{"seq", func(c *store.AuditCheckpoint) { c.Seq++ }, ErrBadSignature},
			{"hash", func(c *store.AuditCheckpoint) { c.Hash[0] ^= 1 }, ErrBadSignature},
			{"time", func(c *store.AuditCheckpoint) { c.Time = c.Time.Add(time.Microsecond) }, ErrBadSignature},
			{"alg", func(c *store.AuditCheckpoint) { c.Alg = AlgEd25519 + "x" }, ErrBadSignature},
			{"sig", func(c *store.AuditCheckpoint) { c.Sig[len(c.Sig)-1] ^= 1 }, ErrBadSignature},
			{"key", func(c *store.AuditCheckpoint) { c.KeyID = other.KeyID() }, ErrUnknownKey},
		}
		for _, tt := range tamper {
			c := *cp
			c.Sig = bytes.Clone(cp.Sig)
			tt.edit(&c)
			if err := ks.Verify(&c); !errors.Is(err, tt.want) {
				t.Errorf("%s: tampered %s: %v, want %v", s.alg, tt.name, err, tt.want)
			}
		}
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit", "checkpoint.key")
	k1, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v", fi.Mode(), err)
	}
	k2, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	id1, _ := KeyID(k1.Public())
	id2, _ := KeyID(k2.Public())
	if id1 != id2 {
		t.Fatal("the key changed on reload")
	}
	pub, err := LoadPublicKey(path)
	if err != nil {
		t.Fatal(err)
	}
	pemPub, err := PublicKeyPEM(pub)
	if err != nil {
		t.Fatal(err)
	}
	pubFile := filepath.Join(t.TempDir(), "old.pub")
	os.WriteFile(pubFile, pemPub, 0o644)
	if p, err := LoadPublicKey(pubFile); err != nil {
		t.Fatal(err)
	} else if id, _ := KeyID(p); id != id1 {
		t.Fatal("public key file names another key")
	}
	os.Chmod(path, 0o644)
	if _, err := LoadOrCreateKey(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a 0644 key was loaded: %v", err)
	}
}

func TestReadRecords(t *testing.T) {
	in := strings.Join([]string{
		`audit {"type":"audit_event","seq":3,"hash":"` + strings.Repeat("ab", 32) + `"}`,
		`no json here`,
		`{"type":"something_else","seq":9}`,
		`{"type":"audit_checkpoint","seq":3,"key_id":"k","sig":"AQI="}`,
		`{broken`,
		`Dec  2 10:00:00 host hardbound[1]: {"type":"audit_event","seq":4}`,
	}, "\n")
	var got []string
	err := ReadRecords(strings.NewReader(in), func(e *store.AuditEvent, c *store.AuditCheckpoint) error {
		if e != nil {
			got = append(got, "e"+strconv.FormatUint(e.Seq, 10))
		} else {
			got = append(got, "c"+strconv.FormatUint(c.Seq, 10))
		}
		return nil
	})
	if err != nil || strings.Join(got, ",") != "e3,c3,e4" {
		t.Fatalf("ReadRecords = %v, %v", got, err)
	}
	bad := `{"type":"audit_event","seq":"x"}`
	if err := ReadRecords(strings.NewReader(bad), func(*store.AuditEvent, *store.AuditCheckpoint) error { return nil }); err == nil {
		t.Fatal("a malformed event was accepted")
	}
	long := strings.Repeat("x", MaxLine+1)
	if err := ReadRecords(strings.NewReader(long), func(*store.AuditEvent, *store.AuditCheckpoint) error { return nil }); !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("long line: %v", err)
	}
}

func FuzzReadRecords(f *testing.F) {
	f.Add([]byte(`<110>1 - h hardbound 1 audit [hardbound@32473 seq="1" hash="-"] {"type":"audit_event","seq":1}` + "\n"))
	f.Add([]byte(`{"type":"audit_checkpoint","seq":3,"hash":"` + strings.Repeat("0f", 32) + `","sig":"AQI="}`))
	f.Add([]byte("{\n{\"type\":1}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		n := 0
		_ = ReadRecords(bytes.NewReader(b), func(e *store.AuditEvent, c *store.AuditCheckpoint) error {
			if (e == nil) == (c == nil) {
				t.Fatal("exactly one of event and checkpoint must be set")
			}
			n++
			return nil
		})
		if n > bytes.Count(b, []byte("\n"))+1 {
			t.Fatalf("%d records from %d lines", n, bytes.Count(b, []byte("\n"))+1)
		}
	})
}

// TestRsyslogUDP: the UDP sink (RFC 5426) reaches rsyslog's imudp; UDP
// has no acknowledgement, so on loopback without loss every event
// arrives once.
func TestRsyslogUDP(t *testing.T) {
	rs := rsyslogtest.Start(t, rsyslogtest.NewPKI(t, t.TempDir()))
	st := badgertest.Memory(t)
	if err := appendEvents(t.Context(), st, 200); err != nil {
		t.Fatal(err)
	}
	m := newLagMetrics()
	exp, err := New(st, FileConfig{Sinks: []SinkConfig{{Name: "udp", Type: "syslog", Transport: "udp",
		Address: "127.0.0.1:" + strconv.Itoa(rs.UDPPort), BatchSize: 20}}}, Options{Metrics: m, Poll: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { exp.Run(runCtx) })
	waitFor(t, 20*time.Second, func() bool { return len(readReceived(t, rs.UDPFile()).count) == 200 },
		func() string {
			return "rsyslog got " + strconv.Itoa(len(readReceived(t, rs.UDPFile()).count)) + " of 200 over UDP"
		})
	stop()
	wg.Wait()
	if lag, _, _ := m.get("udp"); lag != 0 {
		t.Fatalf("lag %d", lag)
	}
}
