package mongo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/convead/chat-server/store"
	"github.com/convead/chat-server/store/storetest"
)

// TestConformanceFerretDB runs the suite over the MongoDB wire protocol against FerretDB
// (SQLite backend) started in this process.
func TestConformanceFerretDB(t *testing.T) {
	uri := StartFerretDB(t)
	runSuite(t, uri)
}

// TestConformanceMongoDB runs the suite against a real MongoDB when CHAT_TEST_MONGO_URI is set.
func TestConformanceMongoDB(t *testing.T) {
	uri := os.Getenv("CHAT_TEST_MONGO_URI")
	if uri == "" {
		t.Skip("CHAT_TEST_MONGO_URI is not set: no real MongoDB to test against (FerretDB is tested above)")
	}
	runSuite(t, uri)
}

var dbSeq atomic.Int64

func runSuite(t *testing.T, uri string) {
	storetest.Run(t, func(t *testing.T) store.Store {
		db := fmt.Sprintf("chat_test_%d_%d", time.Now().UnixNano(), dbSeq.Add(1))
		s, err := Open(context.Background(), uri, db, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.client.Database(db).Drop(context.Background()) })
		return s
	})
}

// StartFerretDB starts FerretDB on a loopback port for the test and returns its URI.
func StartFerretDB(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: addr},
		Handler:   "sqlite",
		SQLiteURL: "file:" + t.TempDir() + "/",
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = f.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return f.MongoDBURI()
}

func TestUnreachableIsUnavailable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	_, err = Open(context.Background(), "mongodb://"+addr+"/?connectTimeoutMS=300", "x", 500*time.Millisecond)
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Open against a closed port: err = %v, want ErrUnavailable", err)
	}
}

func TestDeleteVisitorRemovesNotifications(t *testing.T) {
	uri := StartFerretDB(t)
	ctx := context.Background()
	s, err := Open(ctx, uri, "chat_notifications", 10*time.Second)
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
	n, err := s.notifications.CountDocuments(ctx, bson.D{})
	if err != nil || n != 1 {
		t.Errorf("%d notifications left (%v), want the one of v2", n, err)
	}
}

// TestSweepKeepsNumberingWithoutHint: a retention sweep that takes a visitor's newest messages
// while the Seq hint lags behind them (a crash after an insert, or a lost $max) must not let
// the next message reuse their Seqs.
func TestSweepKeepsNumberingWithoutHint(t *testing.T) {
	uri := StartFerretDB(t)
	ctx := context.Background()
	s, err := Open(ctx, uri, "chat_sweep", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	at := time.Now().UTC().Truncate(time.Millisecond)
	c, err := s.CreateConversation(ctx, store.Conversation{ID: "c1", OrgID: "O", VisitorID: "v1", ManagerID: "m1", Status: store.StatusOpen, CreatedAt: at})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"m1", "m2"} {
		if _, _, err := s.AppendMessage(ctx, store.Message{ID: id, ConversationID: c.ID, OrgID: "O", VisitorID: "v1"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.CloseConversation(ctx, c.ID, at); err != nil {
		t.Fatal(err)
	}
	if _, err := s.seqs.DeleteOne(ctx, bson.D{{Key: "_id", Value: "O:v1"}}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.DeleteClosedBefore(ctx, "O", at.Add(time.Second), 10); err != nil || n != 1 {
		t.Fatalf("sweep: %d, %v", n, err)
	}
	if _, err := s.CreateConversation(ctx, store.Conversation{ID: "c2", OrgID: "O", VisitorID: "v1", ManagerID: "m1", Status: store.StatusOpen, CreatedAt: at}); err != nil {
		t.Fatal(err)
	}
	m, _, err := s.AppendMessage(ctx, store.Message{ID: "m3", ConversationID: "c2", OrgID: "O", VisitorID: "v1"})
	if err != nil || m.Seq != 3 {
		t.Errorf("seq after the sweep = %d, %v; want 3", m.Seq, err)
	}
}
