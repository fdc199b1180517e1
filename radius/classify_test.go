package radius

import (
	"errors"
	"fmt"
	"testing"

	"hardbound/eaptls"
	"hardbound/posture"
)

// classifyFailure reads the Decider's reason first, then the eaptls
// sentinel however deeply the Step error wraps it.
func TestClassifyFailure(t *testing.T) {
	t.Parallel()
	refused := &posture.Verdict{Reason: posture.ReasonDeviceQuarantined}
	allowed := &posture.Verdict{Allow: true, Reason: posture.ReasonOK}
	wrap := func(err error) error { return fmt.Errorf("tls handshake: %w", err) }
	tests := []struct {
		name    string
		verdict *posture.Verdict
		err     error
		want    string
	}{
		{"verdict_refused", refused, wrap(fmt.Errorf("eaptls: authorization: %w", ErrRejected)), string(posture.ReasonDeviceQuarantined)},
		{"verdict_refused_then_timeout", refused, eaptls.ErrTimeout, string(posture.ReasonDeviceQuarantined)},
		{"no_error_no_verdict", nil, nil, RejectEAPFailure},
		{"no_client_cert", nil, wrap(eaptls.ErrNoClientCert), RejectNoClientCert},
		{"cert_expired", nil, wrap(fmt.Errorf("%w: %w", eaptls.ErrCertExpired, errors.New("x509: certificate has expired"))), RejectCertExpired},
		{"unknown_issuer", nil, wrap(eaptls.ErrUnknownIssuer), RejectUnknownIssuer},
		{"no_ems", nil, eaptls.ErrNoEMS, RejectNoEMS},
		{"nak", nil, eaptls.ErrNak, RejectNak},
		{"timeout", nil, eaptls.ErrTimeout, RejectTimeout},
		{"malformed", nil, fmt.Errorf("%w: S flag", eaptls.ErrMalformed), RejectEAPProtocol},
		{"protocol", nil, eaptls.ErrProtocol, RejectEAPProtocol},
		{"too_large", nil, eaptls.ErrTooLarge, RejectEAPProtocol},
		{"too_many_rounds", nil, eaptls.ErrTooManyRounds, RejectEAPProtocol},
		// Allowed, then the handshake failed (e.g. a bad CertificateVerify).
		{"allowed_then_tls_error", allowed, errors.New("tls: invalid signature by the client certificate"), RejectTLSFailed},
		{"allowed_then_timeout", allowed, eaptls.ErrTimeout, RejectTimeout},
		// Text is never read: an error that only says "expired" is a TLS
		// failure like any other.
		{"text_alone_is_not_a_cause", nil, errors.New("remote error: tls: expired certificate"), RejectTLSFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := classifyFailure(tt.verdict, tt.err); got != tt.want {
				t.Fatalf("classifyFailure = %q, want %q", got, tt.want)
			}
		})
	}
}
