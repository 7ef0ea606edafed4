package cluster

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

func TestWindow(t *testing.T) {
	var w window
	for _, tc := range []struct {
		seq   uint64
		first bool
	}{
		{1, true}, {1, false}, {3, true}, {2, true}, {2, false}, {3, false},
		{10000, true}, {3, false}, {9999, true}, {9999, false}, {10000 - windowBits + 1, true},
		{10000 - windowBits, false}, {0, false}, {20000 + windowBits*3, true}, {20000 + windowBits*3 - 1, true},
	} {
		if got := w.first(tc.seq); got != tc.first {
			t.Errorf("first(%d) = %v, want %v", tc.seq, got, tc.first)
		}
	}
}

func TestRedact(t *testing.T) {
	if got := redact("nats://u:p@a:4222,nats://b:4222"); got != "nats://***@a:4222,nats://b:4222" {
		t.Fatalf("redact = %q", got)
	}
}

// runNATS starts a real NATS server on a loopback port.
func runNATS(t *testing.T) *natsserver.Server {
	t.Helper()
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	t.Cleanup(ns.Shutdown)
	return ns
}

type fakeLocal struct {
	mu   sync.Mutex
	orgs map[string][]string
}

func (l *fakeLocal) set(org string, managers ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(managers) == 0 {
		delete(l.orgs, org)
		return
	}
	l.orgs[org] = managers
}

func (l *fakeLocal) OnDuty(org string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.orgs[org])
}

func (l *fakeLocal) Snapshot() map[string][]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string][]string{}
	for k, v := range l.orgs {
		out[k] = slices.Clone(v)
	}
	return out
}

type injected struct {
	topic, payload string
}

type testNode struct {
	*Node
	local *fakeLocal
	got   chan injected
}

func startNode(t *testing.T, url, name string) *testNode {
	t.Helper()
	n, err := Connect(Config{URL: url, Node: name, Prefix: "chat", Heartbeat: 50 * time.Millisecond, NodeTimeout: 300 * time.Millisecond,
		ForwardTimeout: 5 * time.Second}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	tn := &testNode{Node: n, local: &fakeLocal{orgs: map[string][]string{}}, got: make(chan injected, 100)}
	n.Duty(tn.local)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.Run(ctx, func(topic string, payload []byte, _ byte, _ bool) error {
			tn.got <- injected{topic, string(payload)}
			return nil
		})
	}()
	t.Cleanup(func() { cancel(); <-done; n.Close() })
	return tn
}

func (tn *testNode) expect(t *testing.T, want ...injected) {
	t.Helper()
	for _, w := range want {
		select {
		case got := <-tn.got:
			if got != w {
				t.Fatalf("%s injected %v, want %v", tn.Name(), got, w)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: nothing injected, want %v", tn.Name(), w)
		}
	}
}

// eventually polls cond for a generous bound.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 10s: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// forward publishes through n and waits until NATS has routed it.
func forward(t *testing.T, n *testNode, topic string, payload []byte, qos byte, retain bool) {
	t.Helper()
	n.Forward(topic, payload, qos, retain)
	if err := n.nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

func TestForwardingFollowsInterest(t *testing.T) {
	ns := runNATS(t)
	a, b, c := startNode(t, ns.ClientURL(), "a"), startNode(t, ns.ClientURL(), "b"), startNode(t, ns.ClientURL(), "c")

	// b holds overlapping filters: each message must still be injected once.
	b.AddFilter("orgs/o/service/+")
	b.AddFilter("orgs/o/service/v1")
	b.AddFilter("orgs/o/#")
	b.WaitInterest()
	c.Add("o", "/conversations/*") // a Faye channel
	c.WaitInterest()

	forward(t, a, "orgs/o/service/v1", []byte("one"), 1, false)
	forward(t, a, "orgs/o/conversations/c1", []byte("two"), 1, false)
	forward(t, a, "orgs/p/service/v1", []byte("other org"), 1, false)
	forward(t, a, "$SYS/x", []byte("never"), 0, false)
	b.expect(t, injected{"orgs/o/service/v1", "one"}, injected{"orgs/o/conversations/c1", "two"})
	c.expect(t, injected{"orgs/o/conversations/c1", "two"})
	// The sender never gets its own publishes back. Each publish is flushed (the NATS server
	// has routed it) before the next, so a node receives them in the order they were made, and
	// a node whose next injection is a later marker injected nothing in between.
	a.AddFilter("orgs/o/#")
	a.WaitInterest()
	forward(t, b, "orgs/o/from-b", []byte("b"), 0, false)
	a.expect(t, injected{"orgs/o/from-b", "b"})
	c.Add("o", "/x")
	c.WaitInterest()
	forward(t, a, "orgs/o/conversations/c2", []byte("three"), 0, false)
	forward(t, c, "orgs/o/x", []byte("marker"), 0, false)
	b.expect(t, injected{"orgs/o/conversations/c2", "three"}, injected{"orgs/o/x", "marker"})
	a.expect(t, injected{"orgs/o/x", "marker"})
	c.expect(t, injected{"orgs/o/conversations/c2", "three"})
	forward(t, a, "orgs/o/x", []byte("marker2"), 0, false)
	c.expect(t, injected{"orgs/o/x", "marker2"})
	b.expect(t, injected{"orgs/o/x", "marker2"})

	// Interest goes with the last local subscriber.
	b.RemoveFilter("orgs/o/service/+")
	b.RemoveFilter("orgs/o/service/v1")
	b.RemoveFilter("orgs/o/#")
	c.Remove("o", "/conversations/*")
	c.Remove("o", "/x")
	if got := b.Interest(); len(got) != 0 {
		t.Fatalf("b still subscribes to %v", got)
	}
	if f, _, _ := a.Stats(); f != 5 {
		t.Fatalf("a forwarded %d, want 5 ($SYS is never forwarded)", f)
	}
	if _, inj, dup := b.Stats(); inj != 5 || dup == 0 {
		t.Fatalf("b injected %d (want 5) and dropped %d duplicates (want some: its filters overlap)", inj, dup)
	}
}

func TestDutyAcrossNodes(t *testing.T) {
	ns := runNATS(t)
	a, b := startNode(t, ns.ClientURL(), "a"), startNode(t, ns.ClientURL(), "b")
	a.local.set("o", "anna")
	a.duty.Changed("o")
	eventually(t, "b sees anna", func() bool { return slices.Equal(b.duty.OnDuty("o"), []string{"anna"}) })
	b.local.set("o", "bob")
	eventually(t, "a sees anna and bob", func() bool {
		a.duty.Changed("o") // harmless
		b.duty.Changed("o")
		return slices.Equal(a.duty.OnDuty("o"), []string{"anna", "bob"})
	})
	a.local.set("o")
	a.duty.Changed("o")
	eventually(t, "anna leaves", func() bool { return slices.Equal(b.duty.OnDuty("o"), []string{"bob"}) })

	// A node that stops announcing (dead) is forgotten after the node timeout.
	c := startNode(t, ns.ClientURL(), "c")
	c.local.set("o", "carl")
	c.duty.Changed("o")
	eventually(t, "a sees carl", func() bool { return slices.Contains(a.duty.OnDuty("o"), "carl") })
	c.nc.Close() // no goodbye
	eventually(t, "carl off duty", func() bool { return !slices.Contains(a.duty.OnDuty("o"), "carl") })
	if a.duty.Remote() != 1 {
		t.Fatalf("a sees %d remote managers, want 1 (bob)", a.duty.Remote())
	}
}

func TestFayeForwarding(t *testing.T) {
	ns := runNATS(t)
	a, b := startNode(t, ns.ClientURL(), "a"), startNode(t, ns.ClientURL(), "b")
	if err := b.ServeFaye(context.Background(), func(_ context.Context, req []byte) []byte { return append([]byte("b:"), req...) }); err != nil {
		t.Fatal(err)
	}
	b.WaitInterest()
	out, err := a.ForwardFaye(context.Background(), "b", []byte("x"))
	if err != nil || string(out) != "b:x" {
		t.Fatalf("forward = %q, %v", out, err)
	}
	if _, err := a.ForwardFaye(context.Background(), "gone", []byte("x")); err == nil {
		t.Fatal("forward to a missing node succeeded")
	}
}

func TestReadyFollowsNATS(t *testing.T) {
	ns := runNATS(t)
	a := startNode(t, ns.ClientURL(), "a")
	if err := a.Ready(context.Background()); err != nil {
		t.Fatal(err)
	}
	ns.Shutdown()
	eventually(t, "not ready without NATS", func() bool { return a.Ready(context.Background()) != nil })
}
