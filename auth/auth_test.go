package auth

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

func sign(t *testing.T, method jwt.SigningMethod, key any, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerify(t *testing.T) {
	v := NewVerifier(Config{Secret: secret, Leeway: 30 * time.Second})
	now := time.Now()
	good := jwt.MapClaims{"sub": "v1", "role": "visitor", "org": "O", "exp": now.Add(time.Hour).Unix()}
	with := func(k string, val any) jwt.MapClaims {
		c := jwt.MapClaims{}
		for kk, vv := range good {
			c[kk] = vv
		}
		if val == nil {
			delete(c, k)
		} else {
			c[k] = val
		}
		return c
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	unsigned := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, good)
	// HS/RS confusion: an HS256 token "signed" with the secret but labelled RS256.
	confused := func() string {
		parts := strings.Split(sign(t, jwt.SigningMethodHS256, secret, good), ".")
		parts[0] = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT"}`))
		return strings.Join(parts, ".")
	}()
	cases := []struct {
		name  string
		token string
		ok    bool
	}{
		{"valid", sign(t, jwt.SigningMethodHS256, secret, good), true},
		{"within leeway", sign(t, jwt.SigningMethodHS256, secret, with("exp", now.Add(-10*time.Second).Unix())), true},
		{"expired", sign(t, jwt.SigningMethodHS256, secret, with("exp", now.Add(-time.Minute).Unix())), false},
		{"no exp", sign(t, jwt.SigningMethodHS256, secret, with("exp", nil)), false},
		{"not yet valid", sign(t, jwt.SigningMethodHS256, secret, with("nbf", now.Add(time.Hour).Unix())), false},
		{"forged", sign(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret-xx"), good), false},
		{"alg none", unsigned, false},
		{"RS256", sign(t, jwt.SigningMethodRS256, rsaKey, good), false},
		{"alg confusion", confused, false},
		{"unknown role", sign(t, jwt.SigningMethodHS256, secret, with("role", "admin")), false},
		{"no org", sign(t, jwt.SigningMethodHS256, secret, with("org", nil)), false},
		{"bad sub", sign(t, jwt.SigningMethodHS256, secret, with("sub", "a/b")), false},
		{"role wrong type", sign(t, jwt.SigningMethodHS256, secret, with("role", 7)), false},
		{"garbage", "not.a.token", false},
		{"empty", "", false},
		{"huge", strings.Repeat("a", MaxTokenBytes+1), false},
	}
	for _, tc := range cases {
		id, err := v.Verify(tc.token)
		if tc.ok {
			if err != nil || id != (Identity{Subject: "v1", Role: Visitor, Org: "O"}) {
				t.Errorf("%s: Verify = %+v, %v", tc.name, id, err)
			}
			continue
		}
		if err == nil || !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s: Verify error = %v, want ErrInvalidToken", tc.name, err)
		}
		if err != nil && len(tc.token) > 20 && strings.Contains(err.Error(), tc.token) {
			t.Errorf("%s: error quotes the token", tc.name)
		}
	}
}

func TestIssueRoundTrip(t *testing.T) {
	v := NewVerifier(Config{Secret: secret})
	for _, id := range []Identity{{"v1", Visitor, "O"}, {"m-1", Manager, "org_2"}, {"backoffice", Service, "O"}} {
		tok, err := Issue(secret, id, time.Hour, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		got, err := v.Verify(tok)
		if err != nil || got != id {
			t.Errorf("Verify(Issue(%v)) = %v, %v", id, got, err)
		}
	}
	if _, err := Issue(secret, Identity{"v1", "root", "O"}, time.Hour, time.Now()); err == nil {
		t.Error("Issue accepted an unknown role")
	}
	if _, err := Issue(secret, Identity{"v1", Visitor, "O"}, 0, time.Now()); err == nil {
		t.Error("Issue accepted a zero ttl")
	}
}

func FuzzVerify(f *testing.F) {
	tok, _ := Issue(secret, Identity{"v1", Visitor, "O"}, time.Hour, time.Now())
	f.Add(tok)
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("a.b.c")
	v := NewVerifier(Config{Secret: secret})
	f.Fuzz(func(t *testing.T, s string) {
		id, err := v.Verify(s)
		if err == nil && (id.validate() != nil) {
			t.Fatalf("accepted an invalid identity %+v", id)
		}
	})
}

func TestKey(t *testing.T) {
	id := Identity{Subject: "m-1", Role: Manager, Org: "org_2"}
	if got, ok := ParseKey(id.Key()); !ok || got != id {
		t.Fatalf("ParseKey(%q) = %v, %v", id.Key(), got, ok)
	}
	for _, bad := range []string{"", "manager:o", "root:o:s", "manager:o:s:x", "manager::s", "visitor:o:a/b"} {
		if _, ok := ParseKey(bad); ok {
			t.Errorf("ParseKey(%q) accepted", bad)
		}
	}
}

func TestVerifyExpiry(t *testing.T) {
	now := time.Now()
	tok, _ := Issue(secret, Identity{"v1", Visitor, "O"}, time.Hour, now)
	_, exp, err := NewVerifier(Config{Secret: secret, Leeway: 30 * time.Second}).VerifyExpiry(tok)
	if err != nil || exp.Unix() != now.Add(time.Hour+30*time.Second).Unix() {
		t.Fatalf("VerifyExpiry = %v, %v; want exp plus leeway", exp, err)
	}
}

func TestKeyRotationAudienceIssuer(t *testing.T) {
	old := []byte("old-secret-old-secret-old-secret-0")
	cfg := Config{Secret: secret, KeyID: "k2", Previous: map[string][]byte{"k1": old}, Audience: "chat", Issuer: "shop-backend"}
	v := NewVerifier(cfg)
	id := Identity{"v1", Visitor, "O"}
	now := time.Now()
	current, err := v.Issue(id, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	previous, _ := NewVerifier(Config{Secret: old, KeyID: "k1", Audience: "chat", Issuer: "shop-backend"}).Issue(id, time.Hour, now)
	unknownKid, _ := NewVerifier(Config{Secret: old, KeyID: "k0", Audience: "chat", Issuer: "shop-backend"}).Issue(id, time.Hour, now)
	oldNoKid, _ := NewVerifier(Config{Secret: old, Audience: "chat", Issuer: "shop-backend"}).Issue(id, time.Hour, now)
	wrongAud, _ := NewVerifier(Config{Secret: secret, KeyID: "k2", Audience: "other", Issuer: "shop-backend"}).Issue(id, time.Hour, now)
	noIss, _ := NewVerifier(Config{Secret: secret, KeyID: "k2", Audience: "chat"}).Issue(id, time.Hour, now)
	// A previous key's id with the current secret: the kid picks the key, so the signature fails.
	swapped, _ := NewVerifier(Config{Secret: secret, KeyID: "k1", Audience: "chat", Issuer: "shop-backend"}).Issue(id, time.Hour, now)
	cases := []struct {
		name, token string
		ok          bool
	}{
		{"current key", current, true},
		{"previous key by kid", previous, true},
		{"unknown kid", unknownKid, false},
		{"old secret without kid", oldNoKid, false},
		{"wrong audience", wrongAud, false},
		{"no issuer", noIss, false},
		{"kid of another key", swapped, false},
	}
	for _, tc := range cases {
		got, err := v.Verify(tc.token)
		if (err == nil) != tc.ok || (tc.ok && got != id) {
			t.Errorf("%s: %v, %v; want ok=%v", tc.name, got, err, tc.ok)
		}
	}
}

// TestAdminToken: an admin token is server-wide, signed by the server key only, and accepted
// by VerifyAdmin (the administration API) but by no chat door.
func TestAdminToken(t *testing.T) {
	v := NewVerifier(Config{Secret: secret})
	now := time.Now()
	admin, err := Issue(secret, Identity{Role: Admin, Subject: "ops"}, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(admin); !errors.Is(err, ErrAdminToken) {
		t.Fatalf("Verify(admin) = %v, want ErrAdminToken", err)
	}
	if id, err := v.VerifyAdmin(admin); err != nil || id.Role != Admin || id.Org != "" || id.Subject != "ops" {
		t.Fatalf("VerifyAdmin(admin) = %+v, %v", id, err)
	}
	// An admin claim with an org would be checked against that org's keys: refused.
	withOrg := sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "ops", "role": "admin", "org": "O", "exp": now.Add(time.Hour).Unix()})
	if _, err := v.VerifyAdmin(withOrg); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("admin token with an org: %v", err)
	}
	if _, err := Issue(secret, Identity{Role: Admin, Org: "O", Subject: "ops"}, time.Hour, now); err == nil {
		t.Fatal("issued an admin token with an org")
	}
	// A stored MQTT session can never name an admin.
	if _, ok := ParseKey("admin::ops"); ok {
		t.Fatal("ParseKey accepted an admin identity")
	}
}
