package mdm

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"hardbound/store/config"
)

func TestWebhookFileConfigValidateReadsTheSecret(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good", "  0123456789abcdef\n")
	blank := write("blank", " \n")
	tests := []struct {
		name       string
		secretFile string
		wantSecret string
		wantErr    error // nil: valid
	}{
		{"off", "", "", nil},
		{"trimmed", good, "0123456789abcdef", nil},
		{"missing", filepath.Join(dir, "missing"), "", fs.ErrNotExist},
		{"blank", blank, "", errors.New("empty")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := DefaultWebhookFileConfig()
			c.SecretFile = tc.secretFile
			err := c.Validate("mdm.webhook")
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if w := c.Webhook(); string(w.Secret) != tc.wantSecret || w.Window != DefaultWindow {
					t.Errorf("Webhook() = secret %q window %v, want %q, %v", w.Secret, w.Window, tc.wantSecret, DefaultWindow)
				}
				return
			}
			var fe *config.FieldError
			if !errors.As(err, &fe) || fe.Field != "mdm.webhook.secret_file" {
				t.Fatalf("Validate = %v, want an error naming mdm.webhook.secret_file", err)
			}
			if errors.Is(tc.wantErr, fs.ErrNotExist) && !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Validate = %v, want fs.ErrNotExist", err)
			}
			if !errors.Is(tc.wantErr, fs.ErrNotExist) && fe.Err.Error() != tc.wantErr.Error() {
				t.Errorf("Validate = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestWebhookFileConfigWindow(t *testing.T) {
	t.Parallel()
	c := WebhookFileConfig{Window: config.Duration(time.Minute)}
	if err := c.Validate("mdm.webhook"); err != nil {
		t.Fatal(err)
	}
	if w := c.Webhook(); w.Window != time.Minute || w.Secret != nil {
		t.Errorf("Webhook() = %+v", w)
	}
}
