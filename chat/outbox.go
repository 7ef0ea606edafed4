package chat

import (
	"log/slog"
	"sync"
)

// outbox publishes the service's events from a few long-lived goroutines, in order per
// organisation, so that a request is answered as soon as its change is stored. Deliveries were never
// part of the answer (a failed publish is logged and clients close any gap from history), and
// publishing from each request's goroutine made every HTTP worker grow its stack through the
// broker's publish path and contend on the broker's locks: on the REST chat path the outbox
// raised the posts answered per second by a fifth at the same CPU (docs/profiles/README.md).
//
// Events of one organisation keep the order in which they were published, as when the caller
// published them itself: a client sees nothing but its organisation, and an integration that
// posts notifications to many visitors one after the other finds them in that order in its
// MQTT session. Organisations are spread over the goroutines.
type outbox struct {
	pub Publisher
	log *slog.Logger

	// mu is held for reading while an event is queued, and for writing by close, so that no
	// event is queued on a closed shard.
	mu     sync.RWMutex
	closed bool
	shards []chan outgoing
	done   sync.WaitGroup
}

// outgoing is an event to publish, or a flush marker (flushed non-nil).
type outgoing struct {
	org, ch string
	payload []byte
	flushed chan<- struct{}
}

// newOutbox starts shards goroutines, each with a queue of depth events; a full queue makes
// the publisher wait (nothing is dropped, and memory stays bounded).
func newOutbox(pub Publisher, log *slog.Logger, shards, depth int) *outbox {
	o := &outbox{pub: pub, log: log, shards: make([]chan outgoing, max(1, shards))}
	for i := range o.shards {
		q := make(chan outgoing, depth)
		o.shards[i] = q
		o.done.Add(1)
		go o.run(q)
	}
	return o
}

func (o *outbox) run(q <-chan outgoing) {
	defer o.done.Done()
	for e := range q {
		if e.flushed != nil {
			e.flushed <- struct{}{}
			continue
		}
		o.send(e)
	}
}

func (o *outbox) send(e outgoing) {
	if err := o.pub.Publish(e.org, e.ch, e.payload); err != nil {
		o.log.Error("publish failed", "org", e.org, "channel", e.ch, "err", err)
	}
}

// publish queues an event on its organisation's shard. Once the outbox is closed, events (of
// background work that ends after it) are published at once by the caller.
func (o *outbox) publish(org, ch string, payload []byte) {
	o.mu.RLock()
	defer o.mu.RUnlock()
	e := outgoing{org: org, ch: ch, payload: payload}
	if o.closed {
		o.send(e)
		return
	}
	o.shards[shardOf(org, len(o.shards))] <- e
}

// queued is the number of events waiting in the shards.
func (o *outbox) queued() int {
	n := 0
	for _, q := range o.shards {
		n += len(q)
	}
	return n
}

// flush returns once every event queued before it has been published.
func (o *outbox) flush() {
	o.mu.RLock()
	defer o.mu.RUnlock()
	if o.closed {
		return
	}
	done := make(chan struct{}, len(o.shards))
	for _, q := range o.shards {
		q <- outgoing{flushed: done}
	}
	for range o.shards {
		<-done
	}
}

// close publishes what is queued and stops the goroutines.
func (o *outbox) close() {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return
	}
	o.closed = true
	for _, q := range o.shards {
		close(q)
	}
	o.mu.Unlock()
	o.done.Wait()
}

// shardOf spreads organisations over n shards (FNV-1a), always the same shard for one.
func shardOf(org string, n int) int {
	h := uint32(2166136261)
	for i := 0; i < len(org); i++ {
		h ^= uint32(org[i])
		h *= 16777619
	}
	return int(h % uint32(n))
}
