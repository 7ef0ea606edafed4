package faye

import (
	"sync/atomic"

	"github.com/convead/chat-server/faye/bayeux"
)

// NotConnected is the transport of a session that has handshaken but not yet connected.
const NotConnected = "none"

// counters are the engine's running totals, bumped in the delivery path.
type counters struct {
	delivered  atomic.Uint64 // deliveries queued for a session
	dropped    atomic.Uint64 // deliveries dropped on a full queue
	overflowed atomic.Uint64 // sessions ended because their queue overflowed
}

// Stats are the engine's live counts and totals, read at once for metrics.
type Stats struct {
	// SessionsByTransport counts sessions by the connection type of their last /meta/connect
	// (one of bayeux.ConnectionTypes, or NotConnected).
	SessionsByTransport map[string]int
	// Subscriptions counts channel subscriptions (and patterns) over all sessions.
	Subscriptions int
	// Queued is the number of deliveries waiting in all session queues; QueuedMax the longest
	// single queue.
	Queued, QueuedMax int
	// Delivered, Dropped and Overflowed are totals since start: deliveries queued, deliveries
	// dropped on a full queue, and sessions ended for it.
	Delivered, Dropped, Overflowed uint64
}

// Stats walks the sessions once; its cost grows with their number, so it is for a scrape
// every few seconds, not for a hot path.
func (e *Engine) Stats() Stats {
	st := Stats{SessionsByTransport: make(map[string]int, len(bayeux.ConnectionTypes)+1)}
	for _, t := range append([]string{NotConnected}, bayeux.ConnectionTypes...) {
		st.SessionsByTransport[t] = 0
	}
	for _, s := range e.snapshot() {
		s.mu.Lock()
		t, subs, queued := s.transport, len(s.subs), len(s.queue)
		s.mu.Unlock()
		if t == "" {
			t = NotConnected
		}
		st.SessionsByTransport[t]++
		st.Subscriptions += subs
		st.Queued += queued
		st.QueuedMax = max(st.QueuedMax, queued)
	}
	st.Delivered = e.counters.delivered.Load()
	st.Dropped = e.counters.dropped.Load()
	st.Overflowed = e.counters.overflowed.Load()
	return st
}

// setTransport records the connection type a session last connected with.
func (s *session) setTransport(t string) {
	s.mu.Lock()
	s.transport = t
	s.mu.Unlock()
}
