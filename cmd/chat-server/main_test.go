package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/convead/chat-server/config"
)

const testSecret = "cli-test-secret-cli-test-secret-42"

func TestCLI(t *testing.T) {
	dir := t.TempDir()
	badCert := filepath.Join(dir, "cert.pem")
	if err := os.WriteFile(badCert, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	shortSecretDir := filepath.Join(dir, "short")
	if err := os.MkdirAll(shortSecretDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(shortSecretDir, "jwt-secret"), []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fileCfg := filepath.Join(dir, "chat.yaml")
	if err := os.WriteFile(fileCfg, []byte("http:\n  addr: \"127.0.0.1:9\"\nauth:\n  jwt_secret: "+testSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	typo := filepath.Join(dir, "typo.yaml")
	if err := os.WriteFile(typo, []byte("htp:\n  addr: \":1\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := map[string]string{"CHAT_DATA_DIR": filepath.Join(dir, "data"), "CHAT_AUTH_JWT_SECRET": testSecret}
	with := func(kv ...string) map[string]string {
		env := map[string]string{}
		for k, v := range base {
			env[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			env[kv[i]] = kv[i+1]
		}
		return env
	}
	cases := []struct {
		name       string
		args       []string
		env        map[string]string
		code       int
		stdout     []string // substrings expected
		stderr     []string
		notInOuput []string
	}{
		{name: "help", args: []string{"help"}, code: 0, stdout: []string{"Usage:", "check-config", "version"}},
		{name: "-h", args: []string{"-h"}, code: 0, stdout: []string{"Usage:"}},
		{name: "--help", args: []string{"--help"}, code: 0, stdout: []string{"Usage:"}},
		{name: "help token", args: []string{"help", "token"}, code: 0, stdout: []string{"Usage: chat-server token", "-role", "-ttl"}},
		{name: "help of an unknown command", args: []string{"help", "nope"}, code: 2, stderr: []string{`unknown command "nope"`, "Usage:"}},
		{name: "serve -h", args: []string{"serve", "-h"}, code: 0, stdout: []string{"Usage: chat-server serve", "-config"}},
		{name: "token --help", args: []string{"token", "--help"}, code: 0, stdout: []string{"-sub"}},
		{name: "check-config -h", args: []string{"check-config", "-h"}, code: 0, stdout: []string{"-connect", "-quiet"}},
		{name: "version -h", args: []string{"version", "-h"}, code: 0, stdout: []string{"Usage: chat-server version\n"}},
		{name: "unknown command", args: []string{"bogus"}, code: 2, stderr: []string{`unknown command "bogus"`, "Usage:"}},
		{name: "unknown flag", args: []string{"token", "-nope"}, code: 2, stderr: []string{"flag provided but not defined: -nope", "Usage: chat-server token"}},
		{name: "unknown flag of serve", args: []string{"-nope"}, code: 2, stderr: []string{"chat-server serve: flag provided but not defined"}},
		{name: "stray argument", args: []string{"version", "extra"}, code: 2, stderr: []string{`unexpected argument "extra"`}},
		{name: "version", args: []string{"version"}, code: 0, stdout: []string{"chat-server ", runtime.Version(), runtime.GOOS + "/" + runtime.GOARCH}},
		{name: "token", args: []string{"token", "-role", "visitor", "-org", "shop", "-sub", "v1"}, env: base, code: 0, stdout: []string{"eyJ"}},
		{name: "token with a bad role", args: []string{"token", "-role", "king", "-org", "shop", "-sub", "v1"}, env: base, code: 2, stderr: []string{"role"}},
		{name: "serve refuses a bad value, naming it", args: nil, env: with("CHAT_API_MAX_MESSAGES_COUNT", "0"), code: 1,
			stderr: []string{"api.max_messages_count (CHAT_API_MAX_MESSAGES_COUNT)", "check-config"}},
		{name: "check-config OK", args: []string{"check-config"}, env: base, code: 0,
			stdout: []string{"jwt_secret: <redacted>", "metrics:"}, stderr: []string{"configuration OK"}, notInOuput: []string{testSecret}},
		{name: "check-config of a file", args: []string{"check-config", "-config", fileCfg}, env: with("CHAT_AUTH_JWT_SECRET", ""), code: 0,
			stdout: []string{"addr: 127.0.0.1:9"}, notInOuput: []string{testSecret}},
		{name: "check-config -quiet", args: []string{"check-config", "-quiet"}, env: base, code: 0, stderr: []string{"configuration OK"}},
		{name: "check-config: unknown key in the file", args: []string{"check-config", "-config", typo}, env: base, code: 1,
			stderr: []string{"htp", "not found"}},
		{name: "check-config: every bad value at once", args: []string{"check-config"}, env: with("CHAT_API_MAX_MESSAGES_COUNT", "0", "CHAT_LOG_LEVEL", "loud", "CHAT_METRICS_ALLOWED_IPS", "10.0.0.0/33"), code: 1,
			stderr: []string{"api.max_messages_count (CHAT_API_MAX_MESSAGES_COUNT)", "log.level (CHAT_LOG_LEVEL)", "metrics.allowed_ips (CHAT_METRICS_ALLOWED_IPS)"}},
		{name: "check-config: unreadable TLS pair", args: []string{"check-config", "-quiet"}, env: with("CHAT_MQTT_TLS_CERT_FILE", badCert, "CHAT_MQTT_TLS_KEY_FILE", badCert), code: 1,
			stderr: []string{"mqtt.tls_cert_file (CHAT_MQTT_TLS_CERT_FILE)", "would not start"}},
		{name: "check-config: missing Faye bundle", args: []string{"check-config", "-quiet"}, env: with("CHAT_FAYE_CLIENT_JS_PATH", filepath.Join(dir, "none.js")), code: 1,
			stderr: []string{"faye.client_js_path (CHAT_FAYE_CLIENT_JS_PATH)"}},
		{name: "check-config: bad and clashing addresses", args: []string{"check-config", "-quiet"}, env: with("CHAT_HTTP_ADDR", "8000", "CHAT_METRICS_ADDR", ":1883"), code: 1,
			stderr: []string{"http.addr (CHAT_HTTP_ADDR): must be host:port", "metrics.addr (CHAT_METRICS_ADDR)", "also mqtt.addr"}},
		{name: "check-config: short generated secret", args: []string{"check-config", "-quiet"}, env: with("CHAT_AUTH_JWT_SECRET", "", "CHAT_DATA_DIR", shortSecretDir), code: 1,
			stderr: []string{"auth.jwt_secret (CHAT_AUTH_JWT_SECRET)", "delete the file"}},
		{name: "check-config: data folder is a file", args: []string{"check-config", "-quiet"}, env: with("CHAT_DATA_DIR", badCert), code: 1,
			stderr: []string{"data_dir (CHAT_DATA_DIR)", "not a folder"}},
		{name: "check-config -connect: MongoDB unreachable", args: []string{"check-config", "-quiet", "-connect"},
			env: with("CHAT_MONGO_URI", "mongodb://user:hunter2@127.0.0.1:1/", "CHAT_MONGO_TIMEOUT", "300ms"), code: 1,
			stderr: []string{"mongo.uri (CHAT_MONGO_URI)", "user:xxxxx@"}, notInOuput: []string{"hunter2"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			env := func(k string) (string, bool) { v, ok := c.env[k]; return v, ok }
			code := runEnv(c.args, env, &stdout, &stderr)
			if code != c.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, c.code, stdout.String(), stderr.String())
			}
			for _, s := range c.stdout {
				if !strings.Contains(stdout.String(), s) {
					t.Errorf("stdout lacks %q:\n%s", s, stdout.String())
				}
			}
			for _, s := range c.stderr {
				if !strings.Contains(stderr.String(), s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr.String())
				}
			}
			for _, s := range c.notInOuput {
				if strings.Contains(stdout.String()+stderr.String(), s) {
					t.Errorf("output shows %q", s)
				}
			}
		})
	}
}

// TestCheckConfigPrintsLoadableYAML: the printed configuration is a valid configuration file
// that loads back to the same values (secrets aside).
func TestCheckConfigPrintsLoadableYAML(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"CHAT_DATA_DIR": dir, "CHAT_AUTH_JWT_SECRET": testSecret, "CHAT_FAYE_TIMEOUT": "30s", "CHAT_METRICS_ADDR": "127.0.0.1:0"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	var stdout, stderr bytes.Buffer
	if code := runEnv([]string{"check-config"}, lookup, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	printed := filepath.Join(dir, "printed.yaml")
	if err := os.WriteFile(printed, stdout.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	none := func(string) (string, bool) { return "", false }
	if _, err := config.Load(printed, none); err == nil {
		t.Fatal("the redacted secret loaded as a secret: it must be refused")
	}
	var raw map[string]any
	if err := yaml.Unmarshal(stdout.Bytes(), &raw); err != nil {
		t.Fatalf("printed configuration is not YAML: %v", err)
	}
	raw["auth"].(map[string]any)["jwt_secret"] = testSecret
	fixed, _ := yaml.Marshal(raw)
	if err := os.WriteFile(printed, fixed, 0o600); err != nil {
		t.Fatal(err)
	}
	back, err := config.Load(printed, none)
	if err != nil {
		t.Fatalf("printed configuration does not load: %v", err)
	}
	want, err := config.Load("", lookup)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, want) {
		t.Fatalf("loaded back %+v, want %+v", back, want)
	}
}
