package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/convead/chat-server/auth"
	"github.com/convead/chat-server/config"
	"github.com/convead/chat-server/store"
)

// Verifier builds the token verifier (and issuer) of cfg with the current secret. orgKeys,
// when set, adds the organisations' own keys; log, when set, receives refused tokens.
func Verifier(cfg *config.Config, secret []byte, orgKeys *auth.KeyCache, log *slog.Logger) (*auth.Verifier, error) {
	previous, err := cfg.Auth.PreviousKeys()
	if err != nil {
		return nil, err
	}
	return auth.NewVerifier(auth.Config{Secret: secret, KeyID: cfg.Auth.JWTKeyID, Previous: previous,
		Leeway: cfg.Auth.Leeway, Audience: cfg.Auth.Audience, Issuer: cfg.Auth.Issuer, OrgKeys: orgKeys, Log: log}), nil
}

// OrgKeysTTL is how long a node trusts its cached copy of an organisation's keys. A change
// made on this node is seen at once; on the other nodes of a cluster, within OrgKeysTTL: a
// deleted key may verify tokens there for that long.
const OrgKeysTTL = 10 * time.Second

// OrgKeyCache caches the organisation keys of st for the verifier.
func OrgKeyCache(st store.Store) *auth.KeyCache {
	return auth.NewKeyCache(auth.KeySourceFunc(func(ctx context.Context, org string) ([]auth.OrgKey, error) {
		keys, err := st.OrgKeys(ctx, org)
		if err != nil {
			return nil, err
		}
		out := make([]auth.OrgKey, len(keys))
		for i, k := range keys {
			out[i] = auth.OrgKey{Kid: k.Kid, Alg: k.Alg, Secret: k.Secret, PublicKey: k.PublicKey}
		}
		return out, nil
	}), OrgKeysTTL)
}

// SecretFile holds the generated JWT secret inside the data folder.
const SecretFile = "jwt-secret"

// Secret returns the configured JWT secret, or the one generated on first start and kept in
// the data folder (readable by its owner only).
func Secret(cfg *config.Config) ([]byte, error) {
	if cfg.Auth.JWTSecret != "" {
		return []byte(cfg.Auth.JWTSecret), nil
	}
	path := filepath.Join(cfg.DataDir, SecretFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		s := strings.TrimSpace(string(b))
		if len(s) < 32 {
			return nil, fmt.Errorf("secret in %s is shorter than 32 characters: delete it to generate a new one, or set auth.jwt_secret", path)
		}
		return []byte(s), nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("read JWT secret: %w", err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data folder %s: %w", cfg.DataDir, err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("generate JWT secret: %w", err)
	}
	tmp, err := os.CreateTemp(cfg.DataDir, SecretFile+".*")
	if err != nil {
		return nil, fmt.Errorf("write JWT secret: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(hex.EncodeToString(raw) + "\n")
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("write JWT secret: %w", err)
	}
	// A hard link appears whole or not at all, and fails if another process won the race.
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("write JWT secret %s: %w", path, err)
	}
	return Secret(cfg)
}
