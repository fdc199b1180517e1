package eapclient

import (
	"fmt"
	"testing"
	"time"
)

func ms(v ...int) []time.Duration {
	out := make([]time.Duration, len(v))
	for i, x := range v {
		out[i] = time.Duration(x) * time.Millisecond
	}
	return out
}

func TestPercentileNearestRank(t *testing.T) {
	t.Parallel()
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	thousand := make([]time.Duration, 1000)
	for i := range thousand {
		thousand[i] = time.Duration(i+1) * time.Microsecond
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty-is-zero", nil, 99, 0},
		{"single-value-is-every-percentile", ms(7), 50, 7 * time.Millisecond},
		{"p50-of-four-is-second", ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{"p51-of-four-is-third", ms(1, 2, 3, 4), 51, 3 * time.Millisecond},
		{"p99-of-five-is-max", ms(1, 2, 3, 4, 50), 99, 50 * time.Millisecond},
		{"p0-is-min", ms(3, 4), 0, 3 * time.Millisecond},
		{"p100-is-max", ms(3, 4), 100, 4 * time.Millisecond},
		{"p95-of-1..100-is-95", hundred, 95, 95 * time.Millisecond},
		{"p99-of-1..100-is-99", hundred, 99, 99 * time.Millisecond},
		{"p99.9-of-1..1000-is-999-despite-float-noise", thousand, 99.9, 999 * time.Microsecond},
		{"p50-of-1..1000-is-500", thousand, 50, 500 * time.Microsecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Percentile(tt.sorted, tt.p); got != tt.want {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestStatsSummarizeCountsEveryOutcome(t *testing.T) {
	t.Parallel()
	var a, b Stats
	a.Add(Result{Accepted: true, KeysMatch: true, RoundTrips: 4, Duration: 3 * time.Millisecond}, nil)
	a.Add(Result{Accepted: true, KeysMatch: false, RoundTrips: 4, Duration: 1 * time.Millisecond}, nil)
	a.Add(Result{RoundTrips: 3, ReplyMessage: "rejected: unknown_cert", Duration: 2 * time.Millisecond}, nil)
	b.Add(Result{Retransmits: 3, Duration: 10 * time.Millisecond}, ErrTimeout)
	b.Add(Result{RoundTrips: 1, Discarded: 2, Duration: 4 * time.Millisecond}, fmt.Errorf("x: %w", ErrBadReply))
	b.Add(Result{RoundTrips: 4, Duration: 5 * time.Millisecond}, nil) // reject without Reply-Message
	a.Merge(&b)
	s := a.Summarize(2 * time.Second)
	want := Summary{Auths: 6, Accepts: 2, Rejects: 2, Timeouts: 1, Errors: 1, KeyMismatches: 1, RoundTrips: 16, Retransmits: 3, Discarded: 2}
	if s.Auths != want.Auths || s.Accepts != want.Accepts || s.Rejects != want.Rejects || s.Timeouts != want.Timeouts ||
		s.Errors != want.Errors || s.KeyMismatches != want.KeyMismatches || s.RoundTrips != want.RoundTrips ||
		s.Retransmits != want.Retransmits || s.Discarded != want.Discarded {
		t.Fatalf("got %+v", s)
	}
	if s.AuthsPerSecond != 3 || s.RoundTripsPer != 16.0/6 {
		t.Fatalf("rate %v, round trips per auth %v", s.AuthsPerSecond, s.RoundTripsPer)
	}
	// Sorted: 1 2 3 4 5 10 ms.
	if s.P50 != 3*time.Millisecond || s.P95 != 10*time.Millisecond || s.Max != 10*time.Millisecond {
		t.Fatalf("p50 %v p95 %v max %v", s.P50, s.P95, s.Max)
	}
	if s.RejectReasons["rejected: unknown_cert"] != 1 || s.RejectReasons["(no Reply-Message)"] != 1 {
		t.Fatalf("reasons %v", s.RejectReasons)
	}
	if auths, accepts, rejects, failures := a.Counts(); auths != 6 || accepts != 2 || rejects != 2 || failures != 3 {
		t.Fatalf("counts %d %d %d %d", auths, accepts, rejects, failures)
	}
}

func TestStatsBoundsRejectReasons(t *testing.T) {
	t.Parallel()
	var s Stats
	for i := range 100 {
		s.Add(Result{ReplyMessage: fmt.Sprint("reason ", i)}, nil)
	}
	got := s.Summarize(time.Second).RejectReasons
	if len(got) > maxReasons+1 || got["other"] != 100-maxReasons {
		t.Fatalf("%d reasons, other %d", len(got), got["other"])
	}
}
