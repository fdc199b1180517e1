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

func (c *cache[K, V]) shard(k K) *shard[K, V] {
	return &c.shards[maphash.Comparable(c.seed, k)%cacheShards]
}

// get returns the cached value, or the shard generation to pass to put
// after loading it from the store.
func (c *cache[K, V]) get(k K) (V, uint64, bool) {
	s := c.shard(k)
	s.mu.RLock()
	v, ok := s.m[k]
	g := s.gen
	s.mu.RUnlock()
	return v, g, ok
}

// put caches v unless the shard was invalidated since gen was read.
func (c *cache[K, V]) put(k K, v V, gen uint64) {
	s := c.shard(k)
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

func (c *cache[K, V]) del(k K) {
	s := c.shard(k)
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
