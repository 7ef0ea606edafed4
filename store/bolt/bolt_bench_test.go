package bolt

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/convead/chat-server/store"
)

// fillOrg stores n conversations of org in one transaction, as CreateConversation and
// CloseConversation would leave them: every 1/50th of the range is an open conversation of
// manager "target" (50 in all), the others belong to 20 other managers, nine in ten closed.
func fillOrg(tb testing.TB, s *Store, org string, n int) {
	tb.Helper()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	err := s.db.Update(func(tx *bbolt.Tx) error {
		for i := range n {
			at := base.Add(time.Duration(i) * time.Second)
			c := store.Conversation{ID: store.NewID(), OrgID: org, VisitorID: fmt.Sprint("v", i),
				ManagerID: fmt.Sprint("m", i%20), Status: store.StatusClosed, CreatedAt: at, UpdatedAt: at}
			switch {
			case i%(n/50) == 0:
				c.ManagerID, c.Status = "target", store.StatusOpen
			case i%10 == 0:
				c.Status = store.StatusOpen
			default:
				closed := at.Add(time.Minute)
				c.ClosedAt = &closed
			}
			if c.Active() {
				if err := tx.Bucket(bOpen).Put(key(org, c.VisitorID), []byte(c.ID)); err != nil {
					return err
				}
			}
			if err := put(tx.Bucket(bConversations), []byte(c.ID), c); err != nil {
				return err
			}
			if err := putIndexes(tx, c); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkListManagerOpen lists one manager's 50 open conversations among n of the
// organisation: with the index its cost follows the page, not n.
func BenchmarkListManagerOpen(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{1000, 10000, 100000} {
		b.Run(fmt.Sprint("N=", n), func(b *testing.B) {
			s, err := Open(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close(ctx)
			fillOrg(b, s, "O", n)
			q := store.ConversationQuery{OrgID: "O", ManagerID: "target", Status: store.StatusOpen, Limit: 50}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				items, next, err := s.ListConversations(ctx, q)
				if err != nil || len(items) != 50 || next != "" {
					b.Fatalf("listed %d, next %q, %v; want the 50 of the manager", len(items), next, err)
				}
			}
		})
	}
}

// BenchmarkAppendMessage posts from 8 and from 64 goroutines at once into 500 conversations, as
// the REST path does under load: it measures the group commit (fsync on; 8 in flight makes
// small groups, as a server offered a steady rate sees) and the work done inside the write
// transaction per message.
func BenchmarkAppendMessage(b *testing.B) {
	for _, inFlight := range []int{8, 64} {
		b.Run(fmt.Sprint("in_flight=", inFlight), func(b *testing.B) { benchmarkAppendMessage(b, inFlight) })
	}
}

func benchmarkAppendMessage(b *testing.B, inFlight int) {
	ctx := context.Background()
	s, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(ctx)
	const convs = 500
	var next atomic.Int64
	b.SetParallelism(max(1, inFlight/runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	cpu0 := processCPU(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := next.Add(1)
			i := n % convs
			m := store.Message{ID: store.NewID(), ConversationID: fmt.Sprint("c", i), OrgID: "O",
				VisitorID: fmt.Sprint("v", i), Sender: store.Sender{Type: "visitor", ID: fmt.Sprint("v", i)},
				Content: "a message of about the size people type", ClientMessageID: fmt.Sprint("cm-", n),
				CreatedAt: time.Now()}
			if _, _, err := s.AppendMessage(ctx, m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "posts/s")
	// CPU per post, kernel included (page writes, fdatasync): what the throughput costs the
	// rest of the server on shared cores.
	b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/post")
}

// processCPU is the user and system CPU time the test process has used so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkConversation reads one conversation, as every post does first: from the cache, and
// from the file (the cache emptied before each read).
func BenchmarkConversation(b *testing.B) {
	ctx := context.Background()
	s, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(ctx)
	c, err := s.CreateConversation(ctx, store.Conversation{ID: store.NewID(), OrgID: "O", VisitorID: "v1", ManagerID: "m1",
		Status: store.StatusOpen, CreatedAt: time.Now(), UpdatedAt: time.Now()})
	if err != nil {
		b.Fatal(err)
	}
	for _, cached := range []bool{true, false} {
		b.Run(fmt.Sprint("cached=", cached), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if !cached {
					s.convs.mu.Lock()
					clear(s.convs.items)
					s.convs.mu.Unlock()
				}
				if _, err := s.Conversation(ctx, c.ID); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
