// Package token holds the admin API's bearer tokens: a name, a scope, an
// optional expiry and the SHA-256 of the value. The value itself is shown
// once, when the token is made, and never stored.
//
// Tokens live in one file (by default <data_dir>/admin.tokens, mode 0600),
// one token a line:
//
//	name sha256hex [scope=admin|read|enroll] [created=RFC3339] [expires=RFC3339]
//
// A line with only a name and a hash is an admin token without expiry, which
// is what earlier versions wrote. The file is the one place both a running
// server (through the admin API) and the CLI on a stopped data dir change,
// so every change is a read-modify-write under an advisory lock
// (path + ".lock"), and a Set that reads the file notices a change made by
// another process within a second.
package token

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"hardbound/store/atomicfile"
)

// Scope is what a token may do.
type Scope string

const (
	// Admin may do everything.
	Admin Scope = "admin"
	// Read may only read (GET) the API and view the console.
	Read Scope = "read"
	// Enroll may only run the device-side flows (TPM credential
	// activation and attestation); it reads nothing.
	Enroll Scope = "enroll"
)

// Scopes are the valid scopes, in the order the CLI documents them.
var Scopes = []Scope{Admin, Read, Enroll}

// ParseScope reads a scope name.
func ParseScope(s string) (Scope, error) {
	for _, sc := range Scopes {
		if string(sc) == s {
			return sc, nil
		}
	}
	return "", fmt.Errorf("%w: scope %q is not admin, read or enroll", ErrInvalid, s)
}

// Errors, matched with errors.Is.
var (
	// ErrUnknown: no token has this value (or name).
	ErrUnknown = errors.New("token: unknown")
	// ErrExpired: the token exists but is past its expiry.
	ErrExpired = errors.New("token: expired")
	// ErrExists: a token with this name exists.
	ErrExists = errors.New("token: name already in use")
	// ErrInvalid: a bad name, scope or file line.
	ErrInvalid = errors.New("token: invalid")
	// ErrFile: the token file could not be read or written.
	ErrFile = errors.New("token: token file")
)

// Token is one credential, by name, scope and SHA-256 of its value.
type Token struct {
	Name      string
	SHA256    [32]byte
	Scope     Scope     // "" is Admin (a line of an earlier version)
	CreatedAt time.Time // zero if unknown
	ExpiresAt time.Time // zero: never
}

// EffectiveScope is the scope, with the earlier versions' "" as Admin.
func (t Token) EffectiveScope() Scope {
	if t.Scope == "" {
		return Admin
	}
	return t.Scope
}

// Expired reports whether t has an expiry at or before now.
func (t Token) Expired(now time.Time) bool {
	return !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt)
}

// Hash returns the stored form of a token value.
func Hash(value string) [32]byte { return sha256.Sum256([]byte(value)) }

// Generate returns a new random token value: "hb_" and 32 random bytes,
// base64url. The prefix makes a leaked token easy to find with a scanner.
func Generate() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	return "hb_" + base64.RawURLEncoding.EncodeToString(b), nil
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

// CheckName reports whether name is a valid token name: 1..64 of letters,
// digits and ._@- (it is written into audit events as admin:<name>).
func CheckName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("%w: name %q: want 1-64 letters, digits or ._@- starting with a letter or digit", ErrInvalid, name)
	}
	return nil
}

// Parse reads a token file. Blank lines and # comments are skipped; a
// malformed line is an error naming its line number.
func Parse(r io.Reader) ([]Token, error) {
	var out []Token
	seen := map[string]bool{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		t, err := parseLine(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if seen[t.Name] {
			return nil, fmt.Errorf("line %d: %w: name %q appears twice", n, ErrInvalid, t.Name)
		}
		seen[t.Name] = true
		out = append(out, t)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFile, err)
	}
	return out, nil
}

func parseLine(line string) (Token, error) {
	f := strings.Fields(line)
	if len(f) < 2 {
		return Token{}, fmt.Errorf("%w: want \"name sha256hex [scope=...] [expires=...]\"", ErrInvalid)
	}
	t := Token{Name: f[0]}
	if err := CheckName(t.Name); err != nil {
		return Token{}, err
	}
	b, err := hex.DecodeString(f[1])
	if err != nil || len(b) != 32 {
		return Token{}, fmt.Errorf("%w: %q is not a 64-character hex SHA-256", ErrInvalid, f[1])
	}
	copy(t.SHA256[:], b)
	for _, kv := range f[2:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return Token{}, fmt.Errorf("%w: %q is not key=value", ErrInvalid, kv)
		}
		switch k {
		case "scope":
			if t.Scope, err = ParseScope(v); err != nil {
				return Token{}, err
			}
		case "created", "expires":
			at, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return Token{}, fmt.Errorf("%w: %s: %v", ErrInvalid, k, err)
			}
			if k == "created" {
				t.CreatedAt = at
			} else {
				t.ExpiresAt = at
			}
		default:
			return Token{}, fmt.Errorf("%w: unknown key %q", ErrInvalid, k)
		}
	}
	return t, nil
}

// Format writes tokens in the file's syntax, sorted by name.
func Format(ts []Token) []byte {
	ts = append([]Token(nil), ts...)
	sort.Slice(ts, func(i, j int) bool { return ts[i].Name < ts[j].Name })
	var b bytes.Buffer
	b.WriteString("# hardbound admin tokens: name sha256(value) scope created expires. Values are never stored.\n")
	for _, t := range ts {
		fmt.Fprintf(&b, "%s %s scope=%s", t.Name, hex.EncodeToString(t.SHA256[:]), t.EffectiveScope())
		if !t.CreatedAt.IsZero() {
			fmt.Fprintf(&b, " created=%s", t.CreatedAt.UTC().Format(time.RFC3339))
		}
		if !t.ExpiresAt.IsZero() {
			fmt.Fprintf(&b, " expires=%s", t.ExpiresAt.UTC().Format(time.RFC3339))
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// Set is the tokens a server checks against: fixed (NewSet) or read from a
// file (OpenFile) and re-read when the file changes. It is safe for
// concurrent use.
type Set struct {
	path string // "" for a fixed set

	mu       sync.Mutex
	tokens   []Token
	stat     fileStamp
	statedAt time.Time
}

type fileStamp struct {
	size  int64
	mod   time.Time
	inode uint64
}

// recheck bounds how often Check looks at the file for a change.
const recheck = time.Second

// NewSet is a fixed set (tests, embedding).
func NewSet(ts []Token) *Set { return &Set{tokens: append([]Token(nil), ts...)} }

// OpenFile reads the token file at path. A missing file is an empty set
// (the first token is made with Create); any other error is returned.
func OpenFile(path string) (*Set, error) {
	s := &Set{path: path}
	if err := s.reload(time.Now()); err != nil {
		return nil, err
	}
	return s, nil
}

// Path is the file behind the set ("" for a fixed set).
func (s *Set) Path() string { return s.path }

func stampOf(fi fs.FileInfo) fileStamp {
	st := fileStamp{size: fi.Size(), mod: fi.ModTime()}
	if sys, ok := fi.Sys().(*unix.Stat_t); ok {
		st.inode = sys.Ino
	}
	return st
}

// reload reads the file if it changed since the last read. Callers hold
// s.mu or own s exclusively.
func (s *Set) reload(now time.Time) error {
	if s.path == "" {
		return nil
	}
	s.statedAt = now
	fi, err := os.Stat(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		s.tokens, s.stat = nil, fileStamp{}
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrFile, err)
	}
	if st := stampOf(fi); st == s.stat && s.tokens != nil {
		return nil
	}
	b, err := os.ReadFile(s.path)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrFile, err)
	}
	ts, err := Parse(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("%w %s: %w", ErrFile, s.path, err)
	}
	if ts == nil {
		ts = []Token{}
	}
	s.tokens, s.stat = ts, stampOf(fi)
	return nil
}

// current returns the tokens, re-reading the file at most once per recheck.
// A file that became unreadable keeps the last good tokens (the error is
// returned so the caller can log it); revoking by editing the file still
// works because a parse error never adds tokens.
func (s *Set) current(now time.Time) ([]Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	if s.path != "" && now.Sub(s.statedAt) >= recheck {
		err = s.reload(now)
	}
	return s.tokens, err
}

// Check finds the token whose value is value. Every stored hash is compared
// in constant time and the loop does not stop at a match, so the time taken
// says nothing about which token matched. ErrUnknown or ErrExpired
// otherwise; a second error (the file could not be re-read) may accompany a
// match against the last good copy.
func (s *Set) Check(value string, now time.Time) (Token, error) {
	return s.CheckHash(Hash(value), now)
}

// CheckHash is Check for a value already hashed (the console keeps only the
// hash of the token a session signed in with).
func (s *Set) CheckHash(h [32]byte, now time.Time) (Token, error) {
	ts, rerr := s.current(now)
	var found Token
	match := 0
	for _, t := range ts {
		if subtle.ConstantTimeCompare(h[:], t.SHA256[:]) == 1 {
			found, match = t, 1
		}
	}
	switch {
	case match == 0 && rerr != nil:
		return Token{}, fmt.Errorf("%w: %w", ErrUnknown, rerr)
	case match == 0:
		return Token{}, ErrUnknown
	case found.Expired(now):
		return found, ErrExpired
	}
	return found, nil
}

// List returns the tokens sorted by name.
func (s *Set) List(now time.Time) ([]Token, error) {
	ts, err := s.current(now)
	if err != nil {
		return nil, err
	}
	out := append([]Token(nil), ts...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Create makes a token named name with scope and expiry (zero: never),
// writes the file and returns the value, which is not kept anywhere.
func (s *Set) Create(name string, scope Scope, expires, now time.Time) (string, Token, error) {
	if err := CheckName(name); err != nil {
		return "", Token{}, err
	}
	if _, err := ParseScope(string(scope)); err != nil {
		return "", Token{}, err
	}
	if !expires.IsZero() && !expires.After(now) {
		return "", Token{}, fmt.Errorf("%w: expiry %s is not in the future", ErrInvalid, expires.UTC().Format(time.RFC3339))
	}
	value, err := Generate()
	if err != nil {
		return "", Token{}, err
	}
	t := Token{Name: name, SHA256: Hash(value), Scope: scope, CreatedAt: now.UTC().Truncate(time.Second), ExpiresAt: expires.UTC().Truncate(time.Second)}
	err = s.update(now, func(ts []Token) ([]Token, error) {
		for _, o := range ts {
			if o.Name == name {
				return nil, fmt.Errorf("%w: %q", ErrExists, name)
			}
		}
		return append(ts, t), nil
	})
	if err != nil {
		return "", Token{}, err
	}
	return value, t, nil
}

// Revoke removes the token named name and returns it.
func (s *Set) Revoke(name string, now time.Time) (Token, error) {
	var gone Token
	err := s.update(now, func(ts []Token) ([]Token, error) {
		out := ts[:0:0]
		for _, o := range ts {
			if o.Name == name {
				gone = o
				continue
			}
			out = append(out, o)
		}
		if gone.Name == "" {
			return nil, fmt.Errorf("%w: no token named %q", ErrUnknown, name)
		}
		return out, nil
	})
	return gone, err
}

// update applies fn to the tokens under the file lock: re-read, change,
// write atomically (0600), so a change made by the CLI on the same file
// between two API calls is never lost.
func (s *Set) update(now time.Time, fn func([]Token) ([]Token, error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.path == "" {
		ts, err := fn(append([]Token(nil), s.tokens...))
		if err != nil {
			return err
		}
		s.tokens = ts
		return nil
	}
	unlock, err := lockFile(s.path + ".lock")
	if err != nil {
		return err
	}
	defer unlock()
	s.stat = fileStamp{} // force a read
	if err := s.reload(now); err != nil {
		return err
	}
	ts, err := fn(append([]Token(nil), s.tokens...))
	if err != nil {
		return err
	}
	if err := atomicfile.Write(s.path, Format(ts), 0o600); err != nil {
		return fmt.Errorf("%w: %w", ErrFile, err)
	}
	s.stat = fileStamp{}
	return s.reload(now)
}

func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%w: lock: %w", ErrFile, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: lock: %w", ErrFile, err)
	}
	return func() {
		_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
		f.Close()
	}, nil
}

// ParseLifetime reads a token lifetime: a Go duration ("720h") or a whole
// number of days ("90d"). "" and "0" mean no expiry.
func ParseLifetime(s string) (time.Duration, error) {
	if s == "" || s == "0" {
		return 0, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n int
		if _, err := fmt.Sscanf(days, "%d", &n); err != nil || n < 1 || n > 36500 || fmt.Sprint(n) != days {
			return 0, fmt.Errorf("%w: lifetime %q: want a whole number of days (90d) or a Go duration (720h)", ErrInvalid, s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%w: lifetime %q: want a whole number of days (90d) or a Go duration (720h)", ErrInvalid, s)
	}
	return d, nil
}
