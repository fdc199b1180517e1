package posture_test

import (
	"context"
	"sync"
	"testing"

	"hardbound/enroll/devbind"
	"hardbound/posture"
	"hardbound/store"
)

// filterRecorder records the filters of ListCerts calls.
type filterRecorder struct {
	store.Store
	mu      sync.Mutex
	filters []store.CertFilter
}

func (r *filterRecorder) ListCerts(ctx context.Context, f store.CertFilter, p store.Page) ([]*store.Cert, string, error) {
	r.mu.Lock()
	r.filters = append(r.filters, f)
	r.mu.Unlock()
	return r.Store.ListCerts(ctx, f, p)
}

// Warm lists bindings without their DER: the cache keeps none of it, and
// reading it for 1M certificates would page in the tables that hold it.
func TestWarmListsBindingsWithoutDER(t *testing.T) {
	t.Parallel()
	f := newFixture(t, profiles...)
	d := f.bind(t, devbind.Request{DeviceID: "warm-noder"})
	rec := &filterRecorder{Store: f.st}
	svc, err := posture.New(rec, profiles, posture.WithClock(f.clock.now))
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Warm(f.ctx); err != nil {
		t.Fatal(err)
	}
	if len(rec.filters) == 0 {
		t.Fatal("Warm did not list bindings")
	}
	for _, flt := range rec.filters {
		if !flt.NoDER {
			t.Errorf("Warm listed bindings with %+v, want NoDER", flt)
		}
	}
	if v := svc.Decide(f.ctx, d.Leaf); !v.Allow || v.Reason != posture.ReasonOK {
		t.Errorf("Decide after a DER-less Warm = %+v, want ok", v)
	}
}

// derCounter counts reads that return a certificate's DER.
type derCounter struct {
	store.Store
	mu       sync.Mutex
	withDER  int
	bindings int
}

func (r *derCounter) GetCert(ctx context.Context, sha store.Hash) (*store.Cert, error) {
	r.mu.Lock()
	r.withDER++
	r.mu.Unlock()
	return r.Store.GetCert(ctx, sha)
}

func (r *derCounter) GetCertBinding(ctx context.Context, sha store.Hash) (*store.Cert, error) {
	r.mu.Lock()
	r.bindings++
	r.mu.Unlock()
	return r.Store.GetCertBinding(ctx, sha)
}

// A cache miss reads the binding alone: the caller holds the certificate.
func TestDecideMissReadsBindingWithoutDER(t *testing.T) {
	t.Parallel()
	f := newFixture(t, profiles...)
	d := f.bind(t, devbind.Request{DeviceID: "miss-noder"})
	rec := &derCounter{Store: f.st}
	svc, err := posture.New(rec, profiles, posture.WithClock(f.clock.now))
	if err != nil {
		t.Fatal(err)
	}
	if v := svc.Decide(f.ctx, d.Leaf); !v.Allow || v.Reason != posture.ReasonOK {
		t.Fatalf("Decide on a cold cache = %+v, want ok", v)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.bindings != 1 || rec.withDER != 0 {
		t.Fatalf("cold Decide read %d bindings and %d certificates with DER, want 1 and 0", rec.bindings, rec.withDER)
	}
}
