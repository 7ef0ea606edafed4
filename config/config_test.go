package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestDefaults(t *testing.T) {
	c, err := Load("", env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP.Addr != ":8000" || c.MQTT.Addr != ":1883" || c.Mongo.URI != "" || c.DataDir != "data" {
		t.Errorf("unexpected defaults: %+v", c)
	}
	if c.API.MaxMessagesCount != 50 || c.Limits.ContentChars != 10000 || c.Limits.HTTPBodyBytes != 1<<20 {
		t.Errorf("unexpected limits: %+v %+v", c.API, c.Limits)
	}
}

func TestFileThenEnv(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte("http:\n  addr: \":9000\"\napi:\n  max_messages_count: 7\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path, env(map[string]string{
		"CHAT_HTTP_ADDR":              ":0",
		"CHAT_MQTT_ADDR":              "127.0.0.1:0",
		"CHAT_MONGO_URI":              "mongodb://x",
		"CHAT_DATA_DIR":               "/tmp/d",
		"CHAT_AUTH_JWT_SECRET":        strings.Repeat("s", 32),
		"CHAT_HTTP_ALLOWED_ORIGINS":   "https://a.example, https://b.example",
		"CHAT_HTTP_READ_TIMEOUT":      "3s",
		"CHAT_API_MAX_MESSAGES_COUNT": "9",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP.Addr != ":0" || c.MQTT.Addr != "127.0.0.1:0" || c.Mongo.URI != "mongodb://x" || c.DataDir != "/tmp/d" {
		t.Errorf("env not applied: %+v", c)
	}
	if c.API.MaxMessagesCount != 9 || c.HTTP.ReadTimeout != 3*time.Second {
		t.Errorf("env not applied: %+v %+v", c.API, c.HTTP)
	}
	if len(c.HTTP.AllowedOrigins) != 2 || c.HTTP.AllowedOrigins[1] != "https://b.example" {
		t.Errorf("origins = %q", c.HTTP.AllowedOrigins)
	}
}

func TestErrorsNameTheKey(t *testing.T) {
	cases := []struct {
		env  map[string]string
		file string
		want string
	}{
		{env: map[string]string{"CHAT_API_MAX_MESSAGES_COUNT": "ten"}, want: "CHAT_API_MAX_MESSAGES_COUNT"},
		{env: map[string]string{"CHAT_API_MAX_MESSAGES_COUNT": "0"}, want: "api.max_messages_count"},
		{env: map[string]string{"CHAT_AUTH_JWT_SECRET": "short"}, want: "auth.jwt_secret"},
		{env: map[string]string{"CHAT_LOG_LEVEL": "loud"}, want: "log.level"},
		{env: map[string]string{"CHAT_HTTP_READ_TIMEOUT": "soon"}, want: "CHAT_HTTP_READ_TIMEOUT"},
		{env: map[string]string{"CHAT_DEBUG_PPROF_ADDR": "0.0.0.0:6060"}, want: "debug.pprof_addr"},
		{env: map[string]string{"CHAT_DEBUG_PPROF_ADDR": "6060"}, want: "debug.pprof_addr"},
		{file: "htp:\n  addr: x\n", want: "htp"},
	}
	for _, tc := range cases {
		path := ""
		if tc.file != "" {
			path = filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(path, []byte(tc.file), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		_, err := Load(path, env(tc.env))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Load(%v, %q) error = %v, want one naming %q", tc.env, tc.file, err, tc.want)
		}
	}
}

func TestEmptyFileKeepsDefaults(t *testing.T) {
	path := filepath.Join(t.TempDir(), "empty.yaml")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path, env(nil))
	if err != nil || c.HTTP.Addr != ":8000" {
		t.Fatalf("Load(empty) = %+v, %v", c, err)
	}
}

func TestEnvNames(t *testing.T) {
	for key, want := range map[string]string{
		"http.addr": "CHAT_HTTP_ADDR", "mongo.uri": "CHAT_MONGO_URI", "data_dir": "CHAT_DATA_DIR",
		"auth.jwt_secret": "CHAT_AUTH_JWT_SECRET", "api.max_messages_count": "CHAT_API_MAX_MESSAGES_COUNT",
	} {
		if got := EnvName(key); got != want {
			t.Errorf("env of %s = %q, want %q", key, got, want)
		}
	}
}
