// Package ratelimit bounds how often a key (a visitor, a sender, an IP address) may do
// something: a token bucket per key, with memory bounded however many keys an attacker invents.
package ratelimit

import (
	"sync"
	"time"
)

// MaxKeys bounds the buckets one limiter keeps. Past it, buckets that are full again (their
// key has been quiet for a whole refill) are dropped; if none are, the oldest half goes —
// which only ever errs towards allowing.
const MaxKeys = 100_000

type bucket struct {
	tokens float64
	last   time.Time
}

// Limiter allows each key perMinute events a minute, in bursts of up to perMinute.
// A nil *Limiter allows everything (a limit of 0 is off).
type Limiter struct {
	rate  float64 // tokens per second
	burst float64

	mu      sync.Mutex
	buckets map[string]*bucket
}

// New returns a limiter of perMinute events per key, or nil (no limit) when perMinute <= 0.
func New(perMinute int) *Limiter {
	if perMinute <= 0 {
		return nil
	}
	return &Limiter{rate: float64(perMinute) / 60, burst: float64(perMinute), buckets: map[string]*bucket{}}
}

// Allow takes one event of key at now, and reports whether it is within the limit.
func (l *Limiter) Allow(key string, now time.Time) bool {
	if l == nil {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= MaxKeys {
			l.prune(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (l *Limiter) prune(now time.Time) {
	full := time.Duration(l.burst / l.rate * float64(time.Second))
	for k, b := range l.buckets {
		if now.Sub(b.last) >= full {
			delete(l.buckets, k)
		}
	}
	if len(l.buckets) < MaxKeys {
		return
	}
	n := 0
	for k := range l.buckets { // map order is random: an arbitrary half
		delete(l.buckets, k)
		if n++; n >= MaxKeys/2 {
			break
		}
	}
}

// Counter bounds concurrent holders per key, such as open connections per IP address.
// A nil *Counter allows everything.
type Counter struct {
	max int
	mu  sync.Mutex
	n   map[string]int
}

// NewCounter returns a counter of at most max per key, or nil (no limit) when max <= 0.
func NewCounter(max int) *Counter {
	if max <= 0 {
		return nil
	}
	return &Counter{max: max, n: map[string]int{}}
}

// Acquire takes one slot of key; false when key holds max already.
func (c *Counter) Acquire(key string) bool {
	if c == nil {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[key] >= c.max {
		return false
	}
	c.n[key]++
	return true
}

// Full reports whether key holds max already (without taking a slot).
func (c *Counter) Full(key string) bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[key] >= c.max
}

// Release gives a slot of key back.
func (c *Counter) Release(key string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[key] <= 1 {
		delete(c.n, key)
		return
	}
	c.n[key]--
}
