// Package entra is what the Intune compliance poller (posture/mdm/intune)
// and Intune SCEP challenge validation (enroll/challenge) share about
// Microsoft Entra ID: an app registration's client credentials in one
// tenant, the tenant's v2.0 token endpoint, and the Microsoft Graph origin.
// Both callers build an App from their own configuration and take their
// bearer tokens (posture/mdm.Bearer) from it.
package entra

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"hardbound/posture/mdm"
)

// Public-cloud origins; national clouds and tests configure their own.
const (
	DefaultLoginURL = "https://login.microsoftonline.com"
	DefaultGraphURL = "https://graph.microsoft.com"
)

// ErrConfig is wrapped by every error of New.
var ErrConfig = errors.New("entra: invalid configuration")

// Config is an Entra app registration holding a client secret.
type Config struct {
	TenantID     string
	ClientID     string
	ClientSecret string
	// LoginURL is the authority's origin (default DefaultLoginURL); the
	// token endpoint is {LoginURL}/{TenantID}/oauth2/v2.0/token.
	LoginURL string
	// GraphURL is Microsoft Graph's origin (default DefaultGraphURL).
	GraphURL string
}

// App is a checked Config. It is immutable and safe for concurrent use.
type App struct {
	cfg   Config // defaults filled in, trailing slashes trimmed
	graph *url.URL
}

// New checks cfg: the tenant, client id and secret are required, the
// tenant must stay one path segment of the token URL, and both URLs must be
// absolute http(s) URLs.
func New(cfg Config) (*App, error) {
	switch {
	case cfg.TenantID == "" || cfg.ClientID == "" || cfg.ClientSecret == "":
		return nil, fmt.Errorf("%w: tenant_id, client_id and client_secret are required", ErrConfig)
	case strings.ContainsAny(cfg.TenantID, "/?#"):
		// PathEscape would keep it in its segment, but no tenant id or
		// domain has these: it is a mistake, better reported than sent.
		return nil, fmt.Errorf("%w: tenant_id %q: must not contain '/', '?' or '#'", ErrConfig, cfg.TenantID)
	}
	if cfg.LoginURL == "" {
		cfg.LoginURL = DefaultLoginURL
	}
	if cfg.GraphURL == "" {
		cfg.GraphURL = DefaultGraphURL
	}
	cfg.LoginURL = strings.TrimRight(cfg.LoginURL, "/")
	cfg.GraphURL = strings.TrimRight(cfg.GraphURL, "/")
	if _, err := absolute("login_url", cfg.LoginURL); err != nil {
		return nil, err
	}
	g, err := absolute("graph_url", cfg.GraphURL)
	if err != nil {
		return nil, err
	}
	return &App{cfg: cfg, graph: g}, nil
}

func absolute(field, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("%w: %s %q: must be an absolute http(s) URL", ErrConfig, field, raw)
	}
	return u, nil
}

// TokenURL is the tenant's OAuth 2.0 v2.0 token endpoint.
func (a *App) TokenURL() string {
	return a.cfg.LoginURL + "/" + url.PathEscape(a.cfg.TenantID) + "/oauth2/v2.0/token"
}

// GraphURL is Graph's origin, without a trailing slash.
func (a *App) GraphURL() string { return a.cfg.GraphURL }

// OnGraph reports whether u is on Graph's origin (same scheme and host),
// the only place Graph's bearer token may be sent.
func (a *App) OnGraph(u *url.URL) bool {
	return u.Scheme == a.graph.Scheme && u.Host == a.graph.Host
}

// GraphScope is the client-credentials scope of Graph: its application
// permissions, "{GraphURL}/.default".
func (a *App) GraphScope() string { return a.cfg.GraphURL + "/.default" }

// Bearer returns a token cache for scope whose fetches go over hc.
func (a *App) Bearer(scope string, hc *http.Client) *mdm.Bearer {
	return mdm.NewBearer(clientcredentials.Config{
		ClientID: a.cfg.ClientID, ClientSecret: a.cfg.ClientSecret,
		TokenURL: a.TokenURL(), Scopes: []string{scope},
		// Entra ID's v2.0 token endpoint documents the secret as a form field.
		AuthStyle: oauth2.AuthStyleInParams,
	}, hc)
}
