package acme

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
)

// signatureAlgorithms are the JWS algorithms accepted on requests
// (RFC 8555 §6.2: MUST support ES256, SHOULD support EdDSA; RS256 for
// clients with RSA account keys). MAC algorithms and "none" are refused by
// construction.
var signatureAlgorithms = []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.RS256, jose.EdDSA}

// jwsRequest is a parsed, not yet verified, ACME request body.
type jwsRequest struct {
	jws   *jose.JSONWebSignature
	url   string
	nonce string
	kid   string
	jwk   *jose.JSONWebKey
}

// parseJWS checks the shape RFC 8555 §6.2 demands of a request body: the
// flattened JSON serialization, one signature, no unprotected header, a
// protected header with alg, nonce, url and exactly one of jwk and kid. It
// verifies nothing cryptographic. It never panics on any input.
func parseJWS(body []byte) (*jwsRequest, *Problem) {
	var shape struct {
		Protected  *string         `json:"protected"`
		Payload    *string         `json:"payload"`
		Signature  *string         `json:"signature"`
		Header     json.RawMessage `json:"header"`
		Signatures json.RawMessage `json:"signatures"`
	}
	if err := json.Unmarshal(body, &shape); err != nil {
		return nil, malformed("request body is not a JSON object: %v", err)
	}
	if shape.Signatures != nil {
		return nil, malformed("JWS must use the flattened JSON serialization with one signature")
	}
	if shape.Header != nil {
		return nil, malformed("JWS unprotected header is not allowed")
	}
	if shape.Protected == nil || shape.Payload == nil || shape.Signature == nil {
		return nil, malformed("JWS needs protected, payload and signature")
	}
	jws, err := jose.ParseSignedJSON(string(body), signatureAlgorithms)
	if err != nil {
		var alg *jose.ErrUnexpectedSignatureAlgorithm
		if errors.As(err, &alg) {
			return nil, problem(ProblemBadSignatureAlgorithm, http.StatusBadRequest, "malformed",
				"JWS algorithm is not supported (use ES256, ES384, RS256 or EdDSA)")
		}
		return nil, malformed("JWS does not parse: %v", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, malformed("JWS must carry exactly one signature")
	}
	h := jws.Signatures[0].Protected
	req := &jwsRequest{jws: jws, nonce: h.Nonce, kid: h.KeyID, jwk: h.JSONWebKey}
	for k := range h.ExtraHeaders {
		switch k {
		case "url":
		case "b64", "crit":
			return nil, malformed("JWS header %q is not allowed", string(k))
		}
	}
	u, ok := h.ExtraHeaders["url"].(string)
	if !ok || u == "" {
		return nil, malformed("JWS protected header needs a url")
	}
	req.url = u
	if req.nonce == "" {
		return nil, problem(ProblemBadNonce, http.StatusBadRequest, "bad_nonce", "JWS protected header needs a nonce")
	}
	if (req.kid == "") == (req.jwk == nil) {
		return nil, malformed("JWS protected header needs exactly one of jwk and kid")
	}
	if req.jwk != nil {
		if p := checkAccountKey(req.jwk, h.Algorithm); p != nil {
			return nil, p
		}
	}
	return req, nil
}

// checkAccountKey accepts account keys that match their algorithm and are
// strong enough: P-256/P-384 for ES256/ES384, RSA 2048..8192 for RS256,
// Ed25519 for EdDSA.
func checkAccountKey(k *jose.JSONWebKey, alg string) *Problem {
	bad := func(d string) *Problem {
		return problem(ProblemBadPublicKey, http.StatusBadRequest, "malformed", "%s", d)
	}
	switch key := k.Key.(type) {
	case *ecdsa.PublicKey:
		want := map[string]elliptic.Curve{"ES256": elliptic.P256(), "ES384": elliptic.P384()}[alg]
		if want == nil || key.Curve != want {
			return bad("ECDSA account key does not match the JWS algorithm")
		}
	case *rsa.PublicKey:
		if alg != "RS256" || key.N.BitLen() < 2048 || key.N.BitLen() > 8192 {
			return bad("RSA account key must be 2048..8192 bits with RS256")
		}
	case ed25519.PublicKey:
		if alg != "EdDSA" {
			return bad("Ed25519 account key needs alg EdDSA")
		}
	default:
		return bad("account key type is not supported")
	}
	return nil
}

// thumbprint is the RFC 7638 SHA-256 JWK thumbprint, base64url.
func thumbprint(k *jose.JSONWebKey) (string, error) {
	b, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// readBody reads at most max bytes; a larger body is a 413 problem.
func readBody(w http.ResponseWriter, r *http.Request, max int64) ([]byte, *Problem) {
	if ct := r.Header.Get("Content-Type"); !strings.EqualFold(strings.TrimSpace(strings.Split(ct, ";")[0]), "application/jose+json") {
		return nil, problem(ProblemMalformed, http.StatusUnsupportedMediaType, "malformed", "Content-Type must be application/jose+json")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, problem(ProblemMalformed, http.StatusRequestEntityTooLarge, "too_large", "request body exceeds %d bytes", max)
		}
		return nil, malformed("reading request body: %v", err)
	}
	return bytes.TrimSpace(body), nil
}

// decodePayload unmarshals a JSON payload strictly enough: it must be one
// JSON object; unknown fields are ignored as RFC 8555 requires.
func decodePayload(payload []byte, v any) *Problem {
	dec := json.NewDecoder(bytes.NewReader(payload))
	if err := dec.Decode(v); err != nil {
		return malformed("payload is not valid JSON: %v", err)
	}
	if dec.More() {
		return malformed("payload has trailing data")
	}
	return nil
}
