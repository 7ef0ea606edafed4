package faye

import (
	"strings"
	"testing"
)

func TestNodeOf(t *testing.T) {
	for id, want := range map[string]string{
		"abc123":                        "",
		"node-2_" + newClientID("")[:5]: "node-2",
		newClientID("chat-1"):           "chat-1",
		"a.b_x":                         "", // never a node name: no odd NATS subjects
		"N_x":                           "",
		"_x":                            "",
		strings.Repeat("a", 33) + "_x":  "",
	} {
		if got := NodeOf(id); got != want {
			t.Errorf("NodeOf(%q) = %q, want %q", id, got, want)
		}
	}
	if id := newClientID(""); len(id) != 31 || NodeOf(id) != "" {
		t.Errorf("single-node id %q", id)
	}
}
