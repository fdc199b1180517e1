package limit

import (
	"container/list"

	"golang.org/x/time/rate"
)

// table is one kind's buckets in LRU order (front = most recent). The
// caller holds Limiter.mu.
type table struct {
	kind  Kind
	rate  Rate
	max   int
	order *list.List // of *entry
	byKey map[string]*list.Element
}

type entry struct {
	key string
	lim *rate.Limiter
}

func newTable(kind Kind, r Rate, max int) *table {
	return &table{kind: kind, rate: r, max: max, order: list.New(), byKey: make(map[string]*list.Element)}
}

func (t *table) get(key string, m Metrics) *rate.Limiter {
	if el, ok := t.byKey[key]; ok {
		t.order.MoveToFront(el)
		return el.Value.(*entry).lim
	}
	if t.order.Len() >= t.max {
		oldest := t.order.Back()
		t.order.Remove(oldest)
		delete(t.byKey, oldest.Value.(*entry).key)
		m.Evicted(t.kind)
	}
	e := &entry{key: key, lim: rate.NewLimiter(rate.Every(t.rate.Every), t.rate.Burst)}
	t.byKey[key] = t.order.PushFront(e)
	return e.lim
}

func (t *table) len() int { return t.order.Len() }
