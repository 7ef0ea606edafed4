package chat

import (
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// rawRecorder keeps payloads as they came, per channel.
type rawRecorder struct {
	mu   sync.Mutex
	byCh map[string][]string
	all  []string      // every payload, in the order published
	gate chan struct{} // when non-nil, every Publish waits for a value
}

func (r *rawRecorder) Publish(org, ch string, payload []byte) error {
	if r.gate != nil {
		<-r.gate
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.byCh[ch] = append(r.byCh[ch], string(payload))
	r.all = append(r.all, string(payload))
	return nil
}

func (r *rawRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, p := range r.byCh {
		n += len(p)
	}
	return n
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestOutboxKeepsOrderPerOrganisation(t *testing.T) {
	for _, shards := range []int{1, 2, 7} {
		t.Run(fmt.Sprint(shards, " shards"), func(t *testing.T) {
			r := &rawRecorder{byCh: map[string][]string{}}
			o := newOutbox(r, discard(), shards, 4)
			var wg sync.WaitGroup
			// Each organisation's events go to many channels, one after the other.
			for org := 0; org < 10; org++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < 200; i++ {
						o.publish(fmt.Sprint("O", org), fmt.Sprint("/service/v", i%7), []byte(fmt.Sprint(org, " ", i)))
					}
				}()
			}
			wg.Wait()
			o.flush()
			if got := r.count(); got != 2000 {
				t.Fatalf("after flush: %d events published, want 2000", got)
			}
			next := map[string]int{} // organisation → its next event
			for _, p := range r.all {
				var org, i int
				fmt.Sscan(p, &org, &i)
				if i != next[fmt.Sprint(org)] {
					t.Fatalf("organisation %d: event %d published after %d: order lost", org, i, next[fmt.Sprint(org)]-1)
				}
				next[fmt.Sprint(org)]++
			}
			o.close()
		})
	}
}

func TestOutboxCloseDrainsThenPublishesInline(t *testing.T) {
	r := &rawRecorder{byCh: map[string][]string{}, gate: make(chan struct{})}
	o := newOutbox(r, discard(), 2, 64)
	for i := 0; i < 50; i++ {
		o.publish("O", "/a", []byte(fmt.Sprint(i)))
	}
	closed := make(chan struct{})
	go func() { o.close(); close(closed) }()
	for i := 0; i < 50; i++ {
		r.gate <- struct{}{}
	}
	<-closed
	if got := r.count(); got != 50 {
		t.Fatalf("close returned with %d of 50 queued events published", got)
	}
	close(r.gate) // from now on Publish does not wait
	o.publish("O", "/a", []byte("late"))
	if got := r.byCh["/a"]; got[len(got)-1] != "late" {
		t.Fatalf("an event after close was not published by its caller: %q", got[len(got)-1])
	}
	o.flush() // returns at once once closed
	o.close() // idempotent
}

func TestOutboxFullQueueWaits(t *testing.T) {
	r := &rawRecorder{byCh: map[string][]string{}, gate: make(chan struct{})}
	o := newOutbox(r, discard(), 1, 2)
	// The goroutine takes the first event and waits at the gate; two more fill the queue, so
	// the fourth cannot be queued before the gate lets one through.
	for i := 0; i < 3; i++ {
		o.publish("O", "/a", nil)
	}
	queued := make(chan struct{})
	go func() { o.publish("O", "/a", nil); close(queued) }()
	select {
	case <-queued:
		t.Fatal("a fourth event was queued while the queue (2) and the publisher were full")
	case <-time.After(20 * time.Millisecond):
	}
	for i := 0; i < 4; i++ {
		r.gate <- struct{}{}
	}
	<-queued
	o.flush()
	if got := r.count(); got != 4 {
		t.Fatalf("%d of 4 events published", got)
	}
	close(r.gate)
	o.close()
}

func TestShardOfIsStable(t *testing.T) {
	for _, ch := range []string{"", "/a", "/conversations/abc", "/service/v1"} {
		for _, n := range []int{1, 2, 3, 16} {
			s := shardOf(ch, n)
			if s < 0 || s >= n || s != shardOf(ch, n) {
				t.Fatalf("shardOf(%q, %d) = %d", ch, n, s)
			}
		}
	}
}
