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

func TestMessagesCountLimit(t *testing.T) {
	cases := []struct {
		env  map[string]string
		want int
	}{
		{nil, 1000},
		{map[string]string{"CHAT_API_MESSAGES_COUNT_LIMIT": "200"}, 200},
		{map[string]string{"CHAT_API_MESSAGES_COUNT_LIMIT": "50"}, 50}, // equal to the default page
	}
	for _, tc := range cases {
		c, err := Load("", env(tc.env))
		if err != nil || c.API.MessagesCountLimit != tc.want {
			t.Errorf("env %v: api.messages_count_limit = %d, %v; want %d", tc.env, c.API.MessagesCountLimit, err, tc.want)
		}
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
		{env: map[string]string{"CHAT_API_MESSAGES_COUNT_LIMIT": "10"}, want: "api.messages_count_limit"},
		{env: map[string]string{"CHAT_AUTH_JWT_SECRET": "short"}, want: "auth.jwt_secret"},
		{env: map[string]string{"CHAT_LOG_LEVEL": "loud"}, want: "log.level"},
		{env: map[string]string{"CHAT_HTTP_READ_TIMEOUT": "soon"}, want: "CHAT_HTTP_READ_TIMEOUT"},
		{env: map[string]string{"CHAT_DEBUG_PPROF_ADDR": "0.0.0.0:6060"}, want: "debug.pprof_addr"},
		{env: map[string]string{"CHAT_DEBUG_PPROF_ADDR": "6060"}, want: "debug.pprof_addr"},
		{file: "htp:\n  addr: x\n", want: "htp"},
		{env: map[string]string{"CHAT_METRICS_PATH": "/faye/metrics"}, want: "metrics.path (CHAT_METRICS_PATH)"},
		{env: map[string]string{"CHAT_METRICS_ALLOWED_IPS": "10.0.0.0/8,intranet"}, want: "metrics.allowed_ips (CHAT_METRICS_ALLOWED_IPS)"},
		{env: map[string]string{"CHAT_METRICS_ALLOWED_IPS": ""}, want: "metrics.allowed_ips"},
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

func TestParseNet(t *testing.T) {
	for in, want := range map[string]string{"10.1.2.3/8": "10.0.0.0/8", "192.0.2.7": "192.0.2.7/32", "::1": "::1/128", "fc00::/7": "fc00::/7"} {
		got, err := ParseNet(in)
		if err != nil || got.String() != want {
			t.Errorf("ParseNet(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"", "intranet", "10.0.0.0/33", "300.1.1.1"} {
		if _, err := ParseNet(in); err == nil {
			t.Errorf("ParseNet(%q) accepted", in)
		}
	}
	// Metrics off: their keys are not checked.
	if _, err := Load("", env(map[string]string{"CHAT_METRICS_ENABLED": "false", "CHAT_METRICS_ALLOWED_IPS": ""})); err != nil {
		t.Errorf("metrics off: %v", err)
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

func TestDemoOn(t *testing.T) {
	cases := []struct {
		env  map[string]string
		want bool
	}{
		{nil, true}, // the embedded defaults: a newcomer sees it working
		{map[string]string{"CHAT_MONGO_URI": "mongodb://x"}, false},
		{map[string]string{"CHAT_MONGO_URI": "mongodb://x", "CHAT_WEB_DEMO": "on"}, true},
		{map[string]string{"CHAT_WEB_DEMO": "off"}, false},
		{map[string]string{"CHAT_WEB_ENABLED": "false"}, false},
		{map[string]string{"CHAT_WEB_ENABLED": "false", "CHAT_WEB_DEMO": "on"}, false},
	}
	for _, tc := range cases {
		c, err := Load("", env(tc.env))
		if err != nil {
			t.Fatal(err)
		}
		if got := c.DemoOn(); got != tc.want {
			t.Errorf("DemoOn with %v = %v, want %v", tc.env, got, tc.want)
		}
	}
	if _, err := Load("", env(map[string]string{"CHAT_WEB_DEMO": "yes"})); err == nil || !strings.Contains(err.Error(), "web.demo") {
		t.Errorf("web.demo=yes: error %v, want one naming web.demo", err)
	}
}

func TestCluster(t *testing.T) {
	c, err := Load("", env(nil))
	if err != nil || c.Cluster.Enabled() {
		t.Fatalf("a single node by default: %+v, %v", c.Cluster, err)
	}
	nats := map[string]string{"CHAT_CLUSTER_NATS_URL": "nats://127.0.0.1:4222", "CHAT_CLUSTER_NODE_NAME": "chat-1"}
	// The embedded store is one node's: cluster mode refuses it, saying what to set.
	_, err = Load("", env(nats))
	if err == nil || !strings.Contains(err.Error(), "mongo.uri") || !strings.Contains(err.Error(), "CHAT_MONGO_URI") {
		t.Fatalf("cluster mode with the embedded store: %v, want an error naming mongo.uri", err)
	}
	nats["CHAT_MONGO_URI"] = "mongodb://db1,db2,db3/?replicaSet=rs0"
	// A generated secret would be one node's alone.
	if _, err = Load("", env(nats)); err == nil || !strings.Contains(err.Error(), "auth.jwt_secret") {
		t.Fatalf("cluster mode without a shared secret: %v, want an error naming auth.jwt_secret", err)
	}
	nats["CHAT_AUTH_JWT_SECRET"] = strings.Repeat("s", 32)
	c, err = Load("", env(nats))
	if err != nil || !c.Cluster.Enabled() || c.Cluster.SubjectPrefix != "chat" {
		t.Fatalf("cluster mode: %+v, %v", c.Cluster, err)
	}
	for key, bad := range map[string]string{
		"CHAT_CLUSTER_NODE_NAME":      "Node_1",
		"CHAT_CLUSTER_SUBJECT_PREFIX": "chat..x",
		"CHAT_CLUSTER_NODE_TIMEOUT":   "3s", // not more than twice the 2s heartbeat
	} {
		vars := map[string]string{key: bad}
		for k, v := range nats {
			if k != key {
				vars[k] = v
			}
		}
		if _, err := Load("", env(vars)); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s=%s: %v, want an error naming it", key, bad, err)
		}
	}
}
