package faye

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/convead/chat-server/auth"
)

// Consumer is whatever currently takes a session's messages: one held long-poll, a bound
// websocket or an EventSource stream. A session has at most one; a new one replaces it.
type Consumer struct {
	s *session
	// Long-poll and EventSource wait on channels.
	wake chan struct{} // a message was queued (capacity 1: a pending wake is enough)
	done chan struct{} // closed when replaced or when the session ends
	// A websocket is called instead: no channel to wait on, so no goroutine per socket.
	sink Sink
	// streaming is true for websocket and EventSource: their end takes a manager off duty,
	// while a long-poll ending between two polls does not.
	streaming bool
}

// Sink is a consumer that is told rather than woken (a websocket served by an event loop,
// which keeps no goroutine waiting on channels).
type Sink interface {
	// Queued says messages wait (take them with Consumer.Take). It is called on the
	// publisher's goroutine and must not block: it schedules the write.
	Queued()
	// Ended says c no longer consumes: another consumer replaced it (closed false) or the
	// session ended (closed true). Never called under the session's lock.
	Ended(c *Consumer, closed bool)
}

func (c *Consumer) signal() {
	if c.sink != nil {
		c.sink.Queued()
		return
	}
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *Consumer) end(closed bool) {
	if c.sink != nil {
		c.sink.Ended(c, closed)
		return
	}
	close(c.done)
}

// session is one Faye client, from handshake to disconnect or expiry.
type session struct {
	id       string
	lastSeen atomic.Int64 // unix nanoseconds of the last request

	mu          sync.Mutex
	identity    auth.Identity
	hasIdentity bool
	anonVisitor string // anonymous sessions: the visitor they became by subscribing
	subs        subscriptions
	queue       [][]byte // encoded deliveries
	dropped     uint64
	consumer    *Consumer
	closed      bool
	overflowed  bool
	transport   string // connection type of the last /meta/connect
}

// subscriptions are a session's channel names and patterns, sorted. A session lives as long
// as its client, idle or not, and most hold one to three: a sorted slice costs 16 bytes a
// name, where a map costs some 200 bytes from its first name on. MaxChannels bounds the
// length, which keeps the search and the copy of an insertion cheap.
type subscriptions []string

func (ss subscriptions) has(name string) bool {
	_, ok := slices.BinarySearch(ss, name)
	return ok
}

// add inserts name; false if it was there.
func (ss *subscriptions) add(name string) bool {
	i, ok := slices.BinarySearch(*ss, name)
	if !ok {
		*ss = slices.Insert(*ss, i, name)
	}
	return !ok
}

// remove deletes name; false if it was not there.
func (ss *subscriptions) remove(name string) bool {
	i, ok := slices.BinarySearch(*ss, name)
	if ok {
		*ss = slices.Delete(*ss, i, i+1)
	}
	return ok
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
	s := &session{id: id}
	s.touch(now)
	return s
}

func (s *session) touch(now time.Time) { s.lastSeen.Store(now.UnixNano()) }

// deliver queues an encoded message and returns the consumer to signal (nil: none). It never
// blocks: it runs inside the broker's publish. Beyond max queued messages it drops and reports
// dropped.
func (s *session) deliver(msg []byte, max int) (c *Consumer, dropped bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, false
	}
	if len(s.queue) >= max {
		s.dropped++
		return nil, true
	}
	s.queue = append(s.queue, msg)
	return s.consumer, false
}

// take removes and returns everything queued.
func (s *session) take() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queue
	s.queue = nil
	return q
}

// takeFor appends everything queued to dst and empties the queue, if c is still the
// consumer. The queue keeps its array, so a steady stream allocates nothing per delivery.
func (s *session) takeFor(c *Consumer, dst [][]byte) [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.consumer != c {
		return dst
	}
	dst = append(dst, s.queue...)
	clear(s.queue)
	if cap(s.queue) > 64 { // a burst is over: do not keep its array
		s.queue = nil
	} else {
		s.queue = s.queue[:0]
	}
	return dst
}

func (s *session) pending() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue) > 0
}

// attach makes a new consumer current (sk nil: one woken through channels), ending the
// previous one. It returns nil when the session has ended.
func (s *session) attach(streaming bool, sk Sink) *Consumer {
	c := &Consumer{s: s, streaming: streaming, sink: sk}
	if sk == nil {
		c.wake, c.done = make(chan struct{}, 1), make(chan struct{})
	}
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
		old.end(false)
	}
	if queued {
		c.signal()
	}
	return c
}

// detach forgets c if it is still current; it reports whether it was. A sink detaches itself,
// so it is not told.
func (s *session) detach(c *Consumer) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.consumer != c {
		return false
	}
	s.consumer = nil
	if c.sink == nil {
		close(c.done)
	}
	return true
}

// current reports whether c is the session's consumer.
func (s *session) current(c *Consumer) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.consumer == c
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
		c.end(true)
	}
	return true
}

// idle reports whether the session has no consumer and was last seen before cutoff.
func (s *session) idle(cutoff time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.consumer == nil && s.lastSeen.Load() < cutoff.UnixNano()
}
