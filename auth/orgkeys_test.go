package auth

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func pemOf(t *testing.T, pub any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func signKid(t *testing.T, m jwt.SigningMethod, kid string, key any, org string) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, jwt.MapClaims{"sub": "m1", "role": "manager", "org": org, "exp": time.Now().Add(time.Hour).Unix()})
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type orgFixture struct {
	rsaKey *rsa.PrivateKey
	ecKey  *ecdsa.PrivateKey
	hsO    []byte
	hsP    []byte
	keys   map[string][]OrgKey
	loads  atomic.Int32
}

func newOrgFixture(t *testing.T) *orgFixture {
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f := &orgFixture{rsaKey: rk, ecKey: ek, hsO: bytes.Repeat([]byte("o"), 32), hsP: bytes.Repeat([]byte("p"), 32)}
	f.keys = map[string][]OrgKey{
		"O": {{Kid: "o-hs", Alg: HS256, Secret: f.hsO}, {Kid: "o-rs", Alg: RS256, PublicKey: pemOf(t, &rk.PublicKey)}, {Kid: "o-es", Alg: ES256, PublicKey: pemOf(t, &ek.PublicKey)}},
		"P": {{Kid: "p-hs", Alg: HS256, Secret: f.hsP}},
	}
	return f
}

func (f *orgFixture) OrgKeys(_ context.Context, org string) ([]OrgKey, error) {
	f.loads.Add(1)
	return f.keys[org], nil
}

func TestOrgKeys(t *testing.T) {
	f := newOrgFixture(t)
	v := NewVerifier(Config{Secret: secret, OrgKeys: NewKeyCache(f, time.Minute)})
	rsaPEM := []byte(f.keys["O"][1].PublicKey)
	tests := []struct {
		name  string
		token string
		want  error // nil: accepted
	}{
		{"OrgHS256", signKid(t, jwt.SigningMethodHS256, "o-hs", f.hsO, "O"), nil},
		{"OrgRS256", signKid(t, jwt.SigningMethodRS256, "o-rs", f.rsaKey, "O"), nil},
		{"OrgES256", signKid(t, jwt.SigningMethodES256, "o-es", f.ecKey, "O"), nil},
		{"ServerKeyForOrgWithoutKeys", signKid(t, jwt.SigningMethodHS256, "", secret, "Q"), nil},
		{"ServerKeyForOrgWithKeys", signKid(t, jwt.SigningMethodHS256, "", secret, "O"), ErrUnknownKid},
		{"OtherOrgsKid", signKid(t, jwt.SigningMethodHS256, "p-hs", f.hsP, "O"), ErrUnknownKid},
		{"OrgKeySignsForOtherOrg", signKid(t, jwt.SigningMethodHS256, "p-hs", f.hsO, "P"), ErrWrongOrgKey},
		{"RSAPublicKeyAsHS256Secret", signKid(t, jwt.SigningMethodHS256, "o-rs", rsaPEM, "O"), ErrAlgMismatch},
		{"AlgNotKeysAlg", signKid(t, jwt.SigningMethodES256, "o-rs", f.ecKey, "O"), ErrAlgMismatch},
		{"AsymmetricWithServerKey", signKid(t, jwt.SigningMethodRS256, "", f.rsaKey, "Q"), ErrAlgMismatch},
		{"AlgNone", signKid(t, jwt.SigningMethodNone, "o-hs", jwt.UnsafeAllowNoneSignatureType, "O"), ErrInvalidToken},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, err := v.Verify(tc.token)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if id.Role != Manager {
					t.Fatalf("identity %v", id)
				}
				return
			}
			if !errors.Is(err, tc.want) || !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestOrgKeysRotationByKid(t *testing.T) {
	f := newOrgFixture(t)
	second := bytes.Repeat([]byte("2"), 32)
	f.keys["O"] = append(f.keys["O"], OrgKey{Kid: "o-hs2", Alg: HS256, Secret: second})
	v := NewVerifier(Config{Secret: secret, OrgKeys: NewKeyCache(f, time.Minute)})
	for kid, key := range map[string][]byte{"o-hs": f.hsO, "o-hs2": second} {
		if _, err := v.Verify(signKid(t, jwt.SigningMethodHS256, kid, key, "O")); err != nil {
			t.Errorf("kid %s: %v", kid, err)
		}
	}
	if _, err := v.Verify(signKid(t, jwt.SigningMethodHS256, "o-hs2", f.hsO, "O")); !errors.Is(err, ErrWrongOrgKey) {
		t.Errorf("key of o-hs under kid o-hs2: %v", err)
	}
}

func TestKeyCache(t *testing.T) {
	f := newOrgFixture(t)
	c := NewKeyCache(f, time.Minute)
	clock := time.Unix(1000, 0)
	c.now = func() time.Time { return clock }
	v := NewVerifier(Config{Secret: secret, OrgKeys: c})
	tok := signKid(t, jwt.SigningMethodHS256, "o-hs", f.hsO, "O")
	for range 3 {
		if _, err := v.Verify(tok); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.loads.Load(); n != 1 {
		t.Fatalf("%d loads, want 1 (cached)", n)
	}
	f.keys["O"] = nil // deleted on another node: seen after the TTL
	if _, err := v.Verify(tok); err != nil {
		t.Fatalf("within the TTL: %v", err)
	}
	clock = clock.Add(time.Minute)
	if _, err := v.Verify(tok); !errors.Is(err, ErrUnknownKid) {
		t.Fatalf("after the TTL: %v", err)
	}
	f.keys["O"] = []OrgKey{{Kid: "o-hs", Alg: HS256, Secret: f.hsO}}
	c.Invalidate("O")
	if _, err := v.Verify(tok); err != nil {
		t.Fatalf("after Invalidate: %v", err)
	}
	// A malformed org claim is refused before it reaches the store.
	loads := f.loads.Load()
	if _, err := v.Verify(signKid(t, jwt.SigningMethodHS256, "o-hs", f.hsO, strings.Repeat("x", 500))); !errors.Is(err, ErrInvalidToken) || f.loads.Load() != loads {
		t.Fatalf("malformed org: %v, %d loads", err, f.loads.Load()-loads)
	}
}

func TestValidateOrgKey(t *testing.T) {
	f := newOrgFixture(t)
	rsaPEM, ecPEM := f.keys["O"][1].PublicKey, f.keys["O"][2].PublicKey
	for _, k := range []OrgKey{
		{Kid: "a", Alg: HS256, Secret: []byte("short")},
		{Kid: "a", Alg: RS256, PublicKey: ecPEM},
		{Kid: "a", Alg: ES256, PublicKey: rsaPEM},
		{Kid: "a", Alg: RS256, PublicKey: "not pem"},
		{Kid: "a", Alg: "none"},
		{Kid: "a", Alg: "HS512", Secret: f.hsO},
	} {
		if ValidateOrgKey(k) == nil {
			t.Errorf("%v accepted", k)
		}
	}
	if strings.Contains(OrgKey{Kid: "a", Alg: HS256, Secret: f.hsO}.String(), string(f.hsO)) {
		t.Error("String shows the secret")
	}
}

func TestRefusedTokensLogged(t *testing.T) {
	var buf bytes.Buffer
	v := NewVerifier(Config{Secret: secret, Log: slog.New(slog.NewTextHandler(&buf, nil)), LogPerMinute: 2})
	tok := signKid(t, jwt.SigningMethodHS256, "", []byte("wrong-wrong-wrong-wrong-wrong-wrong"), "O")
	for range 5 {
		if _, err := v.Verify(tok); err == nil {
			t.Fatal("accepted")
		}
	}
	out := buf.String()
	if n := strings.Count(out, "token refused"); n != 2 {
		t.Errorf("%d lines, want 2 (rate-limited):\n%s", n, out)
	}
	if !strings.Contains(out, "org=O") || !strings.Contains(out, "role=manager") || !strings.Contains(out, "sub=m1") || !strings.Contains(out, "bad signature") {
		t.Errorf("missing reason or claims:\n%s", out)
	}
	if strings.Contains(out, tok) || strings.Contains(out, strings.Split(tok, ".")[2]) {
		t.Error("the token is logged")
	}
}
