package client

import (
	"context"
	"net/url"
	"strconv"
	"strings"

	"hardbound/admin"
	"hardbound/store"
)

// Page selects one page of a listing: After is the cursor (the Next of
// the previous page), Limit the page size (0: the server's default).
type Page struct {
	After string
	Limit int
}

// query is the page's query with the filters of kv (name, value pairs);
// an empty value does not filter.
func (p Page) query(kv ...string) string {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			q.Set(kv[i], kv[i+1])
		}
	}
	if p.After != "" {
		q.Set("after", p.After)
	}
	if p.Limit > 0 {
		q.Set("limit", strconv.Itoa(p.Limit))
	}
	return q.Encode()
}

// on is a switch's query value: "true", or "" (no filter) when off.
func on(b bool) string {
	if b {
		return "true"
	}
	return ""
}

// DeviceFilter narrows GET /api/v1/devices; empty fields do not filter.
type DeviceFilter struct {
	Status, Compliance, Profile string
	Page
}

// Devices is one page of devices.
func (c *Client) Devices(ctx context.Context, f DeviceFilter) (admin.List[admin.Device], error) {
	return get[admin.List[admin.Device]](ctx, c, "/api/v1/devices?"+f.query("status", f.Status, "compliance", f.Compliance, "profile", f.Profile))
}

func devicePath(id string) string { return "/api/v1/devices/" + url.PathEscape(id) }

// Device is a device with its certificates and live sessions.
func (c *Client) Device(ctx context.Context, id string) (admin.DeviceDetail, error) {
	return get[admin.DeviceDetail](ctx, c, devicePath(id))
}

// DeviceAttestations are the device's attested facts against its
// profile's minimums; an error when the server does not serve the
// inventory.
func (c *Client) DeviceAttestations(ctx context.Context, id string) ([]admin.DeviceAttestation, error) {
	l, err := get[admin.List[admin.DeviceAttestation]](ctx, c, devicePath(id)+"/attestations")
	return l.Items, err
}

// DeviceWithAttestations is Device with its Attestations, which stay
// empty when the server does not serve the inventory (`hardbound device
// show` shows the device all the same).
func (c *Client) DeviceWithAttestations(ctx context.Context, id string) (admin.DeviceDetail, error) {
	d, err := c.Device(ctx, id)
	if err == nil {
		d.Attestations, _ = c.DeviceAttestations(ctx, id)
	}
	return d, err
}

// Quarantine quarantines a device (the server disconnects its sessions).
func (c *Client) Quarantine(ctx context.Context, id string) (admin.Device, error) {
	return post[admin.Device](ctx, c, devicePath(id)+"/quarantine", nil)
}

// Release ends a device's quarantine.
func (c *Client) Release(ctx context.Context, id string) (admin.Device, error) {
	return post[admin.Device](ctx, c, devicePath(id)+"/release", nil)
}

// RevokeDevice revokes a device and every certificate of it; reason is
// an RFC 5280 reason by name or code ("" unspecified).
func (c *Client) RevokeDevice(ctx context.Context, id, reason string) (admin.DeviceDetail, error) {
	return post[admin.DeviceDetail](ctx, c, devicePath(id)+"/revoke", admin.RevokeRequest{Reason: reason})
}

// SetPosture sets a device's compliance by hand.
func (c *Client) SetPosture(ctx context.Context, id string, state store.Compliance) (admin.Device, error) {
	return post[admin.Device](ctx, c, devicePath(id)+"/posture", admin.PostureRequest{State: state})
}

// CertFilter narrows GET /api/v1/certs.
type CertFilter struct {
	Device  string
	Revoked bool
	Page
}

// Certs is one page of certificates.
func (c *Client) Certs(ctx context.Context, f CertFilter) (admin.List[admin.Cert], error) {
	return get[admin.List[admin.Cert]](ctx, c, "/api/v1/certs?"+f.query("device", f.Device, "revoked", on(f.Revoked)))
}

// RevokeCert revokes a certificate by its hex serial (a 0x prefix and
// upper case are accepted).
func (c *Client) RevokeCert(ctx context.Context, serial, reason string) (admin.Cert, error) {
	serial = strings.ToLower(strings.TrimPrefix(serial, "0x"))
	return post[admin.Cert](ctx, c, "/api/v1/certs/"+url.PathEscape(serial)+"/revoke", admin.RevokeRequest{Reason: reason})
}

// SessionFilter narrows GET /api/v1/sessions; All includes stopped
// sessions.
type SessionFilter struct {
	Device string
	All    bool
	Page
}

// Sessions is one page of accounting sessions.
func (c *Client) Sessions(ctx context.Context, f SessionFilter) (admin.List[admin.Session], error) {
	return get[admin.List[admin.Session]](ctx, c, "/api/v1/sessions?"+f.query("device", f.Device, "all", on(f.All)))
}

// IssueChallenge mints a one-time SCEP challenge.
func (c *Client) IssueChallenge(ctx context.Context, req admin.ChallengeRequest) (admin.ChallengeResponse, error) {
	return post[admin.ChallengeResponse](ctx, c, "/api/v1/scep/challenges", req)
}

// CreateToken makes an admin token; its value is in the answer only.
func (c *Client) CreateToken(ctx context.Context, req admin.TokenRequest) (admin.TokenCreated, error) {
	return post[admin.TokenCreated](ctx, c, "/api/v1/tokens", req)
}

// Tokens lists the tokens, without their values.
func (c *Client) Tokens(ctx context.Context) (admin.List[admin.TokenInfo], error) {
	return get[admin.List[admin.TokenInfo]](ctx, c, "/api/v1/tokens")
}

// RevokeToken revokes a token by name.
func (c *Client) RevokeToken(ctx context.Context, name string) error {
	return c.Do(ctx, "POST", "/api/v1/tokens/"+url.PathEscape(name)+"/revoke", nil, nil)
}
