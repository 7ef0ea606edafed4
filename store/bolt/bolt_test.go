package bolt

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/convead/chat-server/store"
	"github.com/convead/chat-server/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestReopenKeepsData(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.CreateConversation(ctx, store.Conversation{ID: "c1", OrgID: "O", VisitorID: "v1", Status: store.StatusOpen})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.AppendMessage(ctx, store.Message{ID: "m1", ConversationID: c.ID, OrgID: "O", VisitorID: "v1", Content: "kept"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	if _, err := s.OpenConversation(ctx, "O", "v1"); err != nil {
		t.Errorf("open conversation lost on reopen: %v", err)
	}
	m, _, err := s.AppendMessage(ctx, store.Message{ID: "m2", ConversationID: c.ID, OrgID: "O", VisitorID: "v1", Content: "next"})
	if err != nil || m.Seq != 2 {
		t.Errorf("seq after reopen = %d, %v; want 2", m.Seq, err)
	}
}

func TestSecondOpenFailsClearly(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	if _, err := Open(dir); err == nil {
		t.Fatal("a second server opened the same data folder")
	}
}

// countPrefix counts the keys of bucket b that start with prefix.
func countPrefix(t *testing.T, s *Store, b []byte, prefix []byte) int {
	t.Helper()
	n := 0
	err := s.db.View(func(tx *bbolt.Tx) error {
		n = len(keysWithPrefix(tx.Bucket(b), prefix))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestDeleteVisitorRemovesNotifications(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	for _, v := range []string{"v1", "v1", "v2"} {
		if _, err := s.AddNotification(ctx, store.Notification{ID: store.NewID(), OrgID: "O", VisitorID: v, Data: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteVisitor(ctx, "O", "v1"); err != nil {
		t.Fatal(err)
	}
	if n := countPrefix(t, s, bNotifications, nil); n != 1 {
		t.Errorf("%d notifications left, want the one of v2", n)
	}
	if n := countPrefix(t, s, bNotificationsByVisitor, key("O", "v2", "")); n != 1 {
		t.Errorf("index of v2's notifications: %d entries, want 1", n)
	}
}

// TestOpenIndexesOlderFile opens a file as the layout before the indexes left it: Open builds
// the missing index entries once, and listing and erasure then work.
func TestOpenIndexesOlderFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC().Truncate(time.Millisecond)
	c1, err := s.CreateConversation(ctx, store.Conversation{ID: "c1", OrgID: "O", VisitorID: "v1", ManagerID: "m1", Status: store.StatusOpen, CreatedAt: at})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CloseConversation(ctx, c1.ID, at); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateConversation(ctx, store.Conversation{ID: "c2", OrgID: "O", VisitorID: "v1", ManagerID: "m1", Status: store.StatusOpen, CreatedAt: at.Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddNotification(ctx, store.Notification{ID: "n1", OrgID: "O", VisitorID: "v1", Data: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	// Back to layout 1: no version, no index buckets.
	err = s.db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{bByCreated, bByStatus, bByManager, bByManagerStatus, bByVisitor, bByClosed, bNotificationsByVisitor, bMeta} {
			if err := tx.DeleteBucket(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for reopen := 0; reopen < 2; reopen++ {
		if s, err = Open(dir); err != nil {
			t.Fatal(err)
		}
		items, _, err := s.ListConversations(ctx, store.ConversationQuery{OrgID: "O", ManagerID: "m1", Status: store.StatusOpen, Limit: 10})
		if err != nil || len(items) != 1 || items[0].ID != "c2" {
			t.Fatalf("open conversations of m1 after reopen %d = %+v, %v; want c2", reopen+1, items, err)
		}
		if n := countPrefix(t, s, bByClosed, nil); n != 1 {
			t.Fatalf("closing-time index after reopen %d: %d entries, want 1", reopen+1, n)
		}
		if reopen == 0 {
			if err := s.Close(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	defer s.Close(ctx)
	if err := s.DeleteVisitor(ctx, "O", "v1"); err != nil {
		t.Fatal(err)
	}
	if n := countPrefix(t, s, bNotifications, nil); n != 0 {
		t.Errorf("%d notifications left after deleting their visitor", n)
	}
}

// TestAppendActivityRecord: the activity record written around a message's stored bytes is
// the JSON of store.Activity, and its counters carry on from a record written by encoding/json
// (older files).
func TestAppendActivityRecord(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	msg := []byte(`{"id":"m1","conversation_id":"c1","content":"héllo \"you\"","seq":3}`)
	err = s.db.Update(func(tx *bbolt.Tx) error {
		if err := put(tx.Bucket(bActivity), []byte("c1"), store.Activity{UnreadByVisitor: 4, UnreadByManager: 7}); err != nil {
			return err
		}
		if err := appendActivity(tx, "c1", msg, true); err != nil {
			return err
		}
		return appendActivity(tx, "c1", msg, false)
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.db.View(func(tx *bbolt.Tx) error {
		data := tx.Bucket(bActivity).Get([]byte("c1"))
		if !json.Valid(data) {
			return fmt.Errorf("record is not JSON: %s", data)
		}
		var a store.Activity
		if err := json.Unmarshal(data, &a); err != nil {
			return err
		}
		if a.UnreadByVisitor != 5 || a.UnreadByManager != 8 || a.LastMessage == nil || a.LastMessage.Content != `héllo "you"` || a.LastMessage.Seq != 3 {
			return fmt.Errorf("read back %+v (last %+v), want 5 unread by the visitor, 8 by the manager, the message", a, a.LastMessage)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
