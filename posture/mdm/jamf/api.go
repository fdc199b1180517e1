package jamf

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrLookupUnsupported is returned by a GroupLookup that cannot answer for a
// device type; the handler then trusts the webhook's own membership data.
var ErrLookupUnsupported = errors.New("jamf: group lookup not supported for this device type")

// APIConfig configures APIClient.
type APIConfig struct {
	// BaseURL is the Jamf Pro origin, e.g. https://example.jamfcloud.com.
	BaseURL string
	// ClientID and ClientSecret are a Jamf Pro API client (Jamf Pro 10.49+)
	// with "Read Computers" privilege.
	ClientID     string
	ClientSecret string
	HTTPClient   *http.Client
	Now          func() time.Time
}

// APIClient is a GroupLookup over the Jamf Pro API:
// GET /api/v1/computers-inventory/{id}?section=GROUP_MEMBERSHIPS, with an
// OAuth client-credentials token from POST /api/oauth/token. Mobile devices
// are not looked up (ErrLookupUnsupported).
type APIClient struct {
	cfg    APIConfig
	mu     sync.Mutex
	token  string
	expiry time.Time
}

// NewAPIClient validates cfg.
func NewAPIClient(cfg APIConfig) (*APIClient, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("jamf: api base_url %q: must be an absolute http(s) URL", cfg.BaseURL)
	}
	if cfg.ClientID == "" || cfg.ClientSecret == "" {
		return nil, errors.New("jamf: api client_id and client_secret are required")
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &APIClient{cfg: cfg}, nil
}

const maxAPIBody = 4 << 20

// Groups implements GroupLookup.
func (c *APIClient) Groups(ctx context.Context, t DeviceType, jssID int) ([]Group, error) {
	if t != Computer {
		return nil, ErrLookupUnsupported
	}
	if jssID <= 0 {
		return nil, fmt.Errorf("jamf: api: invalid computer id %d", jssID)
	}
	for refreshed := false; ; refreshed = true {
		tok, err := c.accessToken(ctx)
		if err != nil {
			return nil, err
		}
		endpoint := c.cfg.BaseURL + "/api/v1/computers-inventory/" + strconv.Itoa(jssID) + "?section=GROUP_MEMBERSHIPS"
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
		if err != nil {
			return nil, fmt.Errorf("jamf: api: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Accept", "application/json")
		body, status, err := c.do(req)
		if err != nil {
			return nil, err
		}
		if status == http.StatusUnauthorized && !refreshed {
			c.mu.Lock()
			c.token = ""
			c.mu.Unlock()
			continue
		}
		if status != http.StatusOK {
			return nil, fmt.Errorf("jamf: api: computers-inventory/%d: HTTP %d", jssID, status)
		}
		return parseGroupMemberships(body)
	}
}

// parseGroupMemberships reads ComputerInventory.groupMemberships
// ([{groupId: string, groupName, smartGroup}]).
func parseGroupMemberships(body []byte) ([]Group, error) {
	var inv struct {
		GroupMemberships []struct {
			GroupID   flexInt `json:"groupId"`
			GroupName string  `json:"groupName"`
		} `json:"groupMemberships"`
	}
	if err := json.Unmarshal(body, &inv); err != nil {
		return nil, fmt.Errorf("%w: computer inventory: %v", ErrMalformed, err)
	}
	if inv.GroupMemberships == nil {
		return nil, fmt.Errorf("%w: computer inventory without groupMemberships", ErrMalformed)
	}
	out := make([]Group, 0, len(inv.GroupMemberships))
	for _, g := range inv.GroupMemberships {
		out = append(out, Group{ID: int(g.GroupID), Name: g.GroupName})
	}
	return out, nil
}

func (c *APIClient) accessToken(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token != "" && c.cfg.Now().Before(c.expiry) {
		return c.token, nil
	}
	form := url.Values{}
	form.Set("grant_type", "client_credentials")
	form.Set("client_id", c.cfg.ClientID)
	form.Set("client_secret", c.cfg.ClientSecret)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.BaseURL+"/api/oauth/token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", fmt.Errorf("jamf: api token: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	body, status, err := c.do(req)
	if err != nil {
		return "", err
	}
	if status != http.StatusOK {
		return "", fmt.Errorf("jamf: api token: HTTP %d", status)
	}
	var tr struct {
		AccessToken string      `json:"access_token"`
		ExpiresIn   json.Number `json:"expires_in"`
	}
	if err := json.Unmarshal(body, &tr); err != nil || tr.AccessToken == "" {
		return "", fmt.Errorf("%w: token response", ErrMalformed)
	}
	secs, err := tr.ExpiresIn.Int64()
	if err != nil || secs <= 0 {
		secs = 60
	}
	life := time.Duration(secs) * time.Second
	c.token, c.expiry = tr.AccessToken, c.cfg.Now().Add(life-life/5)
	return c.token, nil
}

func (c *APIClient) do(req *http.Request) ([]byte, int, error) {
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("jamf: api %s: %w", req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAPIBody+1))
	if err != nil {
		return nil, 0, fmt.Errorf("jamf: api %s: %w", req.URL.Path, err)
	}
	if len(body) > maxAPIBody {
		return nil, 0, fmt.Errorf("%w: api body exceeds %d bytes", ErrMalformed, maxAPIBody)
	}
	return body, resp.StatusCode, nil
}
