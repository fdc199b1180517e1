package main

import (
	"bytes"
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
)

type clientFlags struct {
	server    string
	tokenFile string
	caFile    string
	json      bool
}

func (cf *clientFlags) pick(flag, envName, def string, e *env) string {
	if flag != "" {
		return flag
	}
	if v := e.getenv(envName); v != "" {
		return v
	}
	return def
}

// apiClient talks to the admin API of a running server.
type apiClient struct {
	base   string
	token  string
	caFile string // the CA bundle the server was verified with
	http   *http.Client
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
func userConfigDir(e *env) string {
	if x := e.getenv("XDG_CONFIG_HOME"); x != "" {
		return filepath.Join(x, "hardbound")
	}
	if h := e.getenv("HOME"); h != "" {
		return filepath.Join(h, ".config", "hardbound")
	}
	return filepath.Join(".config", "hardbound")
}

// client builds the admin API client. Each setting is the flag, else its
// environment variable, else the first file that exists of ./data (a
// `make run` checkout) and the user's config directory (docs/admin.md).
func (cf *clientFlags) client(e *env) (*apiClient, error) {
	server := strings.TrimRight(cf.pick(cf.server, "HARDBOUND_SERVER", "https://127.0.0.1:9443", e), "/")
	ucd := userConfigDir(e)
	tokenFile := cf.pick(cf.tokenFile, "HARDBOUND_TOKEN_FILE", discover("./data/admin.token", filepath.Join(ucd, "token")), e)
	caFile := cf.pick(cf.caFile, "HARDBOUND_CA_FILE", discover("./data/ca/root.crt", filepath.Join(ucd, "ca.crt")), e)
	tok, err := os.ReadFile(tokenFile)
	if err != nil {
		return nil, fmt.Errorf("admin token: %w (set --token-file or HARDBOUND_TOKEN_FILE)", err)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("admin CA: %w (set --ca-file or HARDBOUND_CA_FILE)", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("admin CA: %s holds no PEM certificate", caFile)
	}
	return &apiClient{
		base:   server,
		caFile: caFile,
		token:  strings.TrimSpace(string(tok)),
		http: &http.Client{
			Timeout:   30 * time.Second,
			Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
		},
	}, nil
}

// call makes one admin API request with a client built from the flags.
func (cf *clientFlags) call(ctx context.Context, e *env, method, path string, body, out any) error {
	c, err := cf.client(e)
	if err != nil {
		return err
	}
	return c.do(ctx, method, path, body, out)
}

// do sends a request and decodes the JSON answer into out (if non-nil).
func (c *apiClient) do(ctx context.Context, method, path string, body, out any) error {
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
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
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
