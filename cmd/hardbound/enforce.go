package main

import (
	"context"
	"net/http"

	"hardbound/posture/mdm"
	"hardbound/posture/mdm/intune"
	"hardbound/posture/mdm/jamf"
	"hardbound/radius/dynauth"
)

// startMDM builds the MDM connectors: the signed webhook and Jamf webhooks
// are mounted under /mdm/ on the enrollment HTTPS listener; the Intune
// poller runs in the background.
func (in *instance) startMDM() error {
	in.mdmHandlers = map[string]http.Handler{}
	m := in.metrics.Dynauth()
	st := in.st
	mc := in.cfg.MDM
	if mc.Webhook.SecretFile != "" {
		secret, err := readSecret("mdm.webhook.secret_file", mc.Webhook.SecretFile)
		if err != nil {
			return err
		}
		h, err := mdm.NewWebhook(mdm.WebhookConfig{Secret: []byte(secret), Window: mc.Webhook.Window.D(), Updater: in.posture,
			Auditor: st, Metrics: m, Logger: in.log})
		if err != nil {
			return err
		}
		in.mdmHandlers["POST /mdm/webhook"] = h
	}
	if mc.Jamf.Username != "" && len(mc.Jamf.NoncompliantGroups) > 0 {
		pw, err := readSecret("mdm.jamf.password_file", mc.Jamf.PasswordFile)
		if err != nil {
			return err
		}
		jcfg := jamf.Config{Username: mc.Jamf.Username, Password: pw, NoncompliantGroups: mc.Jamf.NoncompliantGroups,
			Updater: in.posture, Auditor: st, Metrics: m, Logger: in.log}
		if mc.Jamf.URL != "" {
			secret, err := readSecret("mdm.jamf.api_client_secret_file", mc.Jamf.APIClientSecretFile)
			if err != nil {
				return err
			}
			api, err := jamf.NewAPIClient(jamf.APIConfig{BaseURL: mc.Jamf.URL, ClientID: mc.Jamf.APIClientID, ClientSecret: secret})
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
		secret, err := readSecret("mdm.intune.client_secret_file", ic.ClientSecretFile)
		if err != nil {
			return err
		}
		p, err := intune.New(intune.Config{TenantID: ic.TenantID, ClientID: ic.ClientID, ClientSecret: secret,
			LoginURL: ic.LoginURL, GraphURL: ic.GraphURL, Interval: ic.PollInterval.D(), Refresh: in.intuneRefresh().D(),
			Updater: in.posture, Metrics: m, Logger: in.log})
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
func (in *instance) intuneRefresh() (d Duration) {
	for _, p := range in.cfg.Profiles {
		if p.PostureMaxAge > 0 && (d == 0 || p.PostureMaxAge/2 < d) {
			d = p.PostureMaxAge / 2
		}
	}
	return d
}

// startEnforcer turns standing changes into Disconnect/CoA requests to the
// NASes holding live sessions.
func (in *instance) startEnforcer() error {
	if in.radius == nil {
		return nil
	}
	m := in.metrics.Dynauth()
	sender := dynauth.NewSender(dynauth.SenderConfig{Tries: in.cfg.RADIUS.CoA.Retries + 1, Timeout: in.cfg.RADIUS.CoA.Timeout.D(),
		Logger: in.log, Metrics: m})
	st := in.st
	e, err := dynauth.NewEnforcer(dynauth.EnforcerConfig{
		Events: in.posture, Profiles: in.posture, Sessions: st, Auditor: st, Sender: sender,
		NAS: func(name string) (dynauth.NAS, bool) {
			c, ok := in.radius.Client(name)
			if !ok {
				return dynauth.NAS{}, false
			}
			secret := c.CoASecret
			if len(secret) == 0 {
				secret = c.Secret
			}
			// Addr empty: the session's NAS source address is used, which
			// suits clients configured by prefix.
			return dynauth.NAS{Name: c.Name, Port: c.CoAPort, Secret: secret}, true
		},
		PreferCoA:        in.cfg.RADIUS.CoA.PreferCoA,
		ReauthOnRecovery: in.cfg.RADIUS.CoA.ReauthOnRecovery,
		Logger:           in.log,
		Metrics:          m,
	})
	if err != nil {
		return err
	}
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
