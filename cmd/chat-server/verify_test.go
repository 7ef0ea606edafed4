package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/convead/chat-server/auth"
	"github.com/convead/chat-server/store"
	"github.com/convead/chat-server/store/bolt"
)

func TestTokenVerify(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	shopSecret := []byte("shop-own-secret-shop-own-secret-42")
	st, err := bolt.Open(data)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.PutOrgKey(context.Background(), store.OrgKey{OrgID: "shop", Kid: "k1", Alg: auth.HS256, Secret: shopSecret, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	sign := func(key []byte, kid, org string, exp time.Time, aud string) string {
		c := jwt.MapClaims{"sub": "u1", "role": "manager", "org": org, "exp": exp.Unix()}
		if aud != "" {
			c["aud"] = aud
		}
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
		if kid != "" {
			tok.Header["kid"] = kid
		}
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	server := []byte(testSecret)
	hour := now.Add(time.Hour)
	cases := []struct {
		name, token, aud string
		code             int
		out              string
	}{
		{"server key, organisation without keys", sign(server, "", "other", hour, ""), "", 0, "accepted: manager:other/u1"},
		{"organisation key", sign(shopSecret, "k1", "shop", hour, ""), "", 0, "accepted: manager:shop/u1"},
		{"server key for a keyed organisation", sign(server, "", "shop", hour, ""), "", 1, "unknown kid"},
		{"organisation key for another organisation", sign(shopSecret, "k1", "other", hour, ""), "", 1, "unknown kid"},
		{"wrong organisation key", sign(server, "k1", "shop", hour, ""), "", 1, "not signed by a key of the token's organisation"},
		{"expired", sign(shopSecret, "k1", "shop", now.Add(-time.Hour), ""), "", 1, "expired"},
		{"bad audience", sign(shopSecret, "k1", "shop", hour, "elsewhere"), "chat", 1, "bad audience"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := map[string]string{"CHAT_DATA_DIR": data, "CHAT_AUTH_JWT_SECRET": testSecret, "CHAT_AUTH_AUDIENCE": c.aud}
			var stdout, stderr bytes.Buffer
			code := runEnv([]string{"token", "verify", c.token}, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, &stdout, &stderr)
			if code != c.code || !strings.Contains(stdout.String(), c.out) {
				t.Fatalf("exit %d (want %d)\nstdout: %s\nstderr: %s", code, c.code, stdout.String(), stderr.String())
			}
			if strings.Contains(stdout.String()+stderr.String(), c.token) {
				t.Error("the token is printed")
			}
		})
	}
	var stderr bytes.Buffer
	if code := runEnv([]string{"token", "verify"}, func(string) (string, bool) { return "", false }, &bytes.Buffer{}, &stderr); code != exitUsage {
		t.Errorf("no TOKEN: exit %d, %s", code, stderr.String())
	}
}
