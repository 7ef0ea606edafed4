package bolt

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/convead/chat-server/store"
)

// TestConvCacheUnderConcurrentReads: readers fill the cache while a conversation moves from
// manager to manager; once a move has returned, every read shows it. A read that overlapped
// the commit and kept its older value would show the manager before.
func TestConvCacheUnderConcurrentReads(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	ctx := context.Background()
	c, err := s.CreateConversation(ctx, store.Conversation{ID: "c1", OrgID: "O", VisitorID: "v1", ManagerID: "m0",
		Status: store.StatusOpen, CreatedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 4 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := s.Conversation(ctx, c.ID); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	managers := []string{"m0", "m1"}
	for i := range 300 {
		from, to := managers[i%2], managers[(i+1)%2]
		if _, err := s.AssignConversation(ctx, c.ID, from, to, time.Now()); err != nil {
			t.Fatalf("move %d from %s to %s: %v", i, from, to, err)
		}
		if got, err := s.Conversation(ctx, c.ID); err != nil || got.ManagerID != to {
			t.Fatalf("after move %d to %s: manager %q, %v", i, to, got.ManagerID, err)
		}
	}
	close(stop)
	readers.Wait()
}
