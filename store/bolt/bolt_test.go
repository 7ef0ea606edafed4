package bolt

import (
	"context"
	"testing"

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

func BenchmarkAppendMessage(b *testing.B) {
	s, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(context.Background())
	ctx := context.Background()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		visitor := store.NewID()
		for pb.Next() {
			if _, _, err := s.AppendMessage(ctx, store.Message{ID: store.NewID(), ConversationID: "c", OrgID: "O", VisitorID: visitor, Content: "hello"}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
