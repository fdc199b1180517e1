package radius

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"time"

	"golang.org/x/time/rate"

	"hardbound/radius/packet"
)

// DefaultCoAPort is the RFC 5176 dynamic authorization port on the NAS.
const DefaultCoAPort = 3799

// Defaults of Config, which are also those of hardbound.yaml's radius:
// section (DefaultFileConfig).
const (
	defaultConversationIdle       = 30 * time.Second
	defaultEarlyIdle              = 5 * time.Second
	defaultMaxConversations       = 20000
	defaultMaxConversationsPerNAS = 5000
	defaultMaxConversationBytes   = 256 << 20
)

// Status-Server answers per NAS client: a watchdog every few seconds per
// proxy is normal; more is a flood.
const (
	statusServerRate  = 10
	statusServerBurst = 20
)

// Client is one NAS (or a network of NASes sharing a secret).
type Client struct {
	// Name identifies the NAS in logs, audit (actor nas:<Name>), sessions and
	// the CoA sender. Unique.
	Name string
	// Prefix is the source network; the most specific prefix containing a
	// packet's source address wins.
	Prefix netip.Prefix
	// Secret is the RADIUS shared secret.
	Secret []byte
	// CoAPort and CoASecret are for the Disconnect/CoA sender; 0 and empty
	// default to DefaultCoAPort and Secret.
	CoAPort   int
	CoASecret []byte
	// RequireMessageAuthenticator makes every Access-Request without a
	// Message-Authenticator be discarded (BlastRADIUS, CVE-2024-3596).
	// Configuration loaders must default it to true.
	//
	// WARNING: false lets Access-Requests without EAP and without
	// Message-Authenticator through, which is what the BlastRADIUS forgery
	// needs; only for NASes that cannot send it. Logged at startup.
	RequireMessageAuthenticator bool
	// LimitProxyState, consulted only when RequireMessageAuthenticator is
	// false, discards Access-Requests without Message-Authenticator that carry
	// Proxy-State (the attacker's collision blocks ride in Proxy-State).
	LimitProxyState bool
	// TLSMaxVersion caps EAP-TLS for this NAS (e.g. tls.VersionTLS12 for
	// supplicants that mishandle TLS 1.3); 0 means the eaptls default.
	TLSMaxVersion uint16
	// OnOffWithoutTimestamp lets an Accounting-On/Off without
	// Event-Timestamp close the NAS's sessions (as of now minus
	// Acct-Delay-Time).
	//
	// WARNING: such a packet cannot be told from a replay of an old one,
	// so anyone who captured one can switch enforcement off for that NAS
	// at will. Only for NASes that cannot send Event-Timestamp.
	OnOffWithoutTimestamp bool
	// SendRejectReason adds Reply-Message with the reject reason to
	// Access-Rejects. Off by default: the reason helps an attacker probe.
	SendRejectReason bool
	// NoResume makes every EAP-TLS authentication through this NAS a full
	// handshake: no ticket is issued or accepted (Resumption).
	NoResume bool
}

// Config configures the RADIUS server. Zero values take the defaults noted.
type Config struct {
	Clients []Client
	// ConversationIdle expires an EAP conversation without a packet; default 30s.
	ConversationIdle time.Duration
	// MaxConversations caps live EAP conversations in total (default 20000)
	// and per NAS client (MaxConversationsPerNAS, default 5000).
	MaxConversations       int
	MaxConversationsPerNAS int
	// MaxConversationBytes bounds the conversations' estimated memory
	// (conversation.go: earlyCost, tlsCost); default 256 MiB, about 2,500
	// handshakes in progress at once.
	MaxConversationBytes int64
	// EarlyIdle expires a conversation that never got past
	// Identity/EAP-TLS-Start sooner (default 5s, at most ConversationIdle):
	// a supplicant answers those rounds in milliseconds.
	EarlyIdle time.Duration
	// DuplicateTTL is how long responses stay cached for retransmissions
	// (RFC 5080 §2.2.2 suggests 5-30 s); default 10s. DuplicateEntries
	// bounds the cache (default 65536).
	DuplicateTTL     time.Duration
	DuplicateEntries int
	// Workers is the number of packet-processing goroutines (default 64) and
	// Queue the number of packets waiting for them (default 1024); beyond
	// that packets are dropped (cause queue_full) and the NAS retransmits.
	Workers int
	Queue   int
	// AuditFlush is how long decisions gather before they are written to
	// the audit chain as one group, with one fsync (default 10ms; negative:
	// no gathering beyond what queues during a write). Groups are written
	// one at a time: a group whose window ended while the one before it is
	// still being written keeps gathering until that write is done.
	//
	// AuditSync makes every Access-Accept/Reject wait until its decision is
	// durable. Off (the default), a decision is durable once its group and
	// the one before it are written (AuditFlush plus one fsync on a quiet
	// server) after its reply left: a crash can lose those
	// authentication records (never enrollment, admin or accounting
	// records, which are always written before their reply), and the server
	// spends noticeably less CPU per authentication at low concurrency.
	// With AuditSync, a group lingers only while decisions keep coming,
	// adding up to AuditFlush to the last round trip.
	AuditFlush time.Duration
	AuditSync  bool
	// AcctInterimInterval, if > 0, is sent in Access-Accept (>= 60s).
	AcctInterimInterval time.Duration
	// AuditBudgetWindow: refusals caused by unauthenticated traffic (bad
	// Class, stale On/Off, rejects) are audited once per kind and source
	// per window, with the count of the rest (default 1 minute).
	AuditBudgetWindow time.Duration
	// ClassKey (ClassKeyLen octets) authenticates the Class of every
	// Access-Accept (class.go); LoadClassKey keeps one across restarts.
	// Empty: a random key for this process, so that sessions admitted
	// before a restart are no longer mapped to their devices (logged).
	ClassKey []byte
	// Resumption: ticket key rotation and which sessions may resume.
	Resumption Resumption
}

func (c *Config) setDefaults() {
	if c.ConversationIdle <= 0 {
		c.ConversationIdle = defaultConversationIdle
	}
	if c.MaxConversations <= 0 {
		c.MaxConversations = defaultMaxConversations
	}
	if c.MaxConversationsPerNAS <= 0 {
		c.MaxConversationsPerNAS = defaultMaxConversationsPerNAS
	}
	if c.MaxConversationBytes <= 0 {
		c.MaxConversationBytes = defaultMaxConversationBytes
	}
	if c.EarlyIdle <= 0 {
		c.EarlyIdle = defaultEarlyIdle
	}
	if c.DuplicateTTL <= 0 {
		c.DuplicateTTL = 10 * time.Second
	}
	if c.DuplicateEntries <= 0 {
		c.DuplicateEntries = 65536
	}
	if c.Workers <= 0 {
		c.Workers = 64
	}
	if c.Queue <= 0 {
		c.Queue = 1024
	}
	if c.AuditFlush == 0 {
		c.AuditFlush = 10 * time.Millisecond
	}
}

// Validate reports the first configuration error, naming the field.
func (c *Config) Validate() error {
	if len(c.Clients) == 0 {
		return errors.New("radius: clients: at least one NAS client is required")
	}
	names := make(map[string]bool, len(c.Clients))
	prefixes := make(map[netip.Prefix]string, len(c.Clients))
	for i, cl := range c.Clients {
		switch {
		case cl.Name == "":
			return fmt.Errorf("radius: clients[%d].name: required", i)
		case names[cl.Name]:
			return fmt.Errorf("radius: clients[%d].name: duplicate %q", i, cl.Name)
		case !cl.Prefix.IsValid():
			return fmt.Errorf("radius: clients[%d].prefix: invalid", i)
		case len(cl.Secret) == 0:
			return fmt.Errorf("radius: clients[%d].secret: required", i)
		case cl.CoAPort < 0 || cl.CoAPort > 65535:
			return fmt.Errorf("radius: clients[%d].coa_port: out of range", i)
		}
		p := normPrefix(cl.Prefix)
		if other, dup := prefixes[p]; dup {
			return fmt.Errorf("radius: clients[%d].prefix: %s already used by %q", i, p, other)
		}
		names[cl.Name] = true
		prefixes[p] = cl.Name
	}
	if len(c.ClassKey) != 0 && len(c.ClassKey) != ClassKeyLen {
		return fmt.Errorf("radius: class_key: %d bytes, want %d", len(c.ClassKey), ClassKeyLen)
	}
	if c.Resumption.KeyRotation < 0 {
		return errors.New("radius: resumption.key_rotation: must not be negative")
	}
	if n := len(c.Resumption.SharedKey); n != 0 && n != SharedKeyLen {
		return fmt.Errorf("radius: resumption.shared_key_file: %d bytes, want %d", n, SharedKeyLen)
	}
	if c.AcctInterimInterval != 0 && c.AcctInterimInterval < time.Minute {
		return errors.New("radius: acct_interim_interval: must be >= 60s")
	}
	return nil
}

// normPrefix maps IPv4-mapped IPv6 prefixes to IPv4 and masks host bits, so
// that lookups by an unmapped source address find them.
func normPrefix(p netip.Prefix) netip.Prefix {
	a := p.Addr()
	bits := p.Bits()
	if a.Is4In6() {
		a = a.Unmap()
		bits -= 96
		if bits < 0 {
			bits = 0
		}
	}
	return netip.PrefixFrom(a, bits).Masked()
}

// nas is a configured client plus its secret's codec (which pools the hash
// states, keeping the hot path allocation-free).
type nas struct {
	Client
	sec *packet.Secret
	// policy is what its Access-Requests must carry (BlastRADIUS).
	policy packet.Policy
	// status rate-limits Status-Server (RFC 5997 §4: servers SHOULD), which
	// has no duplicate entry: each one costs a signed answer.
	status *rate.Limiter
}

func newNAS(c Client) *nas {
	n := &nas{Client: c}
	n.Secret = append([]byte(nil), c.Secret...)
	n.CoASecret = append([]byte(nil), c.CoASecret...)
	n.Prefix = normPrefix(c.Prefix)
	if n.CoAPort == 0 {
		n.CoAPort = DefaultCoAPort
	}
	if len(n.CoASecret) == 0 {
		n.CoASecret = n.Secret
	}
	n.sec = packet.NewSecret(n.Secret)
	n.policy = packet.Policy{RequireMessageAuthenticator: c.RequireMessageAuthenticator, LimitProxyState: c.LimitProxyState}
	n.status = rate.NewLimiter(statusServerRate, statusServerBurst)
	return n
}

// clientTable finds the most specific client for a source address.
// Lookup is one map probe per distinct prefix length, longest first.
type clientTable struct {
	byName  map[string]*nas
	lengths []int // distinct prefix lengths, descending
	byPref  map[netip.Prefix]*nas
}

func newClientTable(cs []Client) *clientTable {
	t := &clientTable{byName: map[string]*nas{}, byPref: map[netip.Prefix]*nas{}}
	seen := map[int]bool{}
	for _, c := range cs {
		n := newNAS(c)
		t.byName[n.Name] = n
		t.byPref[n.Prefix] = n
		if !seen[n.Prefix.Bits()] {
			seen[n.Prefix.Bits()] = true
			t.lengths = append(t.lengths, n.Prefix.Bits())
		}
	}
	sort.Sort(sort.Reverse(sort.IntSlice(t.lengths)))
	return t
}

func (t *clientTable) lookup(a netip.Addr) *nas {
	a = a.Unmap()
	for _, bits := range t.lengths {
		if bits > a.BitLen() {
			continue
		}
		p, err := a.Prefix(bits)
		if err != nil {
			continue
		}
		if n, ok := t.byPref[p]; ok {
			return n
		}
	}
	return nil
}
