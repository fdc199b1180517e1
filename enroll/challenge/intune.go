package challenge

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // Intune's certificateThumbprint is the Windows SHA-1 thumbprint, an identifier, not a security check.
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"hardbound/posture/mdm"
	"hardbound/posture/mdm/entra"
)

// Intune defaults (Microsoft's Intune-Resource-Access CsrValidation library).
const (
	DefaultIntuneResourceURL  = "https://api.manage.microsoft.com/"
	DefaultIntuneAPIVersion   = "2018-02-20"
	intuneAppID               = "0000000a-0000-0000-c000-000000000000"
	intuneValidationService   = "ScepRequestValidationFEService"
	intuneValidatePath        = "ScepActions/validateRequest"
	intuneSuccessPath         = "ScepActions/successNotification"
	intuneFailurePath         = "ScepActions/failureNotification"
	intuneMaxResponse         = 1 << 20
	intuneDefaultHTTPTimeout  = 30 * time.Second
	intuneFailureHResult      = 0x80004005 // E_FAIL: Intune shows it to the admin with our description
	intuneMaxErrorDescription = 255
)

// ErrIntuneRejected is wrapped by every *IntuneError: Intune answered and
// said no. Any other error (transport, auth, discovery) also means "do not
// issue", but is ours or Microsoft's, not the device's.
var ErrIntuneRejected = errors.New("challenge: intune rejected the request")

// IntuneError is an answer from the Intune SCEP service whose code is not
// Success. Code is Intune's (e.g. ChallengeExpired, SubjectNameMismatch);
// RequestID is the client-request-id for Microsoft support cases.
type IntuneError struct {
	Op            string
	Code          string
	Description   string
	TransactionID string
	RequestID     string
}

func (e *IntuneError) Error() string {
	return fmt.Sprintf("challenge: intune %s: code=%s transaction=%s client-request-id=%s: %s",
		e.Op, e.Code, e.TransactionID, e.RequestID, truncate(e.Description, 200))
}

// Unwrap lets errors.Is(err, ErrIntuneRejected) match.
func (e *IntuneError) Unwrap() error { return ErrIntuneRejected }

// IntuneConfig configures the Intune SCEP validation client. TenantID,
// ClientID and ClientSecret (an Entra app with the Intune application
// permission scep_challenge_provider, plus Graph access for discovery) are
// required. URLs default to Microsoft's public cloud; tests point them at a
// local server.
type IntuneConfig struct {
	TenantID     string
	ClientID     string
	ClientSecret string
	// LoginURL is the Entra authority (default entra.DefaultLoginURL); the
	// token endpoint is {LoginURL}/{TenantID}/oauth2/v2.0/token.
	LoginURL string
	// GraphURL (default entra.DefaultGraphURL) is used to discover the
	// ScepRequestValidationFEService endpoint, unless ValidationURL is set.
	GraphURL string
	// ValidationURL, if set, is the ScepRequestValidationFEService base URL
	// (no discovery).
	ValidationURL string
	// ResourceURL is the Intune token audience; scope = ResourceURL + "/.default".
	ResourceURL string
	APIVersion  string
	// CallerInfo names this CA to Intune (provider name and version).
	CallerInfo string
	// IssuerName is reported as issuingCertificateAuthority; default the
	// issued certificate's issuer DN.
	IssuerName string
	HTTPClient *http.Client
	Logger     *slog.Logger
}

// Intune validates Intune-minted SCEP challenges. It implements
// scep.Validator (Validate, NotifySuccess, NotifyFailure) and is safe for
// concurrent use.
type Intune struct {
	cfg  IntuneConfig
	app  *entra.App
	http *http.Client
	log  *slog.Logger
	// graphToken authorizes discovery, intuneToken the validation service.
	graphToken, intuneToken bearer

	mu       sync.Mutex
	endpoint string // discovered validation service URL
}

// NewIntune builds the client.
func NewIntune(cfg IntuneConfig) (*Intune, error) {
	app, err := entra.New(entra.Config{TenantID: cfg.TenantID, ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret,
		LoginURL: cfg.LoginURL, GraphURL: cfg.GraphURL})
	if err != nil {
		return nil, fmt.Errorf("%w: intune: %w", ErrConfig, err)
	}
	if cfg.ResourceURL == "" {
		cfg.ResourceURL = DefaultIntuneResourceURL
	}
	if cfg.APIVersion == "" {
		cfg.APIVersion = DefaultIntuneAPIVersion
	}
	if cfg.CallerInfo == "" {
		cfg.CallerInfo = "hardbound"
	}
	if cfg.ValidationURL != "" {
		pu, err := url.Parse(cfg.ValidationURL)
		if err != nil || (pu.Scheme != "https" && pu.Scheme != "http") || pu.Host == "" {
			return nil, fmt.Errorf("%w: intune: validation_url: not an absolute http(s) URL", ErrConfig)
		}
	}
	c := &Intune{cfg: cfg, app: app, http: cfg.HTTPClient, log: cfg.Logger}
	if c.http == nil {
		c.http = &http.Client{Timeout: intuneDefaultHTTPTimeout}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.log = c.log.With("component", "enroll", "provider", "intune")
	c.graphToken = newBearer(app, c.http, app.GraphScope())
	// The Intune resource ends in "/", so its scope has two: Entra's rule
	// for resource URIs with a trailing slash.
	c.intuneToken = newBearer(app, c.http, strings.TrimRight(cfg.ResourceURL, "/")+"//.default")
	return c, nil
}

// Validate asks Intune whether csrDER (carrying Intune's challenge blob) is
// a request Intune expects. Any error means: do not issue.
func (c *Intune) Validate(ctx context.Context, transactionID string, csrDER []byte) error {
	body := map[string]any{"request": map[string]any{
		"transactionId":      transactionID,
		"certificateRequest": base64.StdEncoding.EncodeToString(csrDER),
		"callerInfo":         c.cfg.CallerInfo,
	}}
	return c.post(ctx, "validateRequest", intuneValidatePath, transactionID, body)
}

// NotifySuccess reports the issued certificate. If it fails, the
// certificate must not be handed out.
func (c *Intune) NotifySuccess(ctx context.Context, transactionID string, csrDER []byte, cert *x509.Certificate) error {
	thumb := sha1.Sum(cert.Raw) //nolint:gosec // see import comment
	issuer := c.cfg.IssuerName
	if issuer == "" {
		issuer = cert.Issuer.String()
	}
	body := map[string]any{"notification": map[string]any{
		"transactionId":                transactionID,
		"certificateRequest":           base64.StdEncoding.EncodeToString(csrDER),
		"certificateThumbprint":        strings.ToUpper(hex.EncodeToString(thumb[:])),
		"certificateSerialNumber":      strings.ToUpper(cert.SerialNumber.Text(16)),
		"certificateExpirationDateUtc": cert.NotAfter.UTC().Format("2006-01-02T15:04:05.000Z"),
		"issuingCertificateAuthority":  issuer,
		"callerInfo":                   c.cfg.CallerInfo,
	}}
	return c.post(ctx, "successNotification", intuneSuccessPath, transactionID, body)
}

// NotifyFailure reports that no certificate was issued, with hardbound's
// reason as the description the Intune admin sees.
func (c *Intune) NotifyFailure(ctx context.Context, transactionID string, csrDER []byte, reason string) error {
	desc := truncate("hardbound refused the request: "+reason, intuneMaxErrorDescription)
	body := map[string]any{"notification": map[string]any{
		"transactionId":      transactionID,
		"certificateRequest": base64.StdEncoding.EncodeToString(csrDER),
		"hResult":            intuneFailureHResult,
		"errorDescription":   desc,
		"callerInfo":         c.cfg.CallerInfo,
	}}
	return c.post(ctx, "failureNotification", intuneFailurePath, transactionID, body)
}

// intuneResult is the service's answer body.
type intuneResult struct {
	Code             string `json:"code"`
	ErrorDescription string `json:"errorDescription"`
}

func (c *Intune) post(ctx context.Context, op, path, transactionID string, body any) error {
	if transactionID == "" {
		return fmt.Errorf("challenge: intune %s: empty transactionId", op)
	}
	base, err := c.serviceURL(ctx)
	if err != nil {
		return err
	}
	b, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("challenge: intune %s: %w", op, err)
	}
	reqID := newUUID()
	resp, err := c.send(ctx, c.intuneToken, func(tok string) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(base, "/")+"/"+path, bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
		req.Header.Set("api-version", c.cfg.APIVersion)
		req.Header.Set("client-request-id", reqID)
		return req, nil
	})
	var te *tokenError
	if errors.As(err, &te) {
		return err
	}
	if err != nil {
		c.forgetEndpoint()
		return fmt.Errorf("challenge: intune %s (client-request-id %s): %w", op, reqID, err)
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, intuneMaxResponse))
	if err != nil {
		return fmt.Errorf("challenge: intune %s (client-request-id %s): read: %w", op, reqID, err)
	}
	if resp.StatusCode/100 != 2 {
		// The service may have moved; rediscover next time.
		c.forgetEndpoint()
		return fmt.Errorf("challenge: intune %s (client-request-id %s): HTTP %d: %s", op, reqID, resp.StatusCode, truncate(string(rb), 200))
	}
	var res intuneResult
	if err := json.Unmarshal(rb, &res); err != nil {
		return fmt.Errorf("challenge: intune %s (client-request-id %s): decode answer: %w", op, reqID, err)
	}
	if res.Code != "Success" {
		code := res.Code
		if code == "" {
			code = "Missing"
		}
		return &IntuneError{Op: op, Code: truncate(code, 64), Description: res.ErrorDescription, TransactionID: transactionID, RequestID: reqID}
	}
	c.log.Info("Intune "+op+" ok", "transaction_id", transactionID, "client_request_id", reqID)
	return nil
}

// serviceURL returns the validation service base URL, discovering it via
// Graph (servicePrincipals/appId=<Intune>/endpoints) when not configured.
func (c *Intune) serviceURL(ctx context.Context) (string, error) {
	if c.cfg.ValidationURL != "" {
		return c.cfg.ValidationURL, nil
	}
	c.mu.Lock()
	ep := c.endpoint
	c.mu.Unlock()
	if ep != "" {
		return ep, nil
	}
	u := c.app.GraphURL() + "/v1.0/servicePrincipals/appId=" + intuneAppID + "/endpoints"
	resp, err := c.send(ctx, c.graphToken, func(tok string) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("client-request-id", newUUID())
		return req, nil
	})
	var te *tokenError
	if errors.As(err, &te) {
		return "", err
	}
	if err != nil {
		return "", fmt.Errorf("challenge: intune discovery: %w", err)
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, intuneMaxResponse))
	if err != nil {
		return "", fmt.Errorf("challenge: intune discovery: read: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("challenge: intune discovery: HTTP %d: %s", resp.StatusCode, truncate(string(rb), 200))
	}
	var list struct {
		Value []struct {
			ProviderName string `json:"providerName"`
			ServiceName  string `json:"serviceName"`
			URI          string `json:"uri"`
		} `json:"value"`
	}
	if err := json.Unmarshal(rb, &list); err != nil {
		return "", fmt.Errorf("challenge: intune discovery: decode: %w", err)
	}
	for _, e := range list.Value {
		if strings.EqualFold(e.ProviderName, intuneValidationService) || strings.EqualFold(e.ServiceName, intuneValidationService) {
			pu, err := url.Parse(e.URI)
			if err != nil || pu.Scheme != "https" && pu.Scheme != "http" || pu.Host == "" {
				return "", fmt.Errorf("challenge: intune discovery: bad endpoint URI %q", truncate(e.URI, 100))
			}
			c.mu.Lock()
			c.endpoint = e.URI
			c.mu.Unlock()
			return e.URI, nil
		}
	}
	return "", fmt.Errorf("challenge: intune discovery: no %s endpoint among %d", intuneValidationService, len(list.Value))
}

func (c *Intune) forgetEndpoint() {
	c.mu.Lock()
	c.endpoint = ""
	c.mu.Unlock()
}

// send sends the request mk builds around a bearer token from b. A 401
// means the token expired or was revoked early: it is dropped and the
// request sent once more with a new one (Microsoft's services answer 401
// before acting on the request).
func (c *Intune) send(ctx context.Context, b bearer, mk func(token string) (*http.Request, error)) (*http.Response, error) {
	for retried := false; ; retried = true {
		tok, err := b.token(ctx)
		if err != nil {
			return nil, err
		}
		req, err := mk(tok)
		if err != nil {
			return nil, err
		}
		resp, err := c.http.Do(req)
		if err != nil || resp.StatusCode != http.StatusUnauthorized || retried {
			return resp, err
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, intuneMaxResponse))
		resp.Body.Close()
		b.Drop()
	}
}

// bearer is the token for one scope; its errors name the scope.
type bearer struct {
	*mdm.Bearer
	scope string
}

func newBearer(app *entra.App, hc *http.Client, scope string) bearer {
	return bearer{scope: scope, Bearer: app.Bearer(scope, hc)}
}

func (b bearer) token(ctx context.Context) (string, error) {
	tok, err := b.Token(ctx)
	if err != nil {
		return "", &tokenError{scope: b.scope, err: err}
	}
	return tok, nil
}

// tokenError is a failed token fetch. Its message carries the HTTP status
// and OAuth error code only: Entra's error_description can echo the
// request, and a body is the server's text, of any length. Unwrap still
// reaches x/oauth2's *RetrieveError.
type tokenError struct {
	scope string
	err   error
}

func (e *tokenError) Error() string {
	var re *oauth2.RetrieveError
	if !errors.As(e.err, &re) {
		return fmt.Sprintf("challenge: intune token for %s: %v", e.scope, e.err)
	}
	return fmt.Sprintf("challenge: intune token for %s: HTTP %d error=%q", e.scope, re.Response.StatusCode, truncate(re.ErrorCode, 64))
}

func (e *tokenError) Unwrap() error { return e.err }

// newUUID returns a random (version 4) UUID for client-request-id.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
