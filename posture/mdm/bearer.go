package mdm

import (
	"context"
	"net/http"
	"sync"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// Bearer caches one OAuth 2.0 client-credentials access token (RFC 6749
// §4.4), as the Jamf Pro API and Microsoft Entra ID (Graph, Intune) hand
// them out. Safe for concurrent use; fetches are serialized.
type Bearer struct {
	oauth clientcredentials.Config
	http  *http.Client

	mu  sync.Mutex // serializes fetches; guards tok
	tok *oauth2.Token
}

// NewBearer returns a Bearer that fetches with cfg over hc.
func NewBearer(cfg clientcredentials.Config, hc *http.Client) *Bearer {
	return &Bearer{oauth: cfg, http: hc}
}

// Token returns the cached token while x/oauth2 deems it valid (until 10 s
// before expires_in runs out), else fetches one under ctx: Config.Token
// rather than a long-lived TokenSource, which would run every refresh under
// the context of the call that created it. Errors are x/oauth2's; an
// answer from the token endpoint is an *oauth2.RetrieveError, whose
// description and body callers should not repeat (the server's words, of
// any length).
func (b *Bearer) Token(ctx context.Context) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.tok.Valid() {
		return b.tok.AccessToken, nil
	}
	tok, err := b.oauth.Token(context.WithValue(ctx, oauth2.HTTPClient, b.http))
	if err != nil {
		return "", err
	}
	b.tok = tok
	return tok.AccessToken, nil
}

// Drop forgets the token: the API answered 401, so it expired or was
// revoked early.
func (b *Bearer) Drop() {
	b.mu.Lock()
	b.tok = nil
	b.mu.Unlock()
}
