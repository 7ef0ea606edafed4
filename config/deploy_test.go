package config

import (
	"bufio"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
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

// TestReadmeDocumentsEveryKey: each configuration key appears in the README's table.
func TestReadmeDocumentsEveryKey(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	walk(reflect.TypeOf(Config{}), "", func(key string, _ []int) {
		if !strings.Contains(string(readme), "`"+key+"`") {
			t.Errorf("README.md does not document %s", key)
		}
	}, nil)
}
