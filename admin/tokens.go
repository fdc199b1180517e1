package admin

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"hardbound/admin/token"
	"hardbound/store"
)

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) {
	now := s.now()
	ts, err := s.tokens.List(now)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, List[TokenInfo]{Items: each(ts, func(t token.Token) TokenInfo { return TokenInfoOf(t, now) })})
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) {
	const action = "token.create"
	var req TokenRequest
	err := decode(r, &req, false)
	var sc token.Scope
	var life time.Duration
	if err == nil {
		sc, err = token.ParseScope(req.Scope)
	}
	if err == nil {
		life, err = token.ParseLifetime(req.Expires)
	}
	if err != nil {
		s.refuse(w, r, action, req.Name, err)
		return
	}
	now := s.now()
	var exp time.Time
	if life > 0 {
		exp = now.Add(life)
	}
	v, t, err := s.tokens.Create(req.Name, sc, exp, now)
	if err != nil {
		s.refuse(w, r, action, req.Name, err)
		return
	}
	// The token file is not the store: the event follows the write.
	s.record(r.Context(), &store.AuditEvent{Actor: actorOf(r.Context()), Action: action, Subject: t.Name,
		Result: "ok", Reason: "scope=" + string(t.EffectiveScope()), Source: r.RemoteAddr})
	writeJSON(w, http.StatusCreated, TokenCreated{TokenInfo: TokenInfoOf(t, now), Token: v})
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) {
	const action = "token.revoke"
	name := r.PathValue("name")
	t, err := s.tokens.Revoke(name, s.now())
	if err != nil {
		if errors.Is(err, token.ErrUnknown) {
			err = fmt.Errorf("%w: no token named %q", store.ErrNotFound, name)
		}
		s.refuse(w, r, action, name, err)
		return
	}
	s.record(r.Context(), &store.AuditEvent{Actor: actorOf(r.Context()), Action: action, Subject: t.Name,
		Result: "ok", Source: r.RemoteAddr})
	writeJSON(w, http.StatusOK, TokenInfoOf(t, s.now()))
}
