package intune

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"hardbound/posture/mdm"
	"hardbound/posture/mdm/entra"
	"hardbound/store"
)

// Defaults.
const (
	DefaultInterval = 15 * time.Minute
	maxPageBody     = 32 << 20
	// maxDrain is read from a response that is retried, so that its
	// connection can be reused.
	maxDrain = 64 << 10
)

// Config configures the poller.
type Config struct {
	// Source names the connector (default "intune").
	Source       string
	TenantID     string
	ClientID     string
	ClientSecret string
	// LoginURL and GraphURL are the endpoints' origins (national clouds,
	// tests); defaults are the public cloud's (entra.DefaultLoginURL,
	// entra.DefaultGraphURL).
	LoginURL string
	GraphURL string
	// Interval between polls (default 15m).
	Interval time.Duration
	// PageSize is Graph's $top (default 999).
	PageSize int
	// Refresh re-reports an unchanged state once the last report is older
	// than Refresh. Zero reports changes only; set it below the profiles'
	// posture MaxAge, or posture.Decide will find Intune devices stale.
	Refresh time.Duration
	// MaxRetries per HTTP request on 429, 5xx and transport errors
	// (default 5); MaxBackoff caps one wait, Retry-After included (default 2m).
	MaxRetries int
	MaxBackoff time.Duration
	HTTPClient *http.Client
	Updater    mdm.Updater
	Metrics    mdm.Metrics
	Logger     *slog.Logger
	Now        func() time.Time
	// Sleep waits d or until ctx ends (tests replace it); default a timer.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Poller pulls compliance from Graph.
type Poller struct {
	cfg   Config
	log   *slog.Logger
	m     mdm.Metrics
	app   *entra.App
	token *mdm.Bearer

	mu   sync.Mutex // serializes polls; guards last
	last map[string]seen
}

type seen struct {
	state    store.Compliance
	device   string
	reported time.Time
}

// New validates cfg.
func New(cfg Config) (*Poller, error) {
	if cfg.Updater == nil {
		return nil, errors.New("intune: Updater is required")
	}
	app, err := entra.New(entra.Config{TenantID: cfg.TenantID, ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret,
		LoginURL: cfg.LoginURL, GraphURL: cfg.GraphURL})
	if err != nil {
		return nil, fmt.Errorf("intune: %w", err)
	}
	if cfg.Source == "" {
		cfg.Source = "intune"
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.PageSize <= 0 || cfg.PageSize > 999 {
		cfg.PageSize = 999
	}
	if cfg.MaxRetries <= 0 {
		cfg.MaxRetries = 5
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 2 * time.Minute
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 60 * time.Second}
	}
	if cfg.Metrics == nil {
		cfg.Metrics = mdm.NopMetrics{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Sleep == nil {
		cfg.Sleep = sleep
	}
	p := &Poller{
		cfg: cfg, app: app, m: cfg.Metrics,
		log:  cfg.Logger.With("component", "posture", "mdm", cfg.Source),
		last: make(map[string]seen),
	}
	// Token requests go through send too, so that Entra's throttling gets
	// the same backoff as Graph's.
	p.token = app.Bearer(app.GraphScope(), &http.Client{Transport: retrying{p}})
	return p, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run polls now and then every Interval until ctx ends. A failed poll is
// logged and counted; the next one starts from scratch.
func (p *Poller) Run(ctx context.Context) error {
	for {
		if st, err := p.PollOnce(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			p.log.Error("intune poll failed", "err", err, "devices_seen", st.Devices)
		}
		if err := p.cfg.Sleep(ctx, p.cfg.Interval); err != nil {
			return err
		}
	}
}

// Stats summarizes one poll.
type Stats struct {
	Devices   int // managed devices listed
	Reported  int // compliance reports sent (changes, refreshes, removals)
	Unchanged int
	Unknown   int // not enrolled in hardbound
	Removed   int // gone from Intune since the last complete poll: reported unknown
}

// PollOnce lists every managed device and reports those whose state changed.
func (p *Poller) PollOnce(ctx context.Context) (Stats, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	st, err := p.poll(ctx)
	result := "ok"
	if err != nil {
		result = "error"
	}
	p.m.Poll(p.cfg.Source, result)
	return st, err
}

func (p *Poller) poll(ctx context.Context) (Stats, error) {
	var st Stats
	q := url.Values{}
	q.Set("$select", "id,azureADDeviceId,serialNumber,complianceState")
	q.Set("$top", strconv.Itoa(p.cfg.PageSize))
	next := p.app.GraphURL() + "/v1.0/deviceManagement/managedDevices?" + q.Encode()
	listed := make(map[string]bool, len(p.last))
	for pages := 0; next != ""; pages++ {
		if pages >= 100_000 {
			return st, errors.New("intune: too many pages")
		}
		page, err := p.fetchPage(ctx, next)
		if err != nil {
			return st, err
		}
		for _, d := range page.Value {
			if d.ID == "" {
				continue
			}
			st.Devices++
			listed[d.ID] = true
			if err := p.observe(ctx, d, &st); err != nil {
				return st, err
			}
		}
		next = page.NextLink
	}
	// Only a complete listing proves a device is gone.
	for id, s := range p.last {
		if listed[id] {
			continue
		}
		delete(p.last, id)
		if s.state == store.ComplianceUnknown {
			continue
		}
		if err := p.report(ctx, s.device, store.ComplianceUnknown); err != nil {
			return st, err
		}
		st.Removed++
		st.Reported++
	}
	return st, nil
}

func (p *Poller) observe(ctx context.Context, d ManagedDevice, st *Stats) error {
	state := MapCompliance(d.ComplianceState)
	now := p.cfg.Now()
	if prev, ok := p.last[d.ID]; ok && prev.state == state &&
		(p.cfg.Refresh <= 0 || now.Sub(prev.reported) < p.cfg.Refresh) {
		st.Unchanged++
		return nil
	}
	dev, err := mdm.Resolve(ctx, p.cfg.Updater,
		mdm.Identity{Kind: mdm.KindIntuneID, Value: d.ID},
		mdm.Identity{Kind: mdm.KindAzureADID, Value: d.AzureADDeviceID},
		mdm.Identity{Kind: mdm.KindSerial, Value: d.SerialNumber})
	if errors.Is(err, mdm.ErrUnknownDevice) {
		st.Unknown++ // not enrolled here (yet): not cached, retried next poll
		return nil
	}
	if err != nil {
		return err
	}
	if err := p.report(ctx, dev, state); err != nil {
		return err
	}
	p.last[d.ID] = seen{state: state, device: dev, reported: now}
	st.Reported++
	return nil
}

func (p *Poller) report(ctx context.Context, dev string, state store.Compliance) error {
	if _, err := p.cfg.Updater.SetCompliance(ctx, dev, state, p.cfg.Source, "mdm:"+p.cfg.Source); err != nil {
		return fmt.Errorf("intune: set compliance of %s: %w", dev, err)
	}
	p.m.PostureChange(p.cfg.Source, state)
	return nil
}

// fetchPage GETs one page; the URL must be on the Graph origin.
func (p *Poller) fetchPage(ctx context.Context, raw string) (*Page, error) {
	u, err := url.Parse(raw)
	if err != nil || !p.app.OnGraph(u) {
		return nil, fmt.Errorf("%w: nextLink %q leaves the Graph origin %s", ErrMalformed, truncate(raw, 80), p.app.GraphURL())
	}
	for refreshed := false; ; refreshed = true {
		tok, err := p.accessToken(ctx)
		if err != nil {
			return nil, err
		}
		body, status, err := p.do(ctx, func() (*http.Request, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
			if err != nil {
				return nil, err
			}
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Accept", "application/json")
			return req, nil
		})
		if err != nil {
			return nil, err
		}
		if status == http.StatusUnauthorized && !refreshed {
			p.token.Drop() // expired or revoked early: get a new one once
			continue
		}
		if status != http.StatusOK {
			return nil, fmt.Errorf("intune: graph managedDevices: HTTP %d: %s", status, graphError(body))
		}
		return ParsePage(body)
	}
}

// do sends the request built by mk through send and returns the final
// status and body (capped at maxPageBody).
func (p *Poller) do(ctx context.Context, mk func() (*http.Request, error)) ([]byte, int, error) {
	resp, err := p.send(ctx, mk)
	if err != nil {
		return nil, 0, fmt.Errorf("intune: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxPageBody+1))
	if err != nil {
		return nil, 0, fmt.Errorf("intune: reading %s: %w", resp.Request.URL.Path, err)
	}
	if len(body) > maxPageBody {
		return nil, 0, fmt.Errorf("%w: body of %s exceeds %d bytes", ErrMalformed, resp.Request.URL.Path, maxPageBody)
	}
	return body, resp.StatusCode, nil
}

// send sends the request built by mk, retrying 429, 5xx and transport
// errors with exponential backoff that honours Retry-After. It returns the
// final response, whose body the caller closes.
func (p *Poller) send(ctx context.Context, mk func() (*http.Request, error)) (*http.Response, error) {
	backoff := time.Second
	for attempt := 0; ; attempt++ {
		req, err := mk()
		if err != nil {
			return nil, fmt.Errorf("request: %w", err)
		}
		resp, err := p.cfg.HTTPClient.Do(req)
		var wait time.Duration
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if attempt >= p.cfg.MaxRetries {
				return nil, err
			}
			wait = backoff
		} else {
			retryable := resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500
			if !retryable || attempt >= p.cfg.MaxRetries {
				return resp, nil
			}
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
			resp.Body.Close()
			wait = retryAfter(resp.Header.Get("Retry-After"), p.cfg.Now())
			if wait <= 0 {
				wait = backoff
			}
			p.log.Warn("graph throttled or failing; backing off", "status", resp.StatusCode, "wait", wait, "attempt", attempt+1)
		}
		wait = min(wait, p.cfg.MaxBackoff)
		if err := p.cfg.Sleep(ctx, wait); err != nil {
			return nil, err
		}
		backoff = min(backoff*2, p.cfg.MaxBackoff)
	}
}

// retrying is the token client's transport: each attempt of send replays
// the token request x/oauth2 built, on the configured HTTPClient.
type retrying struct{ p *Poller }

func (t retrying) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		req.Body.Close()
		if req.GetBody == nil {
			return nil, errors.New("intune: token request body cannot be replayed")
		}
	}
	resp, err := t.p.send(req.Context(), func() (*http.Request, error) {
		r := req.Clone(req.Context())
		if req.GetBody != nil {
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			r.Body = body
		}
		return r, nil
	})
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // the caller's http.Client names the request again
	}
	return resp, err
}

// retryAfter parses Retry-After as delta-seconds or an HTTP date (RFC 9110 §10.2.3).
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil {
		if n < 0 {
			return 0
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return t.Sub(now)
	}
	return 0
}

// accessToken is the cached or a new token, with the poller's errors.
func (p *Poller) accessToken(ctx context.Context) (string, error) {
	tok, err := p.token.Token(ctx)
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		// Status and OAuth error code only: error_description can echo
		// request details, and the body is the server's, of any length.
		return "", fmt.Errorf("intune: token endpoint: HTTP %d error %q", re.Response.StatusCode, truncate(re.ErrorCode, 64))
	}
	if err != nil {
		return "", fmt.Errorf("intune: token endpoint: %w", err)
	}
	return tok, nil
}

func graphError(body []byte) string {
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error.Code != "" {
		return truncate(e.Error.Code, 64)
	}
	return "no error code"
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
