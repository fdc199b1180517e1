package mdm

import (
	"hardbound/store/config"
)

// WebhookFileConfig is the mdm.webhook section of hardbound.yaml: the
// generic signed webhook, on when SecretFile is set.
type WebhookFileConfig struct {
	SecretFile string          `yaml:"secret_file"`
	Window     config.Duration `yaml:"window"`

	secret []byte // SecretFile's content, resolved by Validate
}

// DefaultWebhookFileConfig is the section before the file is laid over it.
func DefaultWebhookFileConfig() WebhookFileConfig {
	return WebhookFileConfig{Window: config.Duration(DefaultWindow)}
}

// Validate reads the secret file (surrounding white space is not part of
// the secret). path is the section's place in the file ("mdm.webhook");
// errors are *config.FieldError.
func (c *WebhookFileConfig) Validate(path string) error {
	c.secret = nil
	if c.SecretFile == "" {
		return nil
	}
	s, err := config.ReadSecret(path+".secret_file", c.SecretFile)
	if err != nil {
		return err
	}
	c.secret = []byte(s)
	return nil
}

// Webhook is the section's part of WebhookConfig (the secret and window)
// from a validated section; the caller wires Updater, Auditor, Metrics and
// Logger.
func (c *WebhookFileConfig) Webhook() WebhookConfig {
	return WebhookConfig{Secret: c.secret, Window: c.Window.D()}
}
