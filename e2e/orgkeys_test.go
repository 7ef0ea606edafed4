package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/convead/chat-server/auth"
)

// orgToken signs a token for org with an organisation key named kid.
func orgToken(t *testing.T, m jwt.SigningMethod, kid string, key any, role auth.Role, org, sub string) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, jwt.MapClaims{"sub": sub, "role": string(role), "org": org, "exp": time.Now().Add(time.Hour).Unix()})
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestOrgKeysEndpointsAndDoors: once an organisation has keys, the server key no longer signs
// for it on any door, its own keys do (and only for it), secrets are never returned, and a
// deleted key stops working at once on this node.
func TestOrgKeysEndpointsAndDoors(t *testing.T) {
	var logs syncBuffer
	e := startLogged(t, testConfig(t), slog.New(slog.NewJSONHandler(&logs, nil)))
	shopSecret := "shop-own-secret-shop-own-secret-42"
	serverAdmin := token(t, auth.Service, "shop", "backoffice")
	r := want(t, e.call(http.MethodPut, "/admin/orgs/shop/keys/k1", serverAdmin, map[string]any{"alg": "HS256", "secret": shopSecret}), http.StatusOK)
	if strings.Contains(r.raw, shopSecret) || r.obj("key")["kid"] != "k1" || r.obj("key")["alg"] != "HS256" {
		t.Fatalf("put key reply: %s", r.raw)
	}
	// The server-signed service token of shop is no longer accepted: shop's keys only.
	if r := e.call(http.MethodGet, "/admin/orgs/shop/keys", serverAdmin, nil); r.status != http.StatusUnauthorized {
		t.Fatalf("server-key token of a keyed org: %d %s", r.status, r.raw)
	}
	admin := orgToken(t, jwt.SigningMethodHS256, "k1", []byte(shopSecret), auth.Service, "shop", "backoffice")
	if r := e.call(http.MethodPut, "/admin/orgs/shop/keys/k2", admin, map[string]any{"alg": "HS256", "secret": "short"}); r.errCode() != "invalid_key" {
		t.Fatalf("short secret: %s", r.raw)
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	want(t, e.call(http.MethodPut, "/admin/orgs/shop/keys/k2", admin, map[string]any{"alg": "ES256", "public_key": pemKey}), http.StatusOK)
	r = want(t, e.call(http.MethodGet, "/admin/orgs/shop/keys", admin, nil), http.StatusOK)
	if strings.Contains(r.raw, shopSecret) || strings.Contains(r.raw, "secret") || !strings.Contains(r.raw, `"kid":"k2"`) || !strings.Contains(r.raw, "created_at") {
		t.Fatalf("list keys: %s", r.raw)
	}

	serverVisitor := token(t, auth.Visitor, "shop", "v1")
	hsVisitor := orgToken(t, jwt.SigningMethodHS256, "k1", []byte(shopSecret), auth.Visitor, "shop", "v1")
	esManager := orgToken(t, jwt.SigningMethodES256, "k2", ec, auth.Manager, "shop", "m1")
	// REST, MQTT and Faye all refuse the server key for shop, and accept shop's keys.
	want(t, e.post("/chat/service/v1", serverVisitor, nil), http.StatusUnauthorized)
	if _, err := e.connect(serverVisitor, "v1"); err == nil {
		t.Fatal("MQTT accepted a server-key token of a keyed org")
	}
	if _, rs, _ := e.bayeux(`[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["long-polling"],"ext":{"token":"` + serverVisitor + `"}}]`); len(rs) != 1 || rs[0]["successful"] == true {
		t.Fatalf("Faye accepted a server-key token of a keyed org: %v", rs)
	}
	e.onDuty(esManager, "m1")
	e.handshake(hsVisitor)
	want(t, e.post("/chat/service/v1", hsVisitor, nil), http.StatusCreated)

	// shop's key cannot sign for another organisation, keyed or not.
	want(t, e.post("/chat/service/v1", orgToken(t, jwt.SigningMethodHS256, "k1", []byte(shopSecret), auth.Visitor, "other", "v1"), nil), http.StatusUnauthorized)

	// The server-wide admin token manages a keyed organisation's keys, and nothing else.
	ops, err := auth.Issue([]byte(secret), auth.Identity{Role: auth.Admin, Subject: "ops"}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	want(t, e.call(http.MethodGet, "/admin/orgs/shop/keys", ops, nil), http.StatusOK)
	want(t, e.post("/chat/service/v3", ops, nil), http.StatusUnauthorized)
	if _, err := e.connect(ops, "ops"); err == nil {
		t.Fatal("MQTT accepted an admin token")
	}
	if _, rs, _ := e.bayeux(`[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["long-polling"],"ext":{"token":"` + ops + `"}}]`); len(rs) != 1 || rs[0]["successful"] == true {
		t.Fatalf("Faye accepted an admin token: %v", rs)
	}

	want(t, e.call(http.MethodDelete, "/admin/orgs/shop/keys/k1", admin, nil), http.StatusNoContent)
	want(t, e.call(http.MethodDelete, "/admin/orgs/shop/keys/k1", esManager, nil), http.StatusForbidden)
	want(t, e.post("/chat/service/v2", orgToken(t, jwt.SigningMethodHS256, "k1", []byte(shopSecret), auth.Visitor, "shop", "v2"), nil), http.StatusUnauthorized)

	out := logs.String()
	for _, want := range []string{`"msg":"token refused"`, `unknown kid`, `"org":"shop"`, `"role":"visitor"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
	for _, tok := range []string{serverVisitor, hsVisitor, shopSecret} {
		if strings.Contains(out, tok[strings.LastIndexByte(tok, '.')+1:]) {
			t.Error("a token or secret is logged")
		}
	}
}

// TestOrgJWKS: an organisation's public keys uploaded as a JWKS document verify its tokens.
func TestOrgJWKS(t *testing.T) {
	e := start(t)
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := ec.PublicKey.Bytes()
	enc := base64.RawURLEncoding.EncodeToString
	doc := fmt.Sprintf(`{"keys":[{"kid":"jw1","kty":"EC","crv":"P-256","alg":"ES256","x":%q,"y":%q}]}`, enc(raw[1:33]), enc(raw[33:]))
	r := want(t, e.call(http.MethodPut, "/admin/orgs/jw/keys", token(t, auth.Service, "jw", "backoffice"), []byte(doc)), http.StatusOK)
	if !strings.Contains(r.raw, `"kid":"jw1"`) || !strings.Contains(r.raw, `"alg":"ES256"`) {
		t.Fatalf("put JWKS: %s", r.raw)
	}
	if r := e.call(http.MethodPut, "/admin/orgs/jw/keys", token(t, auth.Service, "jw", "backoffice"), []byte(doc)); r.status != http.StatusUnauthorized {
		t.Fatalf("the server key after the org has keys: %d", r.status)
	}
	admin := orgToken(t, jwt.SigningMethodES256, "jw1", ec, auth.Service, "jw", "backoffice")
	if r := e.call(http.MethodPut, "/admin/orgs/jw/keys", admin, []byte(`{"keys":[{"kid":"s","kty":"oct","k":"c2VjcmV0"}]}`)); r.errCode() != "invalid_key" {
		t.Fatalf("a symmetric JWK: %s", r.raw)
	}
	want(t, e.call(http.MethodGet, "/admin/orgs/jw/keys", admin, nil), http.StatusOK)
}
