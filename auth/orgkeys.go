package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// The algorithms an organisation key may have. HS256 is a shared secret; RS256 and ES256 are
// public keys, so that the organisation keeps the private half and the server can only verify.
const (
	HS256 = "HS256"
	RS256 = "RS256"
	ES256 = "ES256"
)

// MinSecretBytes is the shortest HS256 secret accepted, as for the server secret.
const MinSecretBytes = 32

// OrgKey is one verification key of an organisation, named by the kid its tokens carry.
// Secret is set for HS256, PublicKey (PEM) for RS256 and ES256.
type OrgKey struct {
	Kid       string
	Alg       string
	Secret    []byte
	PublicKey string
}

// String never shows the key material, so that an OrgKey in a log line leaks nothing.
func (k OrgKey) String() string { return "orgkey:" + k.Kid + "/" + k.Alg }

// verificationKey returns the key the JWT library verifies k's tokens with. Parsing here (and
// caching the result) means a PEM is decoded once per cache fill, not once per token.
func (k OrgKey) verificationKey() (any, error) {
	switch k.Alg {
	case HS256:
		if len(k.Secret) < MinSecretBytes {
			return nil, fmt.Errorf("HS256 secret must be at least %d bytes", MinSecretBytes)
		}
		return k.Secret, nil
	case RS256, ES256:
		block, _ := pem.Decode([]byte(k.PublicKey))
		if block == nil {
			return nil, errors.New("public_key is not PEM")
		}
		pub, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("public_key: %w", err)
		}
		switch p := pub.(type) {
		case *rsa.PublicKey:
			if k.Alg != RS256 {
				return nil, fmt.Errorf("an RSA public key cannot be %s", k.Alg)
			}
			if p.N.BitLen() < 2048 {
				return nil, errors.New("RSA public key must have at least 2048 bits")
			}
			return p, nil
		case *ecdsa.PublicKey:
			if k.Alg != ES256 || p.Curve != elliptic.P256() {
				return nil, fmt.Errorf("%s needs a P-256 ECDSA public key", k.Alg)
			}
			return p, nil
		}
		return nil, fmt.Errorf("public key of type %T is not RSA or ECDSA", pub)
	}
	return nil, fmt.Errorf("alg %q is not HS256, RS256 or ES256", k.Alg)
}

// ValidateOrgKey reports why k cannot verify tokens, or nil; the API checks a key with it
// before storing it, so that a stored key always parses.
func ValidateOrgKey(k OrgKey) error {
	_, err := k.verificationKey()
	return err
}

// KeySource loads an organisation's keys; none (and no error) means the organisation uses
// the server key.
type KeySource interface {
	OrgKeys(ctx context.Context, org string) ([]OrgKey, error)
}

// KeySourceFunc adapts a function to KeySource.
type KeySourceFunc func(ctx context.Context, org string) ([]OrgKey, error)

// OrgKeys calls f.
func (f KeySourceFunc) OrgKeys(ctx context.Context, org string) ([]OrgKey, error) { return f(ctx, org) }

// parsedKey is an OrgKey ready for the JWT library.
type parsedKey struct {
	alg string
	key any
}

type cacheEntry struct {
	keys    map[string]parsedKey // by kid; empty: the organisation has no keys
	expires time.Time
}

// KeyCache keeps organisations' parsed keys in memory so that verifying a token does not
// read the store. Invalidate drops an organisation at once on this node; other nodes of a
// cluster see a change when their entry expires, so TTL bounds how long a deleted key is
// still accepted elsewhere.
type KeyCache struct {
	src KeySource
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	entries map[string]cacheEntry
	// changes counts Invalidate calls: the verifier's cache of checked tokens keeps answers
	// only while it has not moved.
	changes atomic.Uint64
}

// NewKeyCache caches src's answers for ttl.
func NewKeyCache(src KeySource, ttl time.Duration) *KeyCache {
	return &KeyCache{src: src, ttl: ttl, now: time.Now, entries: map[string]cacheEntry{}}
}

// Invalidate forgets org's keys, after they changed on this node. A nil cache has nothing to
// forget.
func (c *KeyCache) Invalidate(org string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	delete(c.entries, org)
	c.mu.Unlock()
	c.changes.Add(1)
}

// epoch is the number of changes made on this node so far (0 for a nil cache).
func (c *KeyCache) epoch() uint64 {
	if c == nil {
		return 0
	}
	return c.changes.Load()
}

// keys returns org's keys by kid. A key that no longer parses is left out rather than failing
// the organisation, so that one bad key cannot lock every token of it out; its kid is then
// unknown.
func (c *KeyCache) keys(ctx context.Context, org string) (map[string]parsedKey, time.Time, error) {
	now := c.now()
	c.mu.Lock()
	e, ok := c.entries[org]
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.keys, e.expires, nil
	}
	list, err := c.src.OrgKeys(ctx, org)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("load keys of organisation %s: %w", org, err)
	}
	keys := make(map[string]parsedKey, len(list))
	for _, k := range list {
		if pk, err := k.verificationKey(); err == nil {
			keys[k.Kid] = parsedKey{alg: k.Alg, key: pk}
		}
	}
	c.mu.Lock()
	if len(c.entries) >= maxCachedOrgs {
		clear(c.entries) // bounded memory; refilled on demand
	}
	c.entries[org] = cacheEntry{keys: keys, expires: now.Add(c.ttl)}
	c.mu.Unlock()
	return keys, now.Add(c.ttl), nil
}

// maxCachedOrgs bounds the cache, since the org claim of an unverified token picks the entry.
const maxCachedOrgs = 100_000
