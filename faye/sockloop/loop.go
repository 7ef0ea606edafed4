// Package sockloop serves many mostly idle connections without a goroutine or a buffer per
// connection: an event loop (epoll on Linux, a goroutine per connection elsewhere) reads a
// connection when it has bytes, tells its Handler what arrived, when it may be written again
// and when it ended, and offers non-blocking writes and closing. It knows bytes and sockets
// only: it must not import the Bayeux engine (faye), faye/bayeux or any protocol on top of it;
// framing is its user's job.
package sockloop

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// ErrWouldBlock is Write's answer when the socket takes no more bytes now: the rest waits for
// Handler.Writable.
var ErrWouldBlock = errors.New("socket would block")

// Next is what the loop does after Handler.Data.
type Next int

const (
	// Read goes on reading the connection.
	Read Next = iota
	// Pause stops reading the connection until Conn.Resume (TCP then pushes back on the peer).
	Pause
	// Stop ends this turn on the connection (it is closing); what comes later is read when it
	// arrives.
	Stop
)

// Handler is the user's side of one connection. The loop calls Data and Hangup one at a time
// per connection; Writable, Tick and Stop may come from other goroutines at any time, also
// during Data. None of them may block.
type Handler interface {
	// Data says bytes arrived; p is valid during the call only.
	Data(p []byte) Next
	// Writable says the socket may take bytes again, or the user asked for it (Conn.Wake).
	Writable()
	// Tick runs the connection's timers, every Config.Tick; now is in unix nanoseconds.
	Tick(now int64)
	// Hangup says reading met the end of the stream or an error: the handler closes the Conn.
	Hangup()
	// Stop says the loop stops: the handler ends the connection now (Conn.Close).
	Stop()
}

// Config configures a Loop.
type Config struct {
	// Tick is the period of Handler.Tick.
	Tick time.Duration
	// WriteTimeout bounds a write where writes block (not on Linux, where they never do).
	WriteTimeout time.Duration
	// Log receives the loop's own failures.
	Log *slog.Logger
}

// Conn is one connection served by a Loop. Its descriptor is closed (by Close) under rmu and
// after disposed is set, so a read or write never meets a descriptor number reused by another
// socket.
type Conn struct {
	nc        net.Conn // closed at the end: an outer wrapper may give back a per-address slot (Linux: nil without one)
	h         Handler
	scheduled atomic.Bool // Wake asked for a Writable call not made yet
	disposed  atomic.Bool // Close was called

	rmu    sync.Mutex // held while reading and during Data
	paused bool       // Data asked for a Pause; Resume ends it
	sys
}

// Exclusive runs fn while no Data call runs on c: state that only Data touches may be read
// there.
func (c *Conn) Exclusive(fn func()) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	fn()
}

// Loop serves connections until Close.
type Loop struct {
	cfg    Config
	closed atomic.Bool
	done   chan struct{}
	wg     sync.WaitGroup
	loopSys
}

// sweep calls every connection's Tick until the loop closes.
func (l *Loop) sweep() {
	defer l.wg.Done()
	t := time.NewTicker(l.cfg.Tick)
	defer t.Stop()
	for {
		select {
		case <-l.done:
			return
		case now := <-t.C:
			l.tick(now.UnixNano())
		}
	}
}
