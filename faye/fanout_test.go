package faye

import (
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"
)

// testEngine is an engine with everything allowed and a broker that hands publishes straight
// back to it, as the real one does.
func testEngine(tb testing.TB, maxQueue int) *Engine {
	b := &echoBroker{}
	e := New(Config{Timeout: 45 * time.Second, IdleTimeout: time.Minute, Ping: 20 * time.Second, MaxBatch: 100, MaxChannels: 100, MaxQueue: maxQueue},
		permissive{}, permissive{}, permissive{}, b, slog.New(slog.NewTextHandler(io.Discard, nil)))
	b.e = e
	return e
}

// BenchmarkDeliverQueue: the publisher's part of a fan-out to 1,000 sessions, without sockets:
// match, encode once, queue.
func BenchmarkDeliverQueue(b *testing.B) {
	e := testEngine(b, 1<<30)
	for range 1000 {
		s := newSession(newClientID(""), time.Now())
		e.idx.add("shop", "/fan", s)
	}
	payload := []byte(`"hello, this is a chat message of a typical length"`)
	b.ReportAllocs()
	for i := range b.N {
		e.Deliver("orgs/shop/fan", payload)
		if i%1000 == 999 { // nobody takes: empty the queues now and then
			e.idx.match("shop", "/fan", func(s *session) { s.take() })
		}
	}
}

// BenchmarkIndexMatch: routing one publish among 10,000 sessions subscribed to their own
// channel, with a few wildcard subscribers.
func BenchmarkIndexMatch(b *testing.B) {
	ix := newIndex()
	for i := range 10000 {
		ix.add("shop", fmt.Sprintf("/service/v%d", i), newSession(fmt.Sprint(i), time.Now()))
	}
	for range 5 {
		ix.add("shop", "/service/*", newSession("m", time.Now()))
	}
	b.ReportAllocs()
	n := 0
	for i := range b.N {
		ix.match("shop", fmt.Sprintf("/service/v%d", i%10000), func(*session) { n++ })
	}
	if n != 6*b.N {
		b.Fatalf("%d matches for %d publishes", n, b.N)
	}
}
