package jamf

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"strconv"

	"hardbound/posture/mdm"
	"hardbound/store"
)

// DefaultMaxBody caps webhook bodies: membership changes can list many
// devices, so the cap is larger than the generic webhook's.
const DefaultMaxBody = 1 << 20

// Group is a smart group a device belongs to.
type Group struct {
	ID   int
	Name string
}

// GroupLookup confirms a device's current smart-group membership through the
// Jamf Pro API: a webhook is a hint, the API confirms (docs/mdm.md §3).
type GroupLookup interface {
	Groups(ctx context.Context, t DeviceType, jssID int) ([]Group, error)
}

// Config configures the Jamf webhook handler. Either Username+Password
// (Jamf's "Basic Authentication" webhook option) or TokenHeader+Token (a
// header Jamf sends, e.g. via an authenticating proxy) is required; both
// may be set, and then either is accepted.
type Config struct {
	// Source names the connector (default "jamf").
	Source   string
	Username string
	Password string
	// TokenHeader/Token: the request must carry TokenHeader with exactly Token.
	TokenHeader string
	Token       string
	// NoncompliantGroups are smart-group ids (decimal) or names whose
	// members are noncompliant. Required.
	NoncompliantGroups []string
	// Lookup is optional; with it, every event is confirmed against the API.
	Lookup  GroupLookup
	MaxBody int64
	// InventoryHint, if set, is called for the events that change Jamf's
	// inventory (a device added, enrolled, unenrolled, or moved between
	// groups): the inventory sync then runs soon (mdm.InventorySync.Hint).
	InventoryHint func()
	Updater       mdm.Updater
	Auditor       mdm.Auditor
	Metrics       mdm.Metrics
	Logger        *slog.Logger
}

// Handler is the http.Handler for Jamf Pro webhooks.
type Handler struct {
	cfg    Config
	edge   *mdm.Edge
	ids    map[int]bool
	names  map[string]bool
	user   [32]byte
	pass   [32]byte
	token  [32]byte
	basic  bool
	header bool
}

// New validates cfg.
func New(cfg Config) (*Handler, error) {
	if cfg.Updater == nil {
		return nil, errors.New("jamf: Updater is required")
	}
	h := &Handler{ids: map[int]bool{}, names: map[string]bool{}}
	if cfg.Username != "" || cfg.Password != "" {
		if cfg.Username == "" || len(cfg.Password) < 12 {
			return nil, errors.New("jamf: basic auth needs a username and a password of at least 12 characters")
		}
		h.basic = true
		h.user, h.pass = sha256.Sum256([]byte(cfg.Username)), sha256.Sum256([]byte(cfg.Password))
	}
	if cfg.TokenHeader != "" || cfg.Token != "" {
		if cfg.TokenHeader == "" || len(cfg.Token) < 16 {
			return nil, errors.New("jamf: token auth needs a header name and a token of at least 16 characters")
		}
		h.header = true
		h.token = sha256.Sum256([]byte(cfg.Token))
	}
	if !h.basic && !h.header {
		return nil, errors.New("jamf: an authentication method is required (basic or header token)")
	}
	if len(cfg.NoncompliantGroups) == 0 {
		return nil, errors.New("jamf: noncompliant_groups: at least one smart group id or name is required")
	}
	for _, g := range cfg.NoncompliantGroups {
		if n, err := strconv.Atoi(g); err == nil {
			h.ids[n] = true
		} else {
			h.names[g] = true
		}
	}
	if cfg.Source == "" {
		cfg.Source = "jamf"
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	h.cfg = cfg
	h.edge = mdm.NewEdge(mdm.EdgeConfig{Source: cfg.Source, Auditor: cfg.Auditor, Metrics: cfg.Metrics, Logger: cfg.Logger})
	return h, nil
}

// authorized compares digests in constant time, so neither length nor
// content of the secrets leaks through timing.
func (h *Handler) authorized(r *http.Request) bool {
	ok := 0
	if h.basic {
		if u, p, has := r.BasicAuth(); has {
			uh, ph := sha256.Sum256([]byte(u)), sha256.Sum256([]byte(p))
			ok |= subtle.ConstantTimeCompare(uh[:], h.user[:]) & subtle.ConstantTimeCompare(ph[:], h.pass[:])
		}
	}
	if h.header {
		if v := r.Header.Get(h.cfg.TokenHeader); v != "" {
			th := sha256.Sum256([]byte(v))
			ok |= subtle.ConstantTimeCompare(th[:], h.token[:])
		}
	}
	return ok == 1
}

func (h *Handler) watched(g *GroupChange) bool {
	return (g.GroupID != 0 && h.ids[g.GroupID]) || (g.Name != "" && h.names[g.Name])
}

func (h *Handler) noncompliantMember(groups []Group) bool {
	return slices.ContainsFunc(groups, func(g Group) bool { return h.ids[g.ID] || h.names[g.Name] })
}

// Result is the JSON answer to an accepted webhook.
type Result struct {
	Event   string `json:"event"`
	Applied int    `json:"applied"`
	Unknown int    `json:"unknown,omitempty"`
	Ignored string `json:"ignored,omitempty"`
}

// ServeHTTP authenticates, parses and applies one webhook.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e := h.edge
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		e.Reject(w, r, http.StatusMethodNotAllowed, mdm.RejectMethod, "POST only", "")
		return
	}
	if !h.authorized(r) {
		e.Reject(w, r, http.StatusUnauthorized, mdm.RejectUnauthorized, "missing or wrong credentials", "")
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			e.Reject(w, r, http.StatusUnsupportedMediaType, mdm.RejectMalformed, "configure the Jamf webhook with content type application/json", "")
			return
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			e.Reject(w, r, http.StatusRequestEntityTooLarge, mdm.RejectTooLarge, fmt.Sprintf("body exceeds %d bytes", h.cfg.MaxBody), "")
			return
		}
		e.Reject(w, r, http.StatusBadRequest, mdm.RejectMalformed, "reading body failed", "")
		return
	}
	p, err := ParsePayload(body)
	if err != nil {
		e.Reject(w, r, http.StatusBadRequest, mdm.RejectMalformed, err.Error(), "")
		return
	}
	if h.cfg.InventoryHint != nil && inventoryEvent(p.Event) {
		h.cfg.InventoryHint()
	}
	ctx := r.Context()
	switch {
	case p.Group != nil:
		h.serveGroup(ctx, w, r, p)
	case p.Device != nil:
		h.serveDevice(ctx, w, r, p)
	default:
		mdm.WriteJSON(w, http.StatusAccepted, Result{Event: p.Event, Ignored: "event not used for posture"})
	}
}

func (h *Handler) serveDevice(ctx context.Context, w http.ResponseWriter, r *http.Request, p *Payload) {
	e := h.edge
	d := p.Device
	var state store.Compliance
	switch {
	case p.Event == EventMobileDeviceUnEnrolled:
		state = store.ComplianceUnknown // no longer managed: nothing vouches for it
	case h.cfg.Lookup == nil:
		mdm.WriteJSON(w, http.StatusAccepted, Result{Event: p.Event, Ignored: "inventory event carries no group membership and no Jamf API lookup is configured"})
		return
	default:
		groups, err := h.cfg.Lookup.Groups(ctx, d.Type, d.JSSID)
		if errors.Is(err, ErrLookupUnsupported) {
			mdm.WriteJSON(w, http.StatusAccepted, Result{Event: p.Event, Ignored: "no Jamf API lookup for this device type"})
			return
		}
		if err != nil {
			e.Logger().Error("jamf group lookup", "jss_id", d.JSSID, "err", err)
			e.Reject(w, r, http.StatusBadGateway, mdm.RejectInternal, "Jamf Pro API lookup failed", subject(d))
			return
		}
		state = store.ComplianceCompliant
		if h.noncompliantMember(groups) {
			state = store.ComplianceNoncompliant
		}
	}
	id, err := mdm.Resolve(ctx, h.cfg.Updater, identities(d)...)
	if err != nil {
		if errors.Is(err, mdm.ErrUnknownDevice) {
			e.Reject(w, r, http.StatusNotFound, mdm.RejectUnknownDevice, "no enrolled device matches this Jamf device", subject(d))
			return
		}
		e.Reject(w, r, http.StatusInternalServerError, mdm.RejectInternal, "device lookup failed", subject(d))
		return
	}
	if err := h.apply(ctx, id, state); err != nil {
		e.Reject(w, r, http.StatusInternalServerError, mdm.RejectInternal, "recording compliance failed", id)
		return
	}
	mdm.WriteJSON(w, http.StatusOK, Result{Event: p.Event, Applied: 1})
}

func (h *Handler) serveGroup(ctx context.Context, w http.ResponseWriter, r *http.Request, p *Payload) {
	e := h.edge
	g := p.Group
	if !h.watched(g) {
		mdm.WriteJSON(w, http.StatusAccepted, Result{Event: p.Event, Ignored: "smart group is not a noncompliant group"})
		return
	}
	res := Result{Event: p.Event}
	var unknown []string
	for _, batch := range []struct {
		devs  []Device
		state store.Compliance
	}{{g.Added, store.ComplianceNoncompliant}, {g.Removed, store.ComplianceCompliant}} {
		for _, d := range batch.devs {
			state := batch.state
			if h.cfg.Lookup != nil && d.JSSID != 0 {
				// Confirm: the device may have left (or joined) since, or
				// still sit in another noncompliant group.
				groups, err := h.cfg.Lookup.Groups(ctx, d.Type, d.JSSID)
				switch {
				case errors.Is(err, ErrLookupUnsupported):
					// keep the webhook's word
				case err != nil:
					e.Logger().Error("jamf group lookup", "jss_id", d.JSSID, "err", err)
					e.Reject(w, r, http.StatusBadGateway, mdm.RejectInternal, "Jamf Pro API lookup failed", subject(&d))
					return
				case h.noncompliantMember(groups):
					state = store.ComplianceNoncompliant
				default:
					state = store.ComplianceCompliant
				}
			}
			id, err := mdm.Resolve(ctx, h.cfg.Updater, identities(&d)...)
			if errors.Is(err, mdm.ErrUnknownDevice) {
				res.Unknown++
				if len(unknown) < 10 {
					unknown = append(unknown, subject(&d))
				}
				continue
			}
			if err == nil {
				err = h.apply(ctx, id, state)
			}
			if err != nil {
				e.Logger().Error("jamf membership change", "device", id, "err", err)
				e.Reject(w, r, http.StatusInternalServerError, mdm.RejectInternal, fmt.Sprintf("stopped after %d devices", res.Applied), subject(&d))
				return
			}
			res.Applied++
		}
	}
	if res.Unknown > 0 {
		// Partial success: the known devices are applied; the unknown ones
		// are reported once, not per device.
		e.Metrics().WebhookReject(e.Source(), mdm.RejectUnknownDevice)
		e.Logger().Warn("jamf membership change names unknown devices", "group", g.GroupID, "count", res.Unknown, "first", unknown)
		if res.Applied == 0 {
			e.Reject(w, r, http.StatusNotFound, mdm.RejectUnknownDevice, fmt.Sprintf("none of %d devices is enrolled", res.Unknown), "jamf_group:"+strconv.Itoa(g.GroupID))
			return
		}
	}
	mdm.WriteJSON(w, http.StatusOK, res)
}

func (h *Handler) apply(ctx context.Context, id string, state store.Compliance) error {
	if _, err := h.cfg.Updater.SetCompliance(ctx, id, state, h.cfg.Source, "mdm:"+h.cfg.Source); err != nil {
		return fmt.Errorf("jamf: set compliance of %s: %w", id, err)
	}
	h.edge.Applied(state)
	return nil
}

// identities lists a Jamf device's identities in resolution order.
func identities(d *Device) []mdm.Identity {
	kind := mdm.KindJamfComputerID
	if d.Type == MobileDevice {
		kind = mdm.KindJamfMobileDeviceID
	}
	jss := ""
	if d.JSSID != 0 {
		jss = strconv.Itoa(d.JSSID)
	}
	return []mdm.Identity{{Kind: mdm.KindSerial, Value: d.Serial}, {Kind: mdm.KindUDID, Value: d.UDID}, {Kind: kind, Value: jss}}
}

func subject(d *Device) string {
	switch {
	case d.Serial != "":
		return "serial:" + d.Serial
	case d.UDID != "":
		return "udid:" + d.UDID
	default:
		return string(d.Type) + ":" + strconv.Itoa(d.JSSID)
	}
}

// inventoryEvent reports whether a webhook event can change what Jamf's
// inventory listing says (docs/inventory.md).
func inventoryEvent(event string) bool {
	switch event {
	case EventComputerAdded, EventMobileDeviceEnrolled, EventMobileDeviceUnEnrolled,
		EventSmartGroupComputerChange, EventSmartGroupMobileDeviceChange, EventComputerInventoryCompleted:
		return true
	}
	return false
}
