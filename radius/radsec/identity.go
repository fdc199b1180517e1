package radsec

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"hardbound/store"
	"hardbound/store/policy"
)

// Identity errors: why a peer's certificate names no NAS. The TLS
// handshake fails with a bad_certificate alert and the reason is logged and
// counted (Metrics.Refused).
var (
	ErrNoCertificate = errors.New("radsec: peer sent no certificate")
	ErrUnknownCA     = errors.New("radsec: certificate from no trusted CA")
	ErrNotNAS        = errors.New("radsec: certificate does not name a NAS")
	ErrUnbound       = errors.New("radsec: NAS certificate not recorded")
	ErrRevoked       = errors.New("radsec: NAS certificate or NAS revoked")
)

// nasURNPrefix is the opaque part of the SAN URI of a NAS certificate this
// hardbound issues: urn:hardbound:nas:<name>.
const nasURNPrefix = "hardbound:nas:"

// nameRE is what a NAS name may be: it appears in the SAN URI, file names
// (hardbound nas issue) and the audit actor nas:<name>.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// CheckName reports whether name can name a NAS.
func CheckName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("radsec: NAS name %q: 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

// NASURI is the SAN URI a NAS certificate carries.
func NASURI(name string) *url.URL { return &url.URL{Scheme: "urn", Opaque: nasURNPrefix + name} }

// DeviceID is the store's device record of a NAS: its certificates are
// bindings of it (profile policy.NASProfile), so that `hardbound cert
// revoke` and device revocation apply to NASes too.
func DeviceID(name string) string { return "nas:" + name }

// nasName returns the name in leaf's NAS SAN URI; false unless there is
// exactly one.
func nasName(leaf *x509.Certificate) (string, bool) {
	name, n := "", 0
	for _, u := range leaf.URIs {
		if u != nil && strings.EqualFold(u.Scheme, "urn") && strings.HasPrefix(u.Opaque, nasURNPrefix) {
			name = strings.TrimPrefix(u.Opaque, nasURNPrefix)
			n++
		}
	}
	return name, n == 1 && CheckName(name) == nil
}

// ExternalClient is a NAS whose certificate an external CA issues: a
// certificate chaining to Roots whose subject CN, a SAN dNSName or a SAN
// URI equals one of the set fields is that NAS.
type ExternalClient struct {
	Name      string
	Roots     *x509.CertPool
	SubjectCN string
	DNS       string
	URI       string
}

func (e *ExternalClient) matches(leaf *x509.Certificate) bool {
	switch {
	case e.SubjectCN != "" && leaf.Subject.CommonName == e.SubjectCN:
		return true
	case e.DNS != "" && slices.ContainsFunc(leaf.DNSNames, func(d string) bool { return strings.EqualFold(d, e.DNS) }):
		return true
	case e.URI != "" && slices.ContainsFunc(leaf.URIs, func(u *url.URL) bool { return u.String() == e.URI }):
		return true
	}
	return false
}

// Bindings is what identifying a hardbound-issued NAS certificate reads,
// and the change feed that closes the connections of a revoked one
// (store.Store).
type Bindings interface {
	GetCertBinding(ctx context.Context, sha store.Hash) (*store.Cert, error)
	GetDevice(ctx context.Context, id string) (*store.Device, error)
	store.Watcher
}

// Outage says whether an identity read from the store earlier may stand in
// for a read that failed because the store's database is away
// (posture.Service: within store.unavailable.grace, or after it under
// accept_cached), so that RadSec follows the same rule as the
// authentications it carries (docs/ha.md).
type Outage interface {
	CachesAnswer(now time.Time) bool
}

// identity is who a connection's peer is.
type identity struct {
	name   string
	cert   store.Hash
	source string // "hardbound" or "external"
	cached bool   // identified from known while the store was away
}

// maxKnown bounds the NAS identities remembered for an outage: one per
// NAS certificate, so a site's NASes fit many times over.
const maxKnown = 4096

// identifier turns a verified-or-not peer chain into a NAS identity.
type identifier struct {
	own      *x509.CertPool // hardbound's CA; nil: no NAS certificates of ours
	bindings Bindings
	external []ExternalClient
	outage   Outage // nil: a store read that fails refuses the peer

	mu sync.Mutex
	// known holds the identities of hardbound NAS certificates last read
	// from the store, dropped by the changes that would refuse them
	// (forget). gen counts those changes, so that a read that raced one
	// is not remembered.
	known map[store.Hash]identity
	gen   uint64
}

// remember keeps ident if no change was announced since gen was read.
func (id *identifier) remember(ident identity, gen uint64) {
	id.mu.Lock()
	defer id.mu.Unlock()
	if id.gen != gen {
		return
	}
	if id.known == nil {
		id.known = map[store.Hash]identity{}
	}
	if _, ok := id.known[ident.cert]; ok || len(id.known) < maxKnown {
		id.known[ident.cert] = ident
	}
}

func (id *identifier) generation() uint64 {
	id.mu.Lock()
	defer id.mu.Unlock()
	return id.gen
}

// forget drops the identities a committed change unauthorizes: the given
// certificates, every certificate of NAS device nas, or all of them.
func (id *identifier) forget(certs []store.Hash, nas string, all bool) {
	id.mu.Lock()
	defer id.mu.Unlock()
	id.gen++
	if all {
		clear(id.known)
		return
	}
	for _, h := range certs {
		delete(id.known, h)
	}
	if nas == "" {
		return
	}
	for h, k := range id.known {
		if DeviceID(k.name) == nas {
			delete(id.known, h)
		}
	}
}

// fromCache answers for sha when the store could not be read: the
// remembered identity, if the outage rule lets a cached answer stand now.
func (id *identifier) fromCache(sha store.Hash, name string, readErr error) (identity, error) {
	if id.outage == nil || !errors.Is(readErr, store.ErrUnavailable) || !id.outage.CachesAnswer(time.Now()) {
		return identity{}, fmt.Errorf("radsec: binding of NAS %s: %w", name, readErr)
	}
	id.mu.Lock()
	k, ok := id.known[sha]
	id.mu.Unlock()
	if !ok {
		return identity{}, fmt.Errorf("radsec: binding of NAS %s not known from before the outage: %w", name, readErr)
	}
	k.cached = true
	return k, nil
}

// identify verifies chain (leaf first, as the peer sent it) and names its
// NAS. A certificate of hardbound's CA must carry a NAS SAN URI and be a
// live binding of profile policy.NASProfile (so a device certificate is
// never a NAS); any other must chain to an external client's roots and
// match it. Both require the clientAuth EKU.
func (id *identifier) identify(ctx context.Context, chain []*x509.Certificate) (identity, error) {
	if len(chain) == 0 {
		return identity{}, ErrNoCertificate
	}
	leaf := chain[0]
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	opts := x509.VerifyOptions{Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if id.own != nil {
		opts.Roots = id.own
		if _, err := leaf.Verify(opts); err == nil {
			return id.ours(ctx, leaf)
		}
	}
	for i := range id.external {
		e := &id.external[i]
		opts.Roots = e.Roots
		if _, err := leaf.Verify(opts); err == nil && e.matches(leaf) {
			return identity{name: e.Name, cert: store.HashCert(leaf), source: "external"}, nil
		}
	}
	return identity{}, fmt.Errorf("%w: subject %q", ErrUnknownCA, leaf.Subject.String())
}

func (id *identifier) ours(ctx context.Context, leaf *x509.Certificate) (identity, error) {
	name, ok := nasName(leaf)
	if !ok {
		return identity{}, fmt.Errorf("%w: no single %s URI", ErrNotNAS, nasURNPrefix)
	}
	sha := store.HashCert(leaf)
	gen := id.generation()
	b, err := id.bindings.GetCertBinding(ctx, sha)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return identity{}, fmt.Errorf("%w: %s", ErrUnbound, name)
	case err != nil:
		return id.fromCache(sha, name, err)
	case b.Profile != policy.NASProfile || b.DeviceID != DeviceID(name):
		return identity{}, fmt.Errorf("%w: binding is %s/%s", ErrNotNAS, b.DeviceID, b.Profile)
	case b.Revoked != nil:
		return identity{}, fmt.Errorf("%w: certificate of %s", ErrRevoked, name)
	}
	d, err := id.bindings.GetDevice(ctx, b.DeviceID)
	if err != nil {
		return id.fromCache(sha, name, err)
	}
	if d.Status != store.DeviceActive {
		return identity{}, fmt.Errorf("%w: NAS %s is %s", ErrRevoked, name, d.Status)
	}
	ident := identity{name: name, cert: sha, source: "hardbound"}
	id.remember(ident, gen)
	return ident, nil
}

// refusal is the metric label of an identity error.
func refusal(err error) string {
	switch {
	case errors.Is(err, ErrNoCertificate):
		return "no_certificate"
	case errors.Is(err, ErrUnknownCA):
		return "unknown_ca"
	case errors.Is(err, ErrNotNAS):
		return "not_nas"
	case errors.Is(err, ErrUnbound):
		return "unbound"
	case errors.Is(err, ErrRevoked):
		return "revoked"
	case errors.Is(err, store.ErrUnavailable):
		return "store_unavailable"
	}
	return "error"
}
