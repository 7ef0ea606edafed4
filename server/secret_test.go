package server

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/convead/chat-server/config"
)

func TestSecretGeneratedOnceAndPrivate(t *testing.T) {
	cfg := &config.Config{DataDir: filepath.Join(t.TempDir(), "data")}
	var wg sync.WaitGroup
	secrets := make([]string, 8)
	for i := range secrets {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			s, err := Secret(cfg)
			if err != nil {
				t.Error(err)
			}
			secrets[i] = string(s)
		}(i)
	}
	wg.Wait()
	for _, s := range secrets {
		if s != secrets[0] || len(s) != 64 {
			t.Fatalf("concurrent first starts disagree on the secret: %q", secrets)
		}
	}
	info, err := os.Stat(filepath.Join(cfg.DataDir, SecretFile))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("secret file: %v %v", info, err)
	}
	entries, _ := os.ReadDir(cfg.DataDir)
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}

func TestSecretConfiguredWinsAndShortIsRefused(t *testing.T) {
	cfg := &config.Config{DataDir: t.TempDir(), Auth: config.Auth{JWTSecret: strings.Repeat("k", 32)}}
	if s, err := Secret(cfg); err != nil || string(s) != cfg.Auth.JWTSecret {
		t.Fatalf("configured secret: %q, %v", s, err)
	}
	cfg.Auth.JWTSecret = ""
	if err := os.WriteFile(filepath.Join(cfg.DataDir, SecretFile), []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Secret(cfg); err == nil || !strings.Contains(err.Error(), "auth.jwt_secret") {
		t.Fatalf("short stored secret: %v", err)
	}
}
