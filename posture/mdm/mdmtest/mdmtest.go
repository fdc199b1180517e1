// Package mdmtest has in-memory fakes of the mdm interfaces for connector tests.
package mdmtest

import (
	"context"
	"fmt"
	"sync"

	"hardbound/store"
)

// Updater resolves from an alias table ("kind:value" -> device id) and
// records compliance reports as "device state source actor".
type Updater struct {
	mu      sync.Mutex
	aliases map[string]string
	reports []string
	// FailSet makes SetCompliance fail (failure injection).
	FailSet error
}

// NewUpdater returns an Updater over aliases.
func NewUpdater(aliases map[string]string) *Updater {
	return &Updater{aliases: aliases}
}

// ResolveDevice implements mdm.Updater.
func (f *Updater) ResolveDevice(_ context.Context, kind, value string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if id, ok := f.aliases[kind+":"+value]; ok {
		return id, nil
	}
	return "", fmt.Errorf("mdmtest: %s %q: %w", kind, value, store.ErrNotFound)
}

// SetCompliance implements mdm.Updater.
func (f *Updater) SetCompliance(_ context.Context, id string, st store.Compliance, source, actor string) (*store.Device, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.FailSet != nil {
		return nil, f.FailSet
	}
	f.reports = append(f.reports, fmt.Sprintf("%s %s %s %s", id, st, source, actor))
	return &store.Device{ID: id, Posture: store.Posture{State: st, Source: source}}, nil
}

// Reports returns the reports so far.
func (f *Updater) Reports() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.reports...)
}

// Auditor records audit events.
type Auditor struct {
	mu  sync.Mutex
	evs []*store.AuditEvent
}

// AppendAudit implements mdm.Auditor.
func (a *Auditor) AppendAudit(_ context.Context, ev *store.AuditEvent) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.evs = append(a.evs, ev)
	return nil
}

// Reasons returns "result:reason" per event.
func (a *Auditor) Reasons() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, e := range a.evs {
		out = append(out, e.Result+":"+e.Reason)
	}
	return out
}

// Events returns the recorded events.
func (a *Auditor) Events() []*store.AuditEvent {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]*store.AuditEvent(nil), a.evs...)
}

// Metrics records calls as "source:label".
type Metrics struct {
	mu      sync.Mutex
	rejects []string
	changes []string
	polls   []string
}

// PostureChange implements mdm.Metrics.
func (m *Metrics) PostureChange(source string, st store.Compliance) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.changes = append(m.changes, source+":"+string(st))
}

// WebhookReject implements mdm.Metrics.
func (m *Metrics) WebhookReject(source, reason string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rejects = append(m.rejects, source+":"+reason)
}

// Poll implements mdm.Metrics.
func (m *Metrics) Poll(source, result string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.polls = append(m.polls, source+":"+result)
}

// Rejects returns recorded rejects.
func (m *Metrics) Rejects() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.rejects...)
}

// Changes returns recorded posture changes.
func (m *Metrics) Changes() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.changes...)
}

// Polls returns recorded poll results.
func (m *Metrics) Polls() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.polls...)
}
