// Package client is a typed Go client of hardbound's admin API (package
// admin): it sends the API's request types and decodes its answers into
// the API's own types. The CLI is built on it; the printers of its answers
// are in admin/client/table.
package client

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"hardbound/admin"
	"hardbound/store/atomicfile"
)

// Settings say where the server is and how to authenticate to it. The
// CLI's flags set them; Resolve fills in the rest.
type Settings struct {
	// Server is the admin API's base URL.
	Server string
	// TokenFile holds the bearer token; CAFile the PEM bundle the admin
	// listener's certificate is verified with.
	TokenFile, CAFile string
}

// Resolve fills each setting s leaves empty from its environment variable
// (HARDBOUND_SERVER, HARDBOUND_TOKEN_FILE, HARDBOUND_CA_FILE), else the
// first file that exists of ./data (a `make run` checkout) and the user's
// config directory (docs/admin.md).
func (s Settings) Resolve(getenv func(string) string) Settings {
	ucd := userConfigDir(getenv)
	return Settings{
		Server:    cmp.Or(s.Server, getenv("HARDBOUND_SERVER"), "https://127.0.0.1:9443"),
		TokenFile: cmp.Or(s.TokenFile, getenv("HARDBOUND_TOKEN_FILE"), discover("./data/admin.token", filepath.Join(ucd, "token"))),
		CAFile:    cmp.Or(s.CAFile, getenv("HARDBOUND_CA_FILE"), discover("./data/ca/root.crt", filepath.Join(ucd, "ca.crt"))),
	}
}

// discover returns the first of paths that exists, else the first: the
// CLI's defaults work in a checkout (./data of `make run`) and anywhere
// else once the files are in the user's config directory.
func discover(paths ...string) string {
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return paths[0]
}

// userConfigDir is $XDG_CONFIG_HOME/hardbound, else ~/.config/hardbound.
func userConfigDir(getenv func(string) string) string {
	if x := getenv("XDG_CONFIG_HOME"); x != "" {
		return filepath.Join(x, "hardbound")
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".config", "hardbound")
	}
	return filepath.Join(".config", "hardbound")
}

// Client talks to the admin API of a running server.
type Client struct {
	base   string
	token  string
	caFile string
	http   *http.Client
}

// New reads the token and the CA bundle the settings name. The errors say
// which flag or variable sets the file that is missing.
func New(s Settings) (*Client, error) {
	tok, err := os.ReadFile(s.TokenFile)
	if err != nil {
		return nil, fmt.Errorf("admin token: %w (set --token-file or HARDBOUND_TOKEN_FILE)", err)
	}
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		return nil, fmt.Errorf("admin CA: %w (set --ca-file or HARDBOUND_CA_FILE)", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("admin CA: %s holds no PEM certificate", s.CAFile)
	}
	return &Client{
		base:   strings.TrimRight(s.Server, "/"),
		caFile: s.CAFile,
		token:  strings.TrimSpace(string(tok)),
		http: &http.Client{
			Timeout:   30 * time.Second,
			Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
		},
	}, nil
}

// SaveToken writes a token's value to path (0600, its directory created
// 0700 as needed), as New reads it back from Settings.TokenFile.
func SaveToken(path, value string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return atomicfile.Write(path, []byte(value+"\n"), 0o600)
}

// CAFile is the CA bundle the server was verified with (the root of the
// server's CA, which test devices' chains end in too).
func (c *Client) CAFile() string { return c.caFile }

// maxAnswer bounds an answer read into memory (exports stream instead).
const maxAnswer = 64 << 20

// Do sends one request, body (if not nil) as JSON, and decodes the JSON
// answer into out (if not nil). An error status is an error naming the
// server's message and the status.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("admin API: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("admin API: %w", err)
	}
	if resp.StatusCode >= 300 {
		var eb admin.ErrorBody
		if json.Unmarshal(b, &eb) == nil && eb.Error != "" {
			return fmt.Errorf("server: %s (HTTP %d)", eb.Error, resp.StatusCode)
		}
		return fmt.Errorf("server: HTTP %d", resp.StatusCode)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("admin API: bad answer: %w", err)
		}
	}
	return nil
}

// get and post are Do for one answer type.
func get[T any](ctx context.Context, c *Client, path string) (T, error) {
	var out T
	err := c.Do(ctx, http.MethodGet, path, nil, &out)
	return out, err
}

func post[T any](ctx context.Context, c *Client, path string, body any) (T, error) {
	var out T
	err := c.Do(ctx, http.MethodPost, path, body, &out)
	return out, err
}
