package faye

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/convead/chat-server/auth"
)

// consumer is whatever currently takes a session's messages: one held long-poll, a bound
// websocket or an EventSource stream. A session has at most one; a new one replaces it.
type consumer struct {
	wake chan struct{} // a message was queued (capacity 1: a pending wake is enough)
	done chan struct{} // closed when replaced or when the session ends
	// streaming is true for websocket and EventSource: their end takes a manager off duty,
	// while a long-poll ending between two polls does not.
	streaming bool
}

// session is one Faye client, from handshake to disconnect or expiry.
type session struct {
	id       string
	lastSeen atomic.Int64 // unix nanoseconds of the last request

	mu          sync.Mutex
	identity    auth.Identity
	hasIdentity bool
	anonVisitor string          // anonymous sessions: the visitor they became by subscribing
	subs        map[string]bool // channel names and patterns
	queue       [][]byte        // encoded deliveries
	dropped     uint64
	consumer    *consumer
	closed      bool
	overflowed  bool
	transport   string // connection type of the last /meta/connect
}

// markOverflow records that the queue overflowed; true the first time only.
func (s *session) markOverflow() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.overflowed || s.closed {
		return false
	}
	s.overflowed = true
	return true
}

func newSession(id string, now time.Time) *session {
	s := &session{id: id, subs: map[string]bool{}}
	s.touch(now)
	return s
}

func (s *session) touch(now time.Time) { s.lastSeen.Store(now.UnixNano()) }

// deliver queues an encoded message and wakes the consumer. It never blocks: it runs inside
// the broker's publish. Beyond max queued messages it drops and reports true.
func (s *session) deliver(msg []byte, max int) (dropped bool) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	if len(s.queue) >= max {
		s.dropped++
		s.mu.Unlock()
		return true
	}
	s.queue = append(s.queue, msg)
	c := s.consumer
	s.mu.Unlock()
	if c != nil {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
	return false
}

// take removes and returns everything queued.
func (s *session) take() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queue
	s.queue = nil
	return q
}

func (s *session) pending() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue) > 0
}

// attach makes a new consumer current, ending the previous one. It returns nil when the
// session has ended.
func (s *session) attach(streaming bool) *consumer {
	c := &consumer{wake: make(chan struct{}, 1), done: make(chan struct{}), streaming: streaming}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	old := s.consumer
	s.consumer = c
	queued := len(s.queue) > 0
	s.mu.Unlock()
	if old != nil {
		close(old.done)
	}
	if queued {
		c.wake <- struct{}{}
	}
	return c
}

// detach forgets c if it is still current; it reports whether it was.
func (s *session) detach(c *consumer) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.consumer != c {
		return false
	}
	s.consumer = nil
	close(c.done)
	return true
}

// close ends the session and its consumer; it reports false if it had already ended.
func (s *session) close() bool {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	s.closed = true
	c := s.consumer
	s.consumer = nil
	s.queue = nil
	s.mu.Unlock()
	if c != nil {
		close(c.done)
	}
	return true
}

// idle reports whether the session has no consumer and was last seen before cutoff.
func (s *session) idle(cutoff time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.consumer == nil && s.lastSeen.Load() < cutoff.UnixNano()
}
