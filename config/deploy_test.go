package config

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestDeployExample loads the cluster example of deploy/cluster exactly as each node does
// (its file, then its environment with the secrets the deployment adds), so the example and
// the configuration reference cannot drift apart.
func TestDeployExample(t *testing.T) {
	dir := filepath.Join("..", "deploy", "cluster")
	names := map[string]bool{}
	for _, node := range []string{"node-1.env", "node-2.env", "node-3.env"} {
		vars := map[string]string{
			"CHAT_AUTH_JWT_SECRET":  strings.Repeat("s", 32),
			"CHAT_MONGO_URI":        "mongodb://chat:p@10.0.0.31:27017,10.0.0.32:27017,10.0.0.33:27017/?replicaSet=rs0&w=majority",
			"CHAT_CLUSTER_NATS_URL": "nats://chat:p@10.0.0.21:4222,nats://chat:p@10.0.0.22:4222,nats://chat:p@10.0.0.23:4222",
		}
		f, err := os.Open(filepath.Join(dir, node))
		if err != nil {
			t.Fatal(err)
		}
		lines := bufio.NewScanner(f)
		for lines.Scan() {
			line := strings.TrimSpace(lines.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			k, v, ok := strings.Cut(line, "=")
			if !ok || !strings.HasPrefix(k, EnvPrefix) {
				t.Fatalf("%s: %q is not a CHAT_ variable", node, line)
			}
			vars[k] = v
		}
		f.Close()
		c, err := Load(filepath.Join(dir, "chat-server.yaml"), env(vars))
		if err != nil {
			t.Fatalf("%s: %v", node, err)
		}
		if !c.Cluster.Enabled() || names[c.Cluster.NodeName] {
			t.Fatalf("%s: cluster %+v; want cluster mode and a name of its own", node, c.Cluster)
		}
		names[c.Cluster.NodeName] = true
		if c.Faye.Timeout.Seconds() >= 75 {
			t.Errorf("faye.timeout %s must stay below HAProxy's 75s timeout server", c.Faye.Timeout)
		}
	}
}

// TestReadmeDocumentsEveryKey: the README's configuration table, the embedded defaults and the
// Config struct name the same keys; each row gives the key's variable and, where it quotes one,
// the default the yaml sets.
func TestReadmeDocumentsEveryKey(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var defaults map[string]any
	if err := yaml.Unmarshal(defaultYAML, &defaults); err != nil {
		t.Fatalf("config/defaults.yaml: %v", err)
	}
	type doc struct{ env, def string }
	rows := map[string]doc{}
	_, table, ok := strings.Cut(string(readme), "| key | environment | default | meaning |")
	if !ok {
		t.Fatal("README.md has no configuration table")
	}
	for line := range strings.Lines(strings.TrimPrefix(table, "\n")) {
		if !strings.HasPrefix(line, "|") {
			break
		}
		cols := strings.Split(strings.TrimSpace(line), " | ")
		if len(cols) != 4 || !strings.HasPrefix(cols[0], "| `") {
			continue
		}
		keys := strings.Split(strings.TrimPrefix(cols[0], "| "), ", ")
		envs, defs := strings.Split(cols[1], ", "), strings.Split(cols[2], ", ")
		for i, k := range keys {
			d := doc{env: "…", def: cols[2]}
			if i < len(envs) {
				d.env = envs[i]
			}
			if len(defs) == len(keys) {
				d.def = defs[i]
			}
			rows[strings.Trim(k, "`")] = d
		}
	}
	known := map[string]bool{}
	walk(reflect.TypeOf(Config{}), "", func(key string, _ []int) {
		known[key] = true
		d, ok := rows[key]
		if !ok {
			t.Errorf("README.md's configuration table has no row for %s", key)
			return
		}
		if d.env != "…" && d.env != "`"+EnvName(key)+"`" {
			t.Errorf("README.md gives %s as the variable of %s, want `%s`", d.env, key, EnvName(key))
		}
		var v any = defaults
		for _, part := range strings.Split(key, ".") {
			m, _ := v.(map[string]any)
			if v, ok = m[part]; !ok {
				t.Errorf("config/defaults.yaml does not set %s", key)
				return
			}
		}
		switch {
		case strings.HasPrefix(d.def, "`"):
			if want := strings.Trim(d.def, "`"); fmt.Sprint(v) != want {
				t.Errorf("README.md gives %s the default %s, config/defaults.yaml %v", key, want, v)
			}
		case d.def == "empty" || strings.HasPrefix(d.def, "empty ") || d.def == "none":
			if v != nil && fmt.Sprint(v) != "" && fmt.Sprint(v) != "[]" {
				t.Errorf("README.md says %s is %s by default, config/defaults.yaml sets %v", key, d.def, v)
			}
		}
	}, nil)
	for key := range rows {
		if !known[key] {
			t.Errorf("README.md documents %s, which is no configuration key", key)
		}
	}
}
