package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestParseJWKS(t *testing.T) {
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	raw, _ := ek.PublicKey.Bytes() // 0x04 || x || y
	x, y := enc(raw[1:33]), enc(raw[33:])
	n, e := enc(rk.N.Bytes()), enc(big.NewInt(int64(rk.E)).Bytes())
	doc := fmt.Sprintf(`{"keys":[{"kid":"r1","kty":"RSA","alg":"RS256","use":"sig","n":%q,"e":%q},{"kid":"e1","kty":"EC","crv":"P-256","x":%q,"y":%q}]}`, n, e, x, y)
	keys, err := ParseJWKS([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	f := &orgFixture{keys: map[string][]OrgKey{"O": keys}}
	v := NewVerifier(Config{Secret: secret, OrgKeys: NewKeyCache(f, time.Minute)})
	for _, tok := range []string{signKid(t, jwt.SigningMethodRS256, "r1", rk, "O"), signKid(t, jwt.SigningMethodES256, "e1", ek, "O")} {
		if _, err := v.Verify(tok); err != nil {
			t.Errorf("a key from the JWKS: %v", err)
		}
	}
	for name, bad := range map[string]string{
		"oct":          `{"keys":[{"kid":"s","kty":"oct","k":"c2VjcmV0"}]}`,
		"private":      fmt.Sprintf(`{"keys":[{"kid":"r","kty":"RSA","n":%q,"e":%q,"d":"AQAB"}]}`, n, e),
		"no kid":       fmt.Sprintf(`{"keys":[{"kty":"RSA","n":%q,"e":%q}]}`, n, e),
		"alg mismatch": fmt.Sprintf(`{"keys":[{"kid":"r","kty":"RSA","alg":"HS256","n":%q,"e":%q}]}`, n, e),
		"off curve":    fmt.Sprintf(`{"keys":[{"kid":"e","kty":"EC","crv":"P-256","x":%q,"y":%q}]}`, x, x),
		"short RSA":    `{"keys":[{"kid":"r","kty":"RSA","n":"AQAB","e":"AQAB"}]}`,
		"twice":        fmt.Sprintf(`{"keys":[{"kid":"e","kty":"EC","crv":"P-256","x":%q,"y":%q},{"kid":"e","kty":"EC","crv":"P-256","x":%q,"y":%q}]}`, x, y, x, y),
		"empty":        `{"keys":[]}`,
	} {
		if _, err := ParseJWKS([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
