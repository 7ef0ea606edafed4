package auth

import (
	"errors"
	"hash/maphash"
	"testing"
	"time"
	"unsafe"

	"github.com/golang-jwt/jwt/v5"
)

// TestVerifiedTokens: a token checked once is answered from memory, but never past its expiry,
// never for another kind of check, and never after this node changed an organisation's keys
// or after the key cache's TTL (a change made on another node).
func TestVerifiedTokens(t *testing.T) {
	f := newOrgFixture(t)
	keys := NewKeyCache(f, time.Minute)
	clock := time.Now()
	keys.now = func() time.Time { return clock }
	v := NewVerifier(Config{Secret: secret, OrgKeys: keys})

	// Expiry: the cached answer ends with the token (no leeway configured).
	short := sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "v1", "role": "visitor", "org": "Q", "exp": time.Now().Add(1500 * time.Millisecond).Unix()})
	if _, err := v.Verify(short); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(2 * time.Second)
	time.Sleep(time.Until(clock))
	if _, err := v.Verify(short); !errors.Is(err, ErrExpired) {
		t.Fatalf("an expired token answered from memory: %v", err)
	}

	// A key deleted on this node: refused at once.
	tok := signKid(t, jwt.SigningMethodHS256, "o-hs", f.hsO, "O")
	if _, err := v.Verify(tok); err != nil {
		t.Fatal(err)
	}
	f.keys["O"] = nil
	keys.Invalidate("O")
	if _, err := v.Verify(tok); !errors.Is(err, ErrUnknownKid) {
		t.Fatalf("after this node deleted the key: %v", err)
	}

	// A key deleted on another node: refused once the key cache's TTL has passed.
	f.keys["O"] = []OrgKey{{Kid: "o-hs", Alg: HS256, Secret: f.hsO}}
	keys.Invalidate("O")
	if _, err := v.Verify(tok); err != nil {
		t.Fatal(err)
	}
	f.keys["O"] = nil
	clock = clock.Add(59 * time.Second)
	if _, err := v.Verify(tok); err != nil {
		t.Fatalf("within the TTL: %v", err)
	}
	clock = clock.Add(time.Second)
	if _, err := v.Verify(tok); !errors.Is(err, ErrUnknownKid) {
		t.Fatalf("after the TTL: %v", err)
	}

	// An admin token checked for /admin is still no token for the chat doors.
	admin, err := Issue(secret, Identity{Role: Admin, Subject: "ops"}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.VerifyAdmin(admin); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(admin); !errors.Is(err, ErrAdminToken) {
		t.Fatalf("Verify after VerifyAdmin of an admin token: %v", err)
	}
}

// BenchmarkVerifySameToken is a session's nth message: the same token again.
func BenchmarkVerifySameToken(b *testing.B) {
	v := NewVerifier(Config{Secret: secret})
	tok, err := Issue(secret, Identity{Role: Visitor, Org: "O", Subject: "v1"}, time.Hour, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(tok); err != nil {
			b.Fatal(err)
		}
	}
}

// TestVerifiedTokenExactMatch: an entry answers only the very token it was stored for. A
// hash collision (made here by moving an entry under another token's hash) is a miss, and the
// stored token is a copy, unchanged when the caller's buffer is reused.
func TestVerifiedTokenExactMatch(t *testing.T) {
	c := newVerified(nil)
	now := time.Now()
	id := Identity{Subject: "v1", Role: Visitor, Org: "Q"}
	buf := []byte("token-a")
	c.put(string(buf), id, now.Add(time.Hour), now, time.Time{}, 0)
	if got, _, ok := c.get("token-a", now, 0); !ok || got != id {
		t.Fatalf("get(token-a) = %v, %v", got, ok)
	}
	entry := c.entries[maphash.String(c.seed, "token-a")]
	c.entries[maphash.String(c.seed, "token-b")] = entry
	if _, _, ok := c.get("token-b", now, 0); ok {
		t.Fatal("a colliding token was answered with another token's identity")
	}
	shared := unsafe.String(&buf[0], len(buf)) // a token sharing a request's buffer
	c.put(shared, id, now.Add(time.Hour), now, time.Time{}, 0)
	copy(buf, "token-x")
	if _, _, ok := c.get("token-a", now, 0); !ok {
		t.Fatal("the cache kept the caller's buffer instead of a copy")
	}
}
