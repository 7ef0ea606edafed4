package e2e

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestCheckConfigConnect runs `chat-server check-config -connect` against a real MongoDB wire
// server (FerretDB): it passes while the server answers, and names mongo.uri once it is gone.
func TestCheckConfigConnect(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and FerretDB: skipped in -short mode")
	}
	bin := buildServer(t)
	f := newFerret(t)
	check := func() (int, string, string) {
		cmd := exec.Command(bin, "check-config", "-connect", "-quiet")
		cmd.Env = append(os.Environ(), "CHAT_DATA_DIR="+t.TempDir(), "CHAT_AUTH_JWT_SECRET="+secret,
			"CHAT_MONGO_URI="+f.uri(), "CHAT_MONGO_DATABASE=check", "CHAT_MONGO_TIMEOUT=1s")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		switch {
		case err == nil:
			return 0, stdout.String(), stderr.String()
		case errors.As(err, &exit):
			return exit.ExitCode(), stdout.String(), stderr.String()
		}
		t.Fatal(err)
		return 0, "", ""
	}
	if code, _, stderr := check(); code != 0 || !strings.Contains(stderr, "configuration OK") {
		t.Fatalf("with MongoDB up: exit %d, %s", code, stderr)
	}
	f.stop()
	if code, _, stderr := check(); code != 1 || !strings.Contains(stderr, "mongo.uri (CHAT_MONGO_URI)") {
		t.Fatalf("with MongoDB down: exit %d, %s; want 1 naming mongo.uri", code, stderr)
	}
}
