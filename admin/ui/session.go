package ui

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"hardbound/admin/token"
	"hardbound/store"
)

const (
	sessionCookie = "hb_session"
	loginCookie   = "hb_login"
)

// session is one signed-in browser. Only the token's hash is kept, to
// re-check the token (revoked, expired) on every request.
type session struct {
	ID        string
	Name      string // the token's name
	Scope     token.Scope
	CSRF      string
	tokenHash [32]byte
	created   time.Time
	lastSeen  time.Time
}

// CanWrite reports whether the session may act (admin scope).
func (s *session) CanWrite() bool { return s.Scope == token.Admin }

// Actor is the audit actor of the session's changes.
func (s *session) Actor() string { return "admin:" + s.Name }

func random() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("ui: crypto/rand: " + err.Error()) // the platform's RNG failing is not recoverable
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func (c *Console) setCookie(w http.ResponseWriter, name, value string, maxAge time.Duration) {
	ck := &http.Cookie{Name: name, Value: value, Path: Prefix, HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode}
	if maxAge < 0 {
		ck.MaxAge = -1
	} else if maxAge > 0 {
		ck.MaxAge = int(maxAge / time.Second)
	}
	http.SetCookie(w, ck)
}

// current is the request's live session, nil if none. A session idle past
// the timeout, older than MaxAge, or whose token is gone or expired, ends.
func (c *Console) current(r *http.Request) *session {
	ck, err := r.Cookie(sessionCookie)
	if err != nil || ck.Value == "" {
		return nil
	}
	now := c.now()
	c.mu.Lock()
	s := c.sessions[ck.Value]
	if s != nil && (now.Sub(s.lastSeen) >= c.opt.IdleTimeout || now.Sub(s.created) >= c.opt.MaxAge) {
		delete(c.sessions, s.ID)
		s = nil
	}
	c.mu.Unlock()
	if s == nil {
		return nil
	}
	t, err := c.deps.Tokens.CheckHash(s.tokenHash, now)
	if err != nil || t.Name != s.Name || t.EffectiveScope() != s.Scope {
		c.mu.Lock()
		delete(c.sessions, s.ID)
		c.mu.Unlock()
		return nil
	}
	c.mu.Lock()
	s.lastSeen = now
	c.mu.Unlock()
	return s
}

// signedIn wraps a page that needs a session; write pages also need the
// admin scope. Every POST must carry the session's CSRF token in the form
// field "csrf", and a request whose Origin is another site's is refused
// even with it.
func (c *Console) signedIn(write bool, h func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := c.current(r)
		if s == nil {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/ui/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			c.record(r.Context(), &store.AuditEvent{Actor: "anonymous", Action: "console.request", Subject: r.Method + " " + r.URL.Path,
				Result: "denied", Reason: "no_session", Source: r.RemoteAddr})
			c.problem(w, r, nil, http.StatusUnauthorized, "Your session has ended. Sign in again.")
			return
		}
		if write && !s.CanWrite() {
			c.record(r.Context(), &store.AuditEvent{Actor: s.Actor(), Action: "console.request", Subject: r.Method + " " + r.URL.Path,
				Result: "denied", Reason: "scope", Source: r.RemoteAddr})
			c.problem(w, r, s, http.StatusForbidden, "A "+string(s.Scope)+" token may look but not act. Sign in with an admin token to do this.")
			return
		}
		if r.Method == http.MethodPost {
			if err := c.checkCSRF(r, s.CSRF); err != nil {
				c.record(r.Context(), &store.AuditEvent{Actor: s.Actor(), Action: "console.request", Subject: r.Method + " " + r.URL.Path,
					Result: "denied", Reason: "csrf", Source: r.RemoteAddr})
				c.problem(w, r, s, http.StatusForbidden, "This form was refused: "+err.Error()+". Reload the page and try again.")
				return
			}
		}
		h(w, r, s)
	}
}

var (
	errCSRF   = errors.New("its anti-forgery token is missing or wrong")
	errOrigin = errors.New("it came from another site")
)

// checkCSRF compares the form's token with want in constant time and
// refuses a cross-origin request (Origin or, without it, Referer of
// another host).
func (c *Console) checkCSRF(r *http.Request, want string) error {
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		if u, err := url.Parse(o); err != nil || u.Host != r.Host {
			return errOrigin
		}
	} else if ref := r.Header.Get("Referer"); ref != "" {
		if u, err := url.Parse(ref); err != nil || u.Host != r.Host {
			return errOrigin
		}
	}
	r.Body = http.MaxBytesReader(nil, r.Body, bodyLimit(r))
	got := r.PostFormValue("csrf")
	if got == "" || want == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return errCSRF
	}
	return nil
}

type loginData struct {
	Next string
}

// loginPage shows the sign-in form with a fresh login CSRF value, kept in
// a short-lived cookie (double submit): a sign-in cannot be forced on a
// browser by another site.
func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	if c.current(r) != nil {
		http.Redirect(w, r, "/ui/overview", http.StatusSeeOther)
		return
	}
	v := random()
	c.setCookie(w, loginCookie, v, 10*time.Minute)
	c.render(w, r, http.StatusOK, "login", page{Title: "Sign in", CSRF: v, Data: loginData{Next: safeNext(r.URL.Query().Get("next"))}})
}

// safeNext keeps a redirect target inside the console.
func safeNext(n string) string {
	if !strings.HasPrefix(n, Prefix) || strings.ContainsAny(n, "\\\r\n") {
		return "/ui/overview"
	}
	return n
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	fail := func(code int, reason, msg string, actor string) {
		c.record(r.Context(), &store.AuditEvent{Actor: actor, Action: "console.login", Subject: "console",
			Result: "denied", Reason: reason, Source: r.RemoteAddr})
		v := random()
		c.setCookie(w, loginCookie, v, 10*time.Minute)
		c.render(w, r, code, "login", page{Title: "Sign in", CSRF: v, Error: msg, Data: loginData{Next: safeNext(r.PostFormValue("next"))}})
	}
	ck, err := r.Cookie(loginCookie)
	if err != nil || c.checkCSRF(r, ck.Value) != nil {
		fail(http.StatusForbidden, "csrf", "The sign-in form had expired or came from another site. Try again.", "anonymous")
		return
	}
	if !c.logins.Allow() {
		fail(http.StatusTooManyRequests, "rate_limited", "Too many sign-in attempts. Wait a moment and try again.", "anonymous")
		return
	}
	now := c.now()
	value := r.PostFormValue("token")
	t, err := c.deps.Tokens.Check(value, now)
	switch {
	case errors.Is(err, token.ErrExpired):
		fail(http.StatusUnauthorized, "expired_token", "That token has expired.", "anonymous")
		return
	case err != nil:
		fail(http.StatusUnauthorized, "wrong_token", "Sign-in refused: that is not a valid token.", "anonymous")
		return
	case t.EffectiveScope() == token.Enroll:
		fail(http.StatusForbidden, "scope", "An enroll token is for devices and cannot use the console.", "admin:"+t.Name)
		return
	}
	s := &session{ID: random(), Name: t.Name, Scope: t.EffectiveScope(), CSRF: random(), tokenHash: token.Hash(value), created: now, lastSeen: now}
	c.mu.Lock()
	if len(c.sessions) >= c.opt.MaxSessions {
		var oldest *session
		for _, o := range c.sessions {
			if oldest == nil || o.lastSeen.Before(oldest.lastSeen) {
				oldest = o
			}
		}
		delete(c.sessions, oldest.ID)
	}
	c.sessions[s.ID] = s
	c.mu.Unlock()
	c.setCookie(w, loginCookie, "", -1)
	c.setCookie(w, sessionCookie, s.ID, 0)
	c.record(r.Context(), &store.AuditEvent{Actor: s.Actor(), Action: "console.login", Subject: "console",
		Result: "ok", Reason: "scope=" + string(s.Scope), Source: r.RemoteAddr})
	http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, s *session) {
	c.mu.Lock()
	delete(c.sessions, s.ID)
	c.mu.Unlock()
	c.setCookie(w, sessionCookie, "", -1)
	c.record(r.Context(), &store.AuditEvent{Actor: s.Actor(), Action: "console.logout", Subject: "console", Result: "ok", Source: r.RemoteAddr})
	v := random()
	c.setCookie(w, loginCookie, v, 10*time.Minute)
	c.render(w, r, http.StatusOK, "login", page{Title: "Sign in", CSRF: v, Notice: "You have signed out.", Data: loginData{Next: "/ui/overview"}})
}
