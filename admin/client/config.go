package client

import (
	"context"

	"hardbound/admin"
)

// ReloadConfig makes the server re-read its configuration file
// (POST /api/v1/config/reload, scope admin). A refused file is an error
// naming the file and its first problem; the server keeps running on the
// configuration it had.
func (c *Client) ReloadConfig(ctx context.Context) (admin.ReloadReport, error) {
	return post[admin.ReloadReport](ctx, c, "/api/v1/config/reload", nil)
}
