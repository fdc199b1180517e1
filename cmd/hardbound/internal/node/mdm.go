package node

import (
	"context"
	"net/http"
	"time"

	"hardbound/posture/mdm"
	"hardbound/posture/mdm/intune"
	"hardbound/posture/mdm/jamf"
	"hardbound/radius/dynauth"
	"hardbound/store/config"
)

// startMDM builds the MDM connectors: the signed webhook and Jamf webhooks
// are mounted under /mdm/ on the enrollment HTTPS listener; the Intune
// poller runs in the background.
func (in *Node) startMDM() error {
	in.mdmHandlers = map[string]http.Handler{}
	jamfHint, err := in.startInventory()
	if err != nil {
		return err
	}
	m := in.metrics.Dynauth()
	st := in.st
	mc := in.cfg.MDM
	if mc.Webhook.SecretFile != "" {
		wcfg := mc.Webhook.Webhook()
		wcfg.Updater, wcfg.Auditor, wcfg.Metrics, wcfg.Logger = in.posture, st, m, in.log
		wcfg.Nonces = st // replays refused across restarts
		h, err := mdm.NewWebhook(wcfg)
		if err != nil {
			return err
		}
		in.mdmHandlers["POST /mdm/webhook"] = h
	}
	if mc.Jamf.Username != "" && len(mc.Jamf.NoncompliantGroups) > 0 {
		pw, err := config.ReadSecret("mdm.jamf.password_file", mc.Jamf.PasswordFile)
		if err != nil {
			return err
		}
		jcfg := mc.Jamf.Handler(pw)
		jcfg.Updater, jcfg.Auditor, jcfg.Metrics, jcfg.Logger = in.posture, st, m, in.log
		jcfg.InventoryHint = jamfHint
		if mc.Jamf.URL != "" {
			secret, err := config.ReadSecret("mdm.jamf.api_client_secret_file", mc.Jamf.APIClientSecretFile)
			if err != nil {
				return err
			}
			api, err := jamf.NewAPIClient(mc.Jamf.API(secret))
			if err != nil {
				return err
			}
			jcfg.Lookup = api
		}
		h, err := jamf.New(jcfg)
		if err != nil {
			return err
		}
		in.mdmHandlers["POST /mdm/jamf/webhook"] = h
	}
	if ic := mc.Intune; ic.TenantID != "" {
		secret, err := config.ReadSecret("mdm.intune.client_secret_file", ic.ClientSecretFile)
		if err != nil {
			return err
		}
		icfg := ic.Poller(secret)
		icfg.Refresh, icfg.Updater, icfg.Metrics, icfg.Logger = in.intuneRefresh().D(), in.posture, m, in.log
		p, err := intune.New(icfg)
		if err != nil {
			return err
		}
		in.wg.Add(1)
		go func() {
			defer in.wg.Done()
			in.fail("intune", p.Run(in.ctx))
		}()
	}
	return nil
}

// intuneRefresh re-reports unchanged Intune states often enough that no
// profile's posture max age sees them stale.
func (in *Node) intuneRefresh() (d config.Duration) {
	for _, p := range in.cfg.Profiles {
		if p.PostureMaxAge > 0 && (d == 0 || p.PostureMaxAge/2 < d) {
			d = p.PostureMaxAge / 2
		}
	}
	return d
}

// startEnforcer turns standing changes into Disconnect/CoA requests to the
// NASes holding live sessions.
func (in *Node) startEnforcer() error {
	if in.radius == nil {
		return nil
	}
	m := in.metrics.Dynauth()
	scfg := in.cfg.RADIUS.CoA.Sender()
	scfg.Logger, scfg.Metrics = in.log, m
	sender := dynauth.NewSender(scfg)
	st := in.st
	ecfg := in.cfg.RADIUS.CoA.Enforcer()
	ecfg.Events, ecfg.Profiles, ecfg.Sessions, ecfg.Auditor = in.posture, in.posture, st, in.auditor
	ecfg.Sender, ecfg.NAS = in.coaRoute(sender) // radsec.go
	// Nodes sharing a database each see every change; the claim makes one
	// of them the sender per session (docs/ha.md).
	ecfg.Claims = st
	ecfg.Logger, ecfg.Metrics = in.log, m
	// Remember standing changes for at least a conversation's life: an
	// Accept built before one may see its Accounting-Start after it.
	ecfg.RecentWindow = max(2*time.Minute, 2*in.cfg.RADIUS.IdleTimeout.D())
	e, err := dynauth.NewEnforcer(ecfg)
	if err != nil {
		return err
	}
	in.sessionStarts.set(e)
	ready := make(chan struct{})
	done := make(chan struct{})
	in.wg.Add(1)
	go func() {
		defer in.wg.Done()
		defer close(done)
		in.fail("dynauth", e.Run(in.ctx, ready))
	}()
	select {
	case <-ready:
	case <-done:
	}
	// Queued audit events are written before the store closes.
	in.onClose(func(ctx context.Context) error {
		select {
		case <-done:
		case <-ctx.Done():
		}
		return nil
	})
	return nil
}
