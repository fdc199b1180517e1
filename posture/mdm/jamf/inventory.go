package jamf

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"hardbound/posture/mdm"
	"hardbound/store/inventory"
	"hardbound/store/policy"
)

// GroupProfile maps membership of a Jamf computer group (smart or static,
// by name) to a hardbound profile.
type GroupProfile struct {
	Group   string `yaml:"group"`
	Profile string `yaml:"profile"`
}

// InventoryConfig says how Jamf's devices become inventory records.
type InventoryConfig struct {
	// DefaultProfile is the profile of a device no GroupProfiles entry
	// matches; empty: the default profile.
	DefaultProfile string
	// GroupProfiles are tried in order; the first group the computer is a
	// member of gives its profile.
	GroupProfiles []GroupProfile
	// MobileDevices also lists iPhones and iPads (Jamf Pro API
	// /api/v2/mobile-devices); they get DefaultProfile or MobileProfile.
	MobileDevices bool
	MobileProfile string
	// PageSize is Jamf's page-size (default 200, at most 2000).
	PageSize int
	// MaxRetries per request on 429, 5xx and transport errors (default
	// 5); the wait doubles from one second and honours Retry-After, capped
	// at MaxBackoff (default 1m).
	MaxRetries int
	MaxBackoff time.Duration
	// Sleep waits d or until ctx ends (tests replace it).
	Sleep func(ctx context.Context, d time.Duration) error
}

// Lister lists Jamf Pro's managed devices as inventory records
// (mdm.Lister): computers through GET /api/v1/computers-inventory with the
// GENERAL, HARDWARE, USER_AND_LOCATION and GROUP_MEMBERSHIPS sections,
// mobile devices through GET /api/v2/mobile-devices, page by page. A
// computer whose general.remoteManagement.managed is false is not listed:
// it left management, and its record leaves the inventory.
type Lister struct {
	api *APIClient
	cfg InventoryConfig
}

// Lister returns the inventory lister over this client (the API client
// needs "Read Computers" and, for MobileDevices, "Read Mobile Devices").
func (c *APIClient) Lister(cfg InventoryConfig) *Lister {
	if cfg.PageSize <= 0 || cfg.PageSize > 2000 {
		cfg.PageSize = 200
	}
	if cfg.MaxRetries <= 0 {
		cfg.MaxRetries = 5
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = time.Minute
	}
	if cfg.Sleep == nil {
		cfg.Sleep = func(ctx context.Context, d time.Duration) error {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return &Lister{api: c, cfg: cfg}
}

// maxPages bounds one listing (2000 x 10000 devices).
const maxPages = 10_000

type computersPage struct {
	TotalCount *int `json:"totalCount"`
	Results    []struct {
		ID      flexInt `json:"id"`
		UDID    string  `json:"udid"`
		General struct {
			Platform         string `json:"platform"`
			RemoteManagement *struct {
				Managed *bool `json:"managed"`
			} `json:"remoteManagement"`
		} `json:"general"`
		Hardware struct {
			SerialNumber string `json:"serialNumber"`
		} `json:"hardware"`
		UserAndLocation struct {
			Email string `json:"email"`
		} `json:"userAndLocation"`
		GroupMemberships []struct {
			GroupName string `json:"groupName"`
		} `json:"groupMemberships"`
	} `json:"results"`
}

type mobilePage struct {
	TotalCount *int `json:"totalCount"`
	Results    []struct {
		ID           flexInt `json:"id"`
		SerialNumber string  `json:"serialNumber"`
		UDID         string  `json:"udid"`
		Type         string  `json:"type"`
		Username     string  `json:"username"`
		// Managed is read when Jamf sends it; absent counts as managed.
		Managed *bool `json:"managed"`
	} `json:"results"`
}

// ListInventory implements mdm.Lister.
func (l *Lister) ListInventory(ctx context.Context) ([]inventory.Record, error) {
	var out []inventory.Record
	q := url.Values{"section": {"GENERAL", "HARDWARE", "USER_AND_LOCATION", "GROUP_MEMBERSHIPS"}, "sort": {"id:asc"}}
	err := l.pages(ctx, "/api/v1/computers-inventory", q, func(body []byte) (int, int, error) {
		var p computersPage
		if err := json.Unmarshal(body, &p); err != nil || p.TotalCount == nil || p.Results == nil {
			return 0, 0, fmt.Errorf("%w: computers-inventory page: want totalCount and results", ErrMalformed)
		}
		for _, c := range p.Results {
			if rm := c.General.RemoteManagement; rm != nil && rm.Managed != nil && !*rm.Managed {
				continue
			}
			r := inventory.Record{Platform: policy.PlatformMacOS, Serial: c.Hardware.SerialNumber, UDID: c.UDID,
				Owner: c.UserAndLocation.Email, Profile: l.cfg.DefaultProfile}
			if c.ID > 0 {
				r.Aliases = map[string]string{mdm.KindJamfComputerID: strconv.Itoa(int(c.ID))}
			}
			groups := make(map[string]bool, len(c.GroupMemberships))
			for _, g := range c.GroupMemberships {
				groups[g.GroupName] = true
			}
			for _, gp := range l.cfg.GroupProfiles {
				if groups[gp.Group] {
					r.Profile = gp.Profile
					break
				}
			}
			out = append(out, r)
		}
		return len(p.Results), *p.TotalCount, nil
	})
	if err != nil {
		return nil, err
	}
	if !l.cfg.MobileDevices {
		return out, nil
	}
	err = l.pages(ctx, "/api/v2/mobile-devices", url.Values{"sort": {"id:asc"}}, func(body []byte) (int, int, error) {
		var p mobilePage
		if err := json.Unmarshal(body, &p); err != nil || p.TotalCount == nil || p.Results == nil {
			return 0, 0, fmt.Errorf("%w: mobile-devices page: want totalCount and results", ErrMalformed)
		}
		for _, m := range p.Results {
			if m.Managed != nil && !*m.Managed {
				continue
			}
			platform, err := policy.NormalizePlatform(m.Type)
			if err != nil || policy.PlatformFormat(platform) != policy.FormatApple {
				platform = policy.PlatformIOS
			}
			r := inventory.Record{Platform: platform, Serial: m.SerialNumber, UDID: m.UDID, Owner: m.Username,
				Profile: l.cfg.DefaultProfile}
			if l.cfg.MobileProfile != "" {
				r.Profile = l.cfg.MobileProfile
			}
			if m.ID > 0 {
				r.Aliases = map[string]string{mdm.KindJamfMobileDeviceID: strconv.Itoa(int(m.ID))}
			}
			out = append(out, r)
		}
		return len(p.Results), *p.TotalCount, nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// pages GETs path page by page until the pages seen cover totalCount (or
// a page comes back empty); each calls parse, which returns the page's
// length and the total.
func (l *Lister) pages(ctx context.Context, path string, q url.Values, parse func([]byte) (n, total int, err error)) error {
	seen := 0
	for page := 0; page < maxPages; page++ {
		qq := url.Values{}
		for k, v := range q {
			qq[k] = v
		}
		qq.Set("page", strconv.Itoa(page))
		qq.Set("page-size", strconv.Itoa(l.cfg.PageSize))
		body, err := l.get(ctx, path+"?"+qq.Encode())
		if err != nil {
			return err
		}
		n, total, err := parse(body)
		if err != nil {
			return err
		}
		seen += n
		if n == 0 || seen >= total {
			return nil
		}
	}
	return fmt.Errorf("jamf: %s: more than %d pages", path, maxPages)
}

// get is one authenticated GET with the token refreshed once on 401 and
// retries with backoff on 429, 5xx and transport errors.
func (l *Lister) get(ctx context.Context, pathQuery string) ([]byte, error) {
	backoff := time.Second
	refreshed := false
	for attempt := 0; ; attempt++ {
		tok, err := l.api.accessToken(ctx)
		if err != nil {
			return nil, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.api.cfg.BaseURL+pathQuery, nil)
		if err != nil {
			return nil, fmt.Errorf("jamf: api: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Accept", "application/json")
		resp, err := l.api.cfg.HTTPClient.Do(req)
		var wait time.Duration
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if attempt >= l.cfg.MaxRetries {
				return nil, fmt.Errorf("jamf: api %s: %w", req.URL.Path, err)
			}
			wait = backoff
		default:
			body, status, rerr := l.api.read(resp)
			if rerr != nil {
				return nil, rerr
			}
			switch {
			case status == http.StatusOK:
				return body, nil
			case status == http.StatusUnauthorized && !refreshed:
				l.api.token.Drop()
				refreshed = true
				continue
			case (status == http.StatusTooManyRequests || status >= 500) && attempt < l.cfg.MaxRetries:
				wait = retryAfter(resp.Header.Get("Retry-After"))
				if wait <= 0 {
					wait = backoff
				}
			default:
				return nil, fmt.Errorf("jamf: api %s: HTTP %d", req.URL.Path, status)
			}
		}
		if err := l.cfg.Sleep(ctx, min(wait, l.cfg.MaxBackoff)); err != nil {
			return nil, err
		}
		backoff = min(backoff*2, l.cfg.MaxBackoff)
	}
}

func retryAfter(v string) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 {
		return 0
	}
	return time.Duration(n) * time.Second
}
