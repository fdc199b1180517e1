package ocsp

import (
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"

	xocsp "golang.org/x/crypto/ocsp"
)

// Handler serves OCSP over HTTP (RFC 6960 Appendix A) under prefix (e.g.
// "/ocsp"): POST prefix with an application/ocsp-request body, or GET
// prefix/<url-encoded base64 of the DER request>. Answers are always 200
// with an OCSPResponse (errors are OCSP statuses); cacheable answers carry
// the RFC 5019 §6 caching headers.
func (r *Responder) Handler(prefix string) http.Handler {
	prefix = strings.TrimRight(prefix, "/")
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var der []byte
		switch req.Method {
		case http.MethodGet:
			p := strings.TrimPrefix(req.URL.EscapedPath(), prefix)
			p = strings.TrimPrefix(p, "/")
			b64, err := url.PathUnescape(p)
			if err == nil {
				der, err = base64.StdEncoding.DecodeString(b64)
			}
			if err != nil || len(der) == 0 {
				writeOCSP(w, xocsp.MalformedRequestErrorResponse, false, r)
				return
			}
		case http.MethodPost:
			if ct := req.Header.Get("Content-Type"); ct != "" && !strings.EqualFold(strings.TrimSpace(strings.Split(ct, ";")[0]), "application/ocsp-request") {
				http.Error(w, "Content-Type must be application/ocsp-request", http.StatusUnsupportedMediaType)
				return
			}
			b, err := io.ReadAll(io.LimitReader(req.Body, MaxRequestBytes+1))
			if err != nil || len(b) > MaxRequestBytes {
				writeOCSP(w, xocsp.MalformedRequestErrorResponse, false, r)
				return
			}
			der = b
		default:
			w.Header().Set("Allow", "GET, POST")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		ip, _, err := net.SplitHostPort(req.RemoteAddr)
		if err != nil {
			ip = req.RemoteAddr
		}
		resp, cacheable := r.respond(req.Context(), der, ip)
		writeOCSP(w, resp, cacheable && req.Method == http.MethodGet, r)
	})
}

func writeOCSP(w http.ResponseWriter, resp []byte, cacheable bool, r *Responder) {
	h := w.Header()
	h.Set("Content-Type", "application/ocsp-response")
	if cacheable {
		// Not past the next refresh: a hold must reach HTTP caches then.
		h.Set("Cache-Control", fmt.Sprintf("max-age=%d, public, no-transform, must-revalidate", int(r.cfg.Refresh.Seconds())))
	} else {
		h.Set("Cache-Control", "no-store")
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(resp)
}
