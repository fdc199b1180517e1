package mdm

import (
	"context"
	"fmt"
	"sync"

	"hardbound/store"
)

// fakeUpdater resolves from an alias table and records compliance reports.
type fakeUpdater struct {
	mu      sync.Mutex
	aliases map[string]string // "kind:value" -> device id
	reports []string          // "device state source actor"
}

func newFakeUpdater(aliases map[string]string) *fakeUpdater {
	return &fakeUpdater{aliases: aliases}
}

func (f *fakeUpdater) ResolveDevice(_ context.Context, kind, value string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if id, ok := f.aliases[kind+":"+value]; ok {
		return id, nil
	}
	return "", fmt.Errorf("fake: %s %q: %w", kind, value, store.ErrNotFound)
}

func (f *fakeUpdater) SetCompliance(_ context.Context, id string, st store.Compliance, source, actor string) (*store.Device, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reports = append(f.reports, fmt.Sprintf("%s %s %s %s", id, st, source, actor))
	return &store.Device{ID: id, Posture: store.Posture{State: st, Source: source}}, nil
}

func (f *fakeUpdater) got() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.reports...)
}

type recAuditor struct {
	mu  sync.Mutex
	evs []*store.AuditEvent
}

func (a *recAuditor) AppendAudit(_ context.Context, ev *store.AuditEvent) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.evs = append(a.evs, ev)
	return nil
}

func (a *recAuditor) reasons() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, e := range a.evs {
		out = append(out, e.Result+":"+e.Reason)
	}
	return out
}

type recMetrics struct {
	mu      sync.Mutex
	rejects []string
	changes []string
}

func (m *recMetrics) PostureChange(source string, st store.Compliance) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.changes = append(m.changes, source+":"+string(st))
}

func (m *recMetrics) WebhookReject(source, reason string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rejects = append(m.rejects, source+":"+reason)
}

func (m *recMetrics) Poll(string, string) {}
