package auth

import (
	"hash/maphash"
	"strings"
	"sync"
	"time"
)

// A Faye client sends its token with every message and a REST client with every request, so
// one session verifies the same token thousands of times: parsing and checking a JWT was the
// largest single cost of a chat-shaped (pairs) load. verified remembers tokens that passed,
// for as long as the answer cannot have changed. An entry is found by a seeded hash of the
// token and holds the token itself, which must equal the one looked up: a hash collision is
// a miss, never another token's answer (so the hash need not resist attacks, and costs a
// tenth of a SHA-256):
//
//   - never past the token's own expiry (leeway included, as verify computes it);
//   - never longer than the org key cache trusts the keys that checked it (a key deleted on
//     another node stops being accepted here no later than today), nor than maxAge;
//   - never after this node changed any organisation's keys (KeyCache.Invalidate bumps the
//     cache's epoch, read before each check, so a change during a check makes its answer
//     stale at once; key changes are rare, so one epoch for all organisations is enough).
//
// Only successes are kept: every refusal goes through the full check and its log line.
type verified struct {
	maxAge time.Duration
	keys   *KeyCache // its clock is the cache's too (nil: time.Now)

	seed    maphash.Seed
	mu      sync.RWMutex
	entries map[uint64]verifiedToken
}

type verifiedToken struct {
	token   string // a copy: the caller's may share a request's buffer
	id      Identity
	expires time.Time // the token's expiry, leeway included
	until   time.Time // when the keys that checked it stop being trusted
	epoch   uint64    // of the org key cache, read before the check
}

// maxVerified bounds the cache (about 100 bytes an entry, and the token); when full it starts
// again empty.
const maxVerified = 100_000

// defaultVerifiedAge bounds cached answers when no org key cache sets the bound.
const defaultVerifiedAge = 10 * time.Second

func newVerified(keys *KeyCache) *verified {
	age := defaultVerifiedAge
	if keys != nil && keys.ttl < age {
		age = keys.ttl
	}
	return &verified{maxAge: age, keys: keys, seed: maphash.MakeSeed(), entries: map[uint64]verifiedToken{}}
}

// now is the clock of the org key cache, so that both age answers alike.
func (c *verified) now() time.Time {
	if c.keys != nil {
		return c.keys.now()
	}
	return time.Now()
}

// get returns the identity of a token verified earlier whose answer still holds at now, with
// the org key cache at epoch.
func (c *verified) get(token string, now time.Time, epoch uint64) (Identity, time.Time, bool) {
	c.mu.RLock()
	e, ok := c.entries[maphash.String(c.seed, token)]
	c.mu.RUnlock()
	if !ok || e.token != token || !now.Before(e.expires) || !now.Before(e.until) || e.epoch != epoch {
		return Identity{}, time.Time{}, false
	}
	return e.id, e.expires, true
}

// put remembers a token that passed the check begun at now, with the org key cache at epoch;
// keysUntil is when the keys the check used stop being trusted (zero: none were looked up).
func (c *verified) put(token string, id Identity, expires, now, keysUntil time.Time, epoch uint64) {
	until := now.Add(c.maxAge)
	if !keysUntil.IsZero() && keysUntil.Before(until) {
		until = keysUntil
	}
	c.mu.Lock()
	if len(c.entries) >= maxVerified {
		clear(c.entries)
	}
	c.entries[maphash.String(c.seed, token)] = verifiedToken{token: strings.Clone(token), id: id, expires: expires, until: until, epoch: epoch}
	c.mu.Unlock()
}
