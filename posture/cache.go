package posture

import (
	"hash/maphash"
	"sync"
)

const cacheShards = 64

// cache is a bounded, sharded map. When a shard is full an arbitrary entry is
// evicted: the store is the source of truth, so an eviction costs one read.
type cache[K comparable, V any] struct {
	seed   maphash.Seed
	max    int // per shard
	shards [cacheShards]shard[K, V]
}

type shard[K comparable, V any] struct {
	mu sync.RWMutex
	m  map[K]V
	// gen counts invalidations, so a load that raced with one is not cached.
	gen uint64
}

func newCache[K comparable, V any](size int) *cache[K, V] {
	c := &cache[K, V]{seed: maphash.MakeSeed(), max: max(size/cacheShards, 1)}
	for i := range c.shards {
		c.shards[i].m = make(map[K]V)
	}
	return c
}

func (c *cache[K, V]) shardOf(k K) int {
	return int(maphash.Comparable(c.seed, k) % cacheShards)
}

// get returns the cached value, or the shard generation to pass to put
// after loading it from the store.
func (c *cache[K, V]) get(k K) (V, uint64, bool) {
	s := &c.shards[c.shardOf(k)]
	s.mu.RLock()
	v, ok := s.m[k]
	g := s.gen
	s.mu.RUnlock()
	return v, g, ok
}

// put caches v unless the shard was invalidated since gen was read.
func (c *cache[K, V]) put(k K, v V, gen uint64) {
	s := &c.shards[c.shardOf(k)]
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen != gen {
		return
	}
	if _, ok := s.m[k]; !ok && len(s.m) >= c.max {
		for old := range s.m {
			delete(s.m, old)
			break
		}
	}
	s.m[k] = v
}

// gens snapshots every shard's generation, for a bulk load (warm) that
// reads many keys from the store before putting them.
func (c *cache[K, V]) gens() [cacheShards]uint64 {
	var g [cacheShards]uint64
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		g[i] = s.gen
		s.mu.RUnlock()
	}
	return g
}

// fill caches v like put, given the generations snapshot taken before v was
// read, but never replaces a cached entry and never evicts: a bulk load must
// not push out what live traffic loaded. It reports false when the shard is
// full.
func (c *cache[K, V]) fill(k K, v V, gens *[cacheShards]uint64) bool {
	i := c.shardOf(k)
	s := &c.shards[i]
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen != gens[i] {
		return true
	}
	if _, ok := s.m[k]; ok {
		return true
	}
	if len(s.m) >= c.max {
		return false
	}
	s.m[k] = v
	return true
}

func (c *cache[K, V]) del(k K) {
	s := &c.shards[c.shardOf(k)]
	s.mu.Lock()
	delete(s.m, k)
	s.gen++
	s.mu.Unlock()
}

func (c *cache[K, V]) clear() {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		clear(s.m)
		s.gen++
		s.mu.Unlock()
	}
}

func (c *cache[K, V]) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}
