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
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"hardbound/posture/mdm"
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
}

// APIClient is a GroupLookup over the Jamf Pro API:
// GET /api/v1/computers-inventory/{id}?section=GROUP_MEMBERSHIPS, with an
// OAuth client-credentials token from POST /api/oauth/token. Mobile devices
// are not looked up (ErrLookupUnsupported).
type APIClient struct {
	cfg   APIConfig
	token *mdm.Bearer
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
	return &APIClient{cfg: cfg, token: mdm.NewBearer(clientcredentials.Config{
		ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret,
		TokenURL: cfg.BaseURL + "/api/oauth/token",
		// Jamf Pro documents client_id and client_secret as form fields.
		AuthStyle: oauth2.AuthStyleInParams,
	}, cfg.HTTPClient)}, nil
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
			c.token.Drop() // expired or revoked early: get a new one once
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

// accessToken is the cached or a new token, with Jamf's errors.
func (c *APIClient) accessToken(ctx context.Context) (string, error) {
	tok, err := c.token.Token(ctx)
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		// Status and OAuth error code only: the description and body are
		// the server's words, of any length.
		if re.ErrorCode == "" {
			return "", fmt.Errorf("jamf: api token: HTTP %d", re.Response.StatusCode)
		}
		return "", fmt.Errorf("jamf: api token: HTTP %d error %q", re.Response.StatusCode, re.ErrorCode[:min(len(re.ErrorCode), 64)])
	}
	if err != nil {
		return "", fmt.Errorf("jamf: api token: %w", err)
	}
	return tok, nil
}

func (c *APIClient) do(req *http.Request) ([]byte, int, error) {
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("jamf: api %s: %w", req.URL.Path, err)
	}
	return c.read(resp)
}

// read reads and closes a response body, capped at maxAPIBody.
func (c *APIClient) read(resp *http.Response) ([]byte, int, error) {
	req := resp.Request
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
