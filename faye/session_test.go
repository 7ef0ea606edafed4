package faye

import (
	"io"
	"log/slog"
	"runtime"
	"slices"
	"testing"
	"time"
)

func TestSubscriptions(t *testing.T) {
	tests := []struct {
		name string
		ops  []string // "+name" adds, "-name" removes
		want []bool   // each op's result
		has  []string // the names held at the end, sorted
	}{
		{name: "empty"},
		{name: "add", ops: []string{"+/b", "+/a", "+/c"}, want: []bool{true, true, true}, has: []string{"/a", "/b", "/c"}},
		{name: "add twice", ops: []string{"+/a", "+/a"}, want: []bool{true, false}, has: []string{"/a"}},
		{name: "remove", ops: []string{"+/a", "+/b", "-/a"}, want: []bool{true, true, true}, has: []string{"/b"}},
		{name: "remove missing", ops: []string{"+/a", "-/b"}, want: []bool{true, false}, has: []string{"/a"}},
		{name: "remove all", ops: []string{"+/a/**", "+/a/*", "-/a/*", "-/a/**"}, want: []bool{true, true, true, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ss subscriptions
			for i, op := range tt.ops {
				var got bool
				if op[0] == '+' {
					got = ss.add(op[1:])
				} else {
					got = ss.remove(op[1:])
				}
				if got != tt.want[i] {
					t.Errorf("%s = %v, want %v", op, got, tt.want[i])
				}
			}
			if !slices.Equal([]string(ss), tt.has) {
				t.Errorf("held %q, want %q", ss, tt.has)
			}
			for _, name := range tt.has {
				if !ss.has(name) {
					t.Errorf("has(%q) = false", name)
				}
			}
			if ss.has("/none") {
				t.Error(`has("/none") = true`)
			}
		})
	}
}

// TestSubscriptionRetained checks what a session's first subscription keeps on the heap: every
// idle client holds one, so it must cost a string header, not a map.
func TestSubscriptionRetained(t *testing.T) {
	const n, limit = 2000, 32
	sessions := make([]*session, n)
	now := time.Now()
	for i := range sessions {
		sessions[i] = newSession("c", now)
	}
	before := liveHeap()
	for _, s := range sessions {
		s.subs.add("/bench/all")
	}
	after := liveHeap()
	if per := (int64(after) - int64(before)) / n; per > limit {
		t.Errorf("one subscription retains %d bytes per session, want at most %d", per, limit)
	}
	runtime.KeepAlive(sessions)
}

func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestStreamAllocations checks what a websocket's stream allocates: its consumer, and nothing
// that would stay with an idle socket for as long as it is open (releasing takes the
// session's holder name for the duty registry).
func TestStreamAllocations(t *testing.T) {
	e := New(Config{Timeout: time.Second, IdleTimeout: time.Minute, MaxBatch: 10, MaxChannels: 10, MaxQueue: 100},
		permissive{}, permissive{}, permissive{}, &echoBroker{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	s := newSession(newClientID(""), time.Now())
	var sk nopSink
	if allocs := testing.AllocsPerRun(100, func() { e.Release(e.stream(s, sk)) }); allocs > 2 {
		t.Errorf("a stream allocates %v times, want at most 2", allocs)
	}
}

type nopSink struct{}

func (nopSink) Queued()               {}
func (nopSink) Ended(*Consumer, bool) {}
