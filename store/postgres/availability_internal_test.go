package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"hardbound/store"
)

// TestUnavailableClassifies: connection-level failures are
// store.ErrUnavailable, the server's own refusals (constraints,
// serialization, a statement timeout) and the caller's cancellation are
// not.
func TestUnavailableClassifies(t *testing.T) {
	for _, tc := range []struct {
		name        string
		err         error
		unavailable bool
		answered    bool
	}{
		{"nil", nil, false, true},
		{"no rows", pgx.ErrNoRows, false, true},
		{"unique violation", &pgconn.PgError{Code: "23505"}, false, true},
		{"serialization failure", &pgconn.PgError{Code: "40001"}, false, true},
		{"statement timeout", &pgconn.PgError{Code: "57014"}, false, true},
		{"admin shutdown", &pgconn.PgError{Code: "57P01"}, true, false},
		{"crash shutdown", &pgconn.PgError{Code: "57P02"}, true, false},
		{"starting up", &pgconn.PgError{Code: "57P03"}, true, false},
		{"connection failure", &pgconn.PgError{Code: "08006"}, true, false},
		{"too many connections", &pgconn.PgError{Code: "53300"}, true, false},
		{"cut mid-read", fmt.Errorf("receive: %w", io.ErrUnexpectedEOF), true, false},
		{"conn closed", pgconn.ErrConnClosed, true, false},
		{"refused", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, true, false},
		{"deadline", fmt.Errorf("acquire: %w", context.DeadlineExceeded), true, false},
		{"caller cancelled", fmt.Errorf("acquire: %w", context.Canceled), false, false},
		{"store closed", ErrClosed, false, false},
		{"other", errors.New("decode: bad json"), false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := unavailable(tc.err); got != tc.unavailable {
				t.Errorf("unavailable(%v) = %v, want %v", tc.err, got, tc.unavailable)
			}
			if got := answered(tc.err); got != tc.answered {
				t.Errorf("answered(%v) = %v, want %v", tc.err, got, tc.answered)
			}
			if tc.err == nil {
				return
			}
			if got := errors.Is(wrapErr("op", tc.err), store.ErrUnavailable); got != tc.unavailable {
				t.Errorf("wrapErr(%v) is ErrUnavailable = %v, want %v", tc.err, got, tc.unavailable)
			}
			if !errors.Is(wrapErr("op", tc.err), tc.err) {
				t.Errorf("wrapErr(%v) lost the cause", tc.err)
			}
		})
	}
}
