package radius

import (
	"crypto/tls"
	"errors"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"hardbound/store/config"
)

// decodeSection lays body (the radius: section's content) over the
// defaults, the way cmd/hardbound reads the file.
func decodeSection(t *testing.T, body string) FileConfig {
	t.Helper()
	c := DefaultFileConfig()
	dec := yaml.NewDecoder(strings.NewReader(body))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("decode %q: %v", body, err)
	}
	return c
}

func TestFileConfigValidateNamesTheField(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	kek := filepath.Join(dir, "ticket.key")
	if err := os.WriteFile(kek, []byte(strings.Repeat("ab", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		body      string
		wantField string // empty: valid
		wantMsg   string // part of the message, as the operator reads it
	}{
		{name: "ok/defaults", body: ""},
		{name: "ok/client", body: "clients:\n  - {name: a, cidr: 10.0.0.0/8, secret_file: " + secret + "}\n"},
		{name: "ok/single-address", body: "clients:\n  - {name: a, cidr: 10.0.0.1, secret: x}\n"},
		{name: "ok/audit-sync", body: "audit_flush: 2ms\naudit_sync: true\n"},
		{name: "ok/chain-cache-off", body: "chain_cache: -1\n"},
		{name: "ok/listeners-off", body: "auth_addr: \"\"\nacct_addr: \"\"\n"},
		{name: "ok/max-fragment", body: "max_fragment: 1000\n"},
		{name: "ok/storm-caps", body: "max_conversation_bytes: 67108864\nearly_idle_timeout: 2s\n"},
		{name: "ok/onoff-without-timestamp", body: "clients:\n  - {name: a, cidr: 10.0.0.0/8, secret: x, onoff_without_event_timestamp: true}\n"},
		{name: "fail/early-idle-over-idle", body: "early_idle_timeout: 1m\n", wantField: "radius.early_idle_timeout"},
		{name: "fail/conversation-bytes-tiny", body: "max_conversation_bytes: 1000\n", wantField: "radius.max_conversation_bytes"},
		{name: "ok/resumption", body: "resumption: {max_lifetime: 2h, key_rotation: 4h, full_after_change: true, disabled_profiles: [byod], shared_key_file: " + kek + "}\n"},
		{name: "ok/resumption-off", body: "resumption: {enabled: false, max_lifetime: 0s}\nclients:\n  - {name: a, cidr: 10.0.0.1, secret: x, resumption: false}\n"},
		{name: "fail/resumption-lifetime", body: "resumption: {max_lifetime: 200h}\n", wantField: "radius.resumption.max_lifetime"},
		{name: "fail/resumption-rotation", body: "resumption: {key_rotation: 10s}\n", wantField: "radius.resumption.key_rotation"},
		{name: "fail/resumption-shared-key", body: "resumption: {shared_key_file: " + secret + "}\n",
			wantField: "radius.resumption.shared_key_file", wantMsg: "32 octets in hex"},
		{name: "fail/bad-cidr", body: "clients:\n  - {name: a, cidr: 10.0.0/33, secret: x}\n",
			wantField: "radius.clients[0].cidr", wantMsg: `config: radius.clients[0].cidr: bad CIDR "10.0.0/33"`},
		{name: "fail/no-name", body: "clients:\n  - {cidr: 10.0.0.0/8, secret: x}\n", wantField: "radius.clients[0].name"},
		{name: "fail/empty-secret", body: "clients:\n  - {name: a, cidr: 10.0.0.0/8}\n", wantField: "radius.clients[0].secret"},
		{name: "fail/both-secrets", body: "clients:\n  - {name: a, cidr: 10.0.0.0/8, secret: x, secret_file: " + secret + "}\n",
			wantField: "radius.clients[0].secret", wantMsg: "not both"},
		{name: "fail/unreadable-secret", body: "clients:\n  - {name: a, cidr: 10.0.0.0/8, secret_file: /nonexistent}\n",
			wantField: "radius.clients[0].secret_file"},
		{name: "fail/duplicate-client", body: "clients:\n  - {name: a, cidr: 10.0.0.0/8, secret: x}\n  - {name: a, cidr: 10.0.0.0/8, secret: y}\n",
			wantField: "radius.clients[1].name", wantMsg: `duplicate client name "a"`},
		{name: "fail/coa-port", body: "clients:\n  - {name: a, cidr: 10.0.0.0/8, secret: x, coa_port: 70000}\n",
			wantField: "radius.clients[0].coa_port"},
		{name: "fail/client-tls", body: "clients:\n  - {name: a, cidr: 10.0.0.0/8, secret: x, tls_max_version: \"1.0\"}\n",
			wantField: "radius.clients[0].tls_max_version"},
		{name: "fail/chain-cache-negative", body: "chain_cache: -5\n", wantField: "radius.chain_cache"},
		{name: "fail/audit-flush-too-long", body: "audit_flush: 5s\n", wantField: "radius.audit_flush"},
		{name: "fail/bad-tls", body: "tls_max_version: \"1.1\"\n", wantField: "radius.tls_max_version", wantMsg: `not "1.1"`},
		{name: "fail/bad-addr", body: "auth_addr: nonsense\n", wantField: "radius.auth_addr"},
		{name: "fail/bad-acct-addr", body: "acct_addr: 1813\n", wantField: "radius.acct_addr"},
		{name: "fail/max-conversations", body: "max_conversations: 0\n", wantField: "radius.max_conversations"},
		{name: "fail/max-per-nas", body: "max_conversations_per_nas: -1\n", wantField: "radius.max_conversations_per_nas"},
		{name: "fail/idle-timeout", body: "conversation_idle_timeout: 0s\n", wantField: "radius.conversation_idle_timeout"},
		{name: "fail/max-fragment", body: "max_fragment: 50\n", wantField: "radius.max_fragment"},
		{name: "fail/coa-retries", body: "coa: {retries: 11}\n", wantField: "radius.coa.retries"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := decodeSection(t, tc.body)
			err := c.Validate("radius")
			if tc.wantField == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				for _, cl := range c.Clients {
					if len(cl.secret) == 0 || !cl.prefix.IsValid() {
						t.Errorf("client %s not resolved: %+v", cl.Name, cl)
					}
				}
				return
			}
			var fe *config.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.wantField {
				t.Fatalf("Validate = %v, want an error naming %s", err, tc.wantField)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("Validate = %q, want it to say %q", err, tc.wantMsg)
			}
		})
	}
}

// The resumption section reaches the eaptls and radius configs, and a
// NAS can opt out.
func TestFileConfigResumption(t *testing.T) {
	t.Parallel()
	kek := filepath.Join(t.TempDir(), "ticket.key")
	if err := os.WriteFile(kek, []byte(strings.Repeat("0f", 32)), 0o600); err != nil {
		t.Fatal(err)
	}
	c := decodeSection(t, "resumption: {max_lifetime: 2h, key_rotation: 3h, full_after_change: true, disabled_profiles: [byod], shared_key_file: "+kek+"}\n"+
		"clients:\n  - {name: a, cidr: 10.0.0.1, secret: x, resumption: false}\n  - {name: b, cidr: 10.0.0.2, secret: y}\n")
	if err := c.Validate("radius"); err != nil {
		t.Fatal(err)
	}
	if got := c.EAP(tls.Certificate{}, nil).Resumption.MaxLifetime; got != 2*time.Hour {
		t.Errorf("eaptls MaxLifetime %v", got)
	}
	r := c.Server().Resumption
	if r.KeyRotation != 3*time.Hour || !r.FullAfterChange || len(r.DisabledProfiles) != 1 || len(r.SharedKey) != SharedKeyLen || r.SharedKey[0] != 0x0f {
		t.Errorf("radius Resumption %+v", r)
	}
	if cl := c.Server().Clients; !cl[0].NoResume || cl[1].NoResume {
		t.Errorf("per-NAS switch: a %v, b %v", cl[0].NoResume, cl[1].NoResume)
	}
	d := DefaultFileConfig()
	if err := d.Validate("radius"); err != nil {
		t.Fatal(err)
	}
	if got := d.EAP(tls.Certificate{}, nil).Resumption.MaxLifetime; got != 8*time.Hour {
		t.Errorf("default ticket lifetime %v, documented 8h", got)
	}
	off := decodeSection(t, "resumption: {enabled: false}\n")
	if got := off.EAP(tls.Certificate{}, nil).Resumption; got.Enabled() {
		t.Errorf("resumption off still gives %+v", got)
	}
}

func TestFileConfigUnreadableSecretWrapsTheCause(t *testing.T) {
	t.Parallel()
	c := decodeSection(t, "clients:\n  - {name: a, cidr: 10.0.0.0/8, secret_file: /nonexistent}\n")
	if err := c.Validate("radius"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Validate = %v, want fs.ErrNotExist", err)
	}
}

func TestFileConfigDefaultsAreConfigs(t *testing.T) {
	t.Parallel()
	d := DefaultFileConfig()
	got := d.Server()
	var want Config
	want.setDefaults()
	if got.MaxConversations != want.MaxConversations || got.MaxConversationsPerNAS != want.MaxConversationsPerNAS ||
		got.ConversationIdle != want.ConversationIdle {
		t.Errorf("file defaults %d/%d conversations, idle %v; Config defaults %d/%d, idle %v",
			got.MaxConversations, got.MaxConversationsPerNAS, got.ConversationIdle,
			want.MaxConversations, want.MaxConversationsPerNAS, want.ConversationIdle)
	}
	// The documented defaults (README, Configuration reference).
	if want.MaxConversations != 20000 || want.MaxConversationsPerNAS != 5000 || want.ConversationIdle != 30*time.Second {
		t.Errorf("Config defaults %d/%d, idle %v; README says 20000/5000, 30s", want.MaxConversations, want.MaxConversationsPerNAS, want.ConversationIdle)
	}
}

func TestFileConfigServerMapsClients(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("from-file\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := decodeSection(t, `
conversation_idle_timeout: 45s
max_conversations: 7
max_conversations_per_nas: 3
audit_flush: 2ms
audit_sync: true
clients:
  - {name: wlc, cidr: 10.1.0.0/16, secret_file: `+secret+`}
  - {name: sw, cidr: 192.0.2.7, secret: s, coa_port: 1700, coa_secret: c, require_message_authenticator: false, send_reject_reason: true, tls_max_version: "1.2"}
`)
	if err := c.Validate("radius"); err != nil {
		t.Fatal(err)
	}
	sc := c.Server()
	if sc.ConversationIdle != 45*time.Second || sc.MaxConversations != 7 || sc.MaxConversationsPerNAS != 3 ||
		sc.AuditFlush != 2*time.Millisecond || !sc.AuditSync {
		t.Errorf("Server() = %+v", sc)
	}
	if err := sc.Validate(); err != nil {
		t.Fatalf("Server().Validate: %v", err)
	}
	if len(sc.Clients) != 2 {
		t.Fatalf("%d clients, want 2", len(sc.Clients))
	}
	wlc, sw := sc.Clients[0], sc.Clients[1]
	if wlc.Prefix != netip.MustParsePrefix("10.1.0.0/16") || string(wlc.Secret) != "from-file" ||
		!wlc.RequireMessageAuthenticator || !wlc.LimitProxyState || wlc.CoASecret != nil || wlc.TLSMaxVersion != 0 {
		t.Errorf("wlc = %+v", wlc)
	}
	if sw.Prefix != netip.MustParsePrefix("192.0.2.7/32") || string(sw.Secret) != "s" || sw.CoAPort != 1700 ||
		string(sw.CoASecret) != "c" || sw.RequireMessageAuthenticator || !sw.SendRejectReason || sw.TLSMaxVersion != tls.VersionTLS12 {
		t.Errorf("sw = %+v", sw)
	}
	// The CoA defaults are Client's, applied once by the server.
	if n := newNAS(wlc); n.CoAPort != DefaultCoAPort || string(n.CoASecret) != "from-file" {
		t.Errorf("wlc at the server: CoA port %d, secret %q; want %d and the RADIUS secret", n.CoAPort, n.CoASecret, DefaultCoAPort)
	}
}

func TestFileConfigEAP(t *testing.T) {
	t.Parallel()
	tests := []struct {
		body    string
		wantMax uint16
	}{
		{"", tls.VersionTLS13},
		{"tls_max_version: \"1.2\"\nmax_fragment: 1000\nallow_no_ems: true\nsend_ca_names: true\nchain_cache: -1\n", tls.VersionTLS12},
	}
	for _, tc := range tests {
		c := decodeSection(t, tc.body)
		if err := c.Validate("radius"); err != nil {
			t.Fatal(err)
		}
		var cert tls.Certificate
		e := c.EAP(cert, nil)
		if e.TLS.MaxVersion != tc.wantMax || e.TLS.MinVersion != tls.VersionTLS12 || len(e.TLS.Certificates) != 1 {
			t.Errorf("%q: TLS = max %x min %x, %d certs", tc.body, e.TLS.MaxVersion, e.TLS.MinVersion, len(e.TLS.Certificates))
		}
		if e.MaxFragment != c.MaxFragment || e.AllowNoEMS != c.AllowNoEMS || e.OmitCANames == c.SendCANames || e.ChainCache != c.ChainCache {
			t.Errorf("%q: EAP() = %+v", tc.body, e)
		}
	}
}
