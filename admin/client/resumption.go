package client

import (
	"context"

	"hardbound/admin"
)

// RotateTicketKeys makes the server replace its EAP-TLS ticket keys now
// (POST /api/v1/resumption/rotate-keys, scope admin): every ticket issued
// before stops resuming.
func (c *Client) RotateTicketKeys(ctx context.Context) (admin.TicketKeysResponse, error) {
	return post[admin.TicketKeysResponse](ctx, c, "/api/v1/resumption/rotate-keys", nil)
}
