// Package storetest is the one conformance suite every store.Store backend must pass. Each
// backend's tests call Run with a function that opens a fresh, empty store.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/convead/chat-server/store"
)

// Opener returns a fresh, empty store; the suite closes it.
type Opener func(t *testing.T) store.Store

// Run runs the whole suite against the stores open returns.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Orgs", testOrgs},
		{"Managers", testManagers},
		{"Conversations", testConversations},
		{"OneOpenConversationUnderConcurrency", testOneOpenConversation},
		{"OpenCounts", testOpenCounts},
		{"MessagesAndSeq", testMessages},
		{"IdempotentAppendUnderConcurrency", testIdempotentAppend},
		{"History", testHistory},
		{"CatchUpNeverSkips", testCatchUpNeverSkips},
		{"MarkRead", testMarkRead},
		{"Notifications", testNotifications},
		{"NotFound", testNotFound},
		{"OrgKeys", testOrgKeys},
		{"OrgSettings", testOrgSettings},
		{"Pending", testPending},
		{"Assign", testAssign},
		{"AssignUnderConcurrency", testAssignConcurrent},
		{"ListConversations", testListConversations},
		{"ListStableWhileAdding", testListStable},
		{"Activity", testActivity},
		{"RegisteredManagers", testRegisteredManagers},
		{"DeleteVisitor", testDeleteVisitor},
		{"DeleteClosedBefore", testDeleteClosedBefore},
		{"SeqAfterSweep", testSeqAfterSweep},
		{"ReadAfterWrite", testReadAfterWrite},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(context.Background()); err != nil {
					t.Errorf("close: %v", err)
				}
			})
			tc.fn(t, s)
		})
	}
}

// now is millisecond-precise UTC, as the domain stores times.
func now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

// result carries a call's value and error so that ok(call()).get(t) fails the test on error.
type result[T any] struct {
	v   T
	err error
}

func ok[T any](v T, err error) result[T] { return result[T]{v, err} }

func ok3(m store.Message, _ bool, err error) result[store.Message] {
	return result[store.Message]{m, err}
}

func (r result[T]) get(t *testing.T) T {
	t.Helper()
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.v
}

func newConv(org, visitor, manager string) store.Conversation {
	at := now()
	return store.Conversation{ID: store.NewID(), OrgID: org, VisitorID: visitor, ManagerID: manager,
		Status: store.StatusOpen, CreatedAt: at, UpdatedAt: at}
}

func newPending(org, visitor string) store.Conversation {
	c := newConv(org, visitor, "")
	c.Status = store.StatusPending
	return c
}

func newMsg(c store.Conversation, senderType, senderID, content, clientID string) store.Message {
	return store.Message{ID: store.NewID(), ConversationID: c.ID, OrgID: c.OrgID, VisitorID: c.VisitorID,
		Sender: store.Sender{Type: senderType, ID: senderID}, Content: content, ClientMessageID: clientID, CreatedAt: now()}
}

func testOrgs(t *testing.T, s store.Store) {
	ctx := context.Background()
	first := now()
	ok(s.PutOrg(ctx, store.Org{ID: "O", Name: "Shop", ChatOfflineMessage: "later", CreatedAt: first, UpdatedAt: first})).get(t)
	later := first.Add(time.Second)
	ok(s.PutOrg(ctx, store.Org{ID: "O", Name: "Shop 2", ChatOfflineMessage: "away", AllowedOrigins: []string{"https://shop.example"}, CreatedAt: later, UpdatedAt: later})).get(t)
	o := ok(s.Org(ctx, "O")).get(t)
	if o.Name != "Shop 2" || o.ChatOfflineMessage != "away" || !o.CreatedAt.Equal(first) || !o.UpdatedAt.Equal(later) ||
		len(o.AllowedOrigins) != 1 || o.AllowedOrigins[0] != "https://shop.example" {
		t.Errorf("org = %+v: want updated name, message and origins, first CreatedAt", o)
	}
	ok(s.PutOrg(ctx, store.Org{ID: "P", Name: "Other", CreatedAt: later, UpdatedAt: later})).get(t)
	all := ok(s.Orgs(ctx)).get(t)
	if len(all) != 2 {
		t.Errorf("Orgs = %+v, want O and P", all)
	}
}

func testManagers(t *testing.T, s store.Store) {
	ctx := context.Background()
	ok(s.PutManager(ctx, store.Manager{OrgID: "O", ID: "m1", Name: "Ann", Capacity: 2, UpdatedAt: now()})).get(t)
	c := ok(s.CreateConversation(ctx, newConv("O", "v1", "m2"))).get(t)
	ms := ok(s.Managers(ctx, "O", []string{"m1", "m2", "m3"})).get(t)
	if m := ms["m1"]; !m.Registered || m.Name != "Ann" || m.Capacity != 2 || m.LastAssignedAt != nil {
		t.Errorf("m1 = %+v", m)
	}
	if m := ms["m2"]; m.Registered || m.LastAssignedAt == nil || !m.LastAssignedAt.Equal(c.CreatedAt) {
		t.Errorf("m2 = %+v: want unregistered, assigned at %v", m, c.CreatedAt)
	}
	if _, ok := ms["m3"]; ok {
		t.Error("unknown manager m3 returned")
	}
	// Registering keeps the assignment time; another org sees nothing.
	m := ok(s.PutManager(ctx, store.Manager{OrgID: "O", ID: "m2", Name: "Bob", UpdatedAt: now()})).get(t)
	if !m.Registered || m.LastAssignedAt == nil {
		t.Errorf("registered m2 = %+v", m)
	}
	if other := ok(s.Managers(ctx, "P", []string{"m1", "m2"})).get(t); len(other) != 0 {
		t.Errorf("org P sees managers of O: %+v", other)
	}
}

func testConversations(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := ok(s.CreateConversation(ctx, newConv("O", "v1", "m1"))).get(t)
	if _, err := s.CreateConversation(ctx, newConv("O", "v1", "m2")); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second open conversation: err = %v, want ErrConflict", err)
	}
	// The same visitor id in another organisation is another visitor.
	ok(s.CreateConversation(ctx, newConv("P", "v1", "m1"))).get(t)
	got := ok(s.OpenConversation(ctx, "O", "v1")).get(t)
	if got.ID != c.ID || got.Status != store.StatusOpen || got.ManagerID != "m1" || !got.CreatedAt.Equal(c.CreatedAt) {
		t.Errorf("open conversation = %+v, want %+v", got, c)
	}
	at := now().Add(time.Second)
	closed := ok(s.CloseConversation(ctx, c.ID, at)).get(t)
	if closed.Status != store.StatusClosed || closed.ClosedAt == nil || !closed.ClosedAt.Equal(at) {
		t.Errorf("closed = %+v", closed)
	}
	again := ok(s.CloseConversation(ctx, c.ID, at.Add(time.Hour))).get(t)
	if !again.ClosedAt.Equal(at) {
		t.Errorf("closing twice moved closed_at to %v", again.ClosedAt)
	}
	if _, err := s.OpenConversation(ctx, "O", "v1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("open conversation after close: err = %v, want ErrNotFound", err)
	}
	c2 := ok(s.CreateConversation(ctx, newConv("O", "v1", "m2"))).get(t)
	if got := ok(s.Conversation(ctx, c.ID)).get(t); got.Status != store.StatusClosed {
		t.Errorf("old conversation = %+v", got)
	}
	if got := ok(s.OpenConversation(ctx, "O", "v1")).get(t); got.ID != c2.ID {
		t.Errorf("open conversation = %s, want %s", got.ID, c2.ID)
	}
}

func testOneOpenConversation(t *testing.T, s store.Store) {
	ctx := context.Background()
	const n = 50
	var wg sync.WaitGroup
	var mu sync.Mutex
	var created []string
	conflicts := 0
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := s.CreateConversation(ctx, newConv("O", "v1", "m1"))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				created = append(created, c.ID)
			case errors.Is(err, store.ErrConflict):
				conflicts++
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if len(created) != 1 || conflicts != n-1 {
		t.Fatalf("%d concurrent creates: %d created, %d conflicts; want 1 and %d", n, len(created), conflicts, n-1)
	}
	if got := ok(s.OpenConversation(ctx, "O", "v1")).get(t); got.ID != created[0] {
		t.Errorf("open conversation = %s, want %s", got.ID, created[0])
	}
}

func testOpenCounts(t *testing.T, s store.Store) {
	ctx := context.Background()
	ok(s.CreateConversation(ctx, newConv("O", "v1", "m1"))).get(t)
	ok(s.CreateConversation(ctx, newConv("O", "v2", "m1"))).get(t)
	c := ok(s.CreateConversation(ctx, newConv("O", "v3", "m2"))).get(t)
	ok(s.CreateConversation(ctx, newPending("O", "v4"))).get(t)
	ok(s.CreateConversation(ctx, newPending("O", "v5"))).get(t)
	ok(s.CreateConversation(ctx, newConv("P", "v1", "m1"))).get(t)
	ok(s.CloseConversation(ctx, c.ID, now())).get(t)
	got := ok(s.OpenCounts(ctx, "O")).get(t)
	if len(got) != 1 || got["m1"] != 2 {
		t.Errorf("open counts = %v, want map[m1:2]", got)
	}
}

func testMessages(t *testing.T, s store.Store) {
	ctx := context.Background()
	c1 := ok(s.CreateConversation(ctx, newConv("O", "v1", "m1"))).get(t)
	m1, created, err := s.AppendMessage(ctx, newMsg(c1, "visitor", "v1", "hello", "c-1"))
	if err != nil || !created || m1.Seq != 1 {
		t.Fatalf("first append = %+v, %v, %v", m1, created, err)
	}
	m2, created, err := s.AppendMessage(ctx, newMsg(c1, "manager", "m1", "hi", ""))
	if err != nil || !created || m2.Seq != 2 {
		t.Fatalf("second append = %+v, %v, %v", m2, created, err)
	}
	// A retry with the same client id returns the stored message untouched.
	retry, created, err := s.AppendMessage(ctx, newMsg(c1, "visitor", "v1", "hello again", "c-1"))
	if err != nil || created || retry.ID != m1.ID || retry.Content != "hello" || retry.Seq != 1 {
		t.Fatalf("retry = %+v, %v, %v; want the first message", retry, created, err)
	}
	// The same client id from another sender is another message.
	other, created, err := s.AppendMessage(ctx, newMsg(c1, "manager", "m1", "x", "c-1"))
	if err != nil || !created || other.Seq != 3 {
		t.Fatalf("same client id, other sender = %+v, %v, %v", other, created, err)
	}
	ok(s.CloseConversation(ctx, c1.ID, now())).get(t)
	c2 := ok(s.CreateConversation(ctx, newConv("O", "v1", "m1"))).get(t)
	m4, _, err := s.AppendMessage(ctx, newMsg(c2, "visitor", "v1", "back", ""))
	if err != nil || m4.Seq != 4 {
		t.Fatalf("seq continues across a visitor's conversations: got %d, %v", m4.Seq, err)
	}
	cp := ok(s.CreateConversation(ctx, newConv("P", "v1", "m1"))).get(t)
	mp, _, err := s.AppendMessage(ctx, newMsg(cp, "visitor", "v1", "other org", ""))
	if err != nil || mp.Seq != 1 {
		t.Fatalf("seq of another org's visitor = %d, %v; want 1", mp.Seq, err)
	}
	got := ok(s.Message(ctx, m1.ID)).get(t)
	if got.ID != m1.ID || got.Seq != 1 || got.Sender != (store.Sender{Type: "visitor", ID: "v1"}) ||
		got.Content != "hello" || got.ClientMessageID != "c-1" || got.Read || got.ReadAt != nil ||
		!got.CreatedAt.Equal(m1.CreatedAt) || got.ConversationID != c1.ID || got.OrgID != "O" || got.VisitorID != "v1" {
		t.Errorf("stored message = %+v, want %+v", got, m1)
	}
}

func testIdempotentAppend(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := ok(s.CreateConversation(ctx, newConv("O", "v1", "m1"))).get(t)
	const n = 20
	var wg sync.WaitGroup
	ids := make([]string, n)
	createdCount := 0
	var mu sync.Mutex
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			m, created, err := s.AppendMessage(ctx, newMsg(c, "visitor", "v1", "once", "retry-me"))
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = m.ID
			if created {
				mu.Lock()
				createdCount++
				mu.Unlock()
			}
		}(i)
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("concurrent retries returned different messages: %v", ids)
		}
	}
	h := ok(s.History(ctx, "O", "v1", store.HistoryQuery{Limit: 100})).get(t)
	if createdCount != 1 || len(h) != 1 {
		t.Fatalf("%d concurrent retries: %d created, %d stored; want 1 and 1", n, createdCount, len(h))
	}
}

func seqs(ms []store.Message) []uint64 {
	out := make([]uint64, len(ms))
	for i, m := range ms {
		out[i] = m.Seq
	}
	return out
}

func testHistory(t *testing.T, s store.Store) {
	ctx := context.Background()
	c1 := ok(s.CreateConversation(ctx, newConv("O", "v1", "m1"))).get(t)
	for i := 1; i <= 3; i++ {
		ok3(s.AppendMessage(ctx, newMsg(c1, "visitor", "v1", fmt.Sprint("a", i), ""))).get(t)
	}
	ok(s.CloseConversation(ctx, c1.ID, now())).get(t)
	c2 := ok(s.CreateConversation(ctx, newConv("O", "v1", "m2"))).get(t)
	for i := 4; i <= 6; i++ {
		ok3(s.AppendMessage(ctx, newMsg(c2, "manager", "m2", fmt.Sprint("b", i), ""))).get(t)
	}
	// Noise: another visitor, and the same visitor id in another org.
	c3 := ok(s.CreateConversation(ctx, newConv("O", "v2", "m1"))).get(t)
	ok3(s.AppendMessage(ctx, newMsg(c3, "visitor", "v2", "noise", ""))).get(t)
	c4 := ok(s.CreateConversation(ctx, newConv("P", "v1", "m1"))).get(t)
	ok3(s.AppendMessage(ctx, newMsg(c4, "visitor", "v1", "noise", ""))).get(t)

	cases := []struct {
		q    store.HistoryQuery
		want []uint64
	}{
		{store.HistoryQuery{Limit: 100}, []uint64{6, 5, 4, 3, 2, 1}},
		{store.HistoryQuery{Limit: 2}, []uint64{6, 5}},
		{store.HistoryQuery{From: 4, Limit: 2}, []uint64{4, 3}},
		{store.HistoryQuery{From: 4, Limit: 100}, []uint64{4, 3, 2, 1}},
		{store.HistoryQuery{From: 1, Limit: 100}, []uint64{1}},
		{store.HistoryQuery{From: 99, Limit: 2}, []uint64{6, 5}},
		{store.HistoryQuery{Forward: true, After: 2, Limit: 100}, []uint64{3, 4, 5, 6}},
		{store.HistoryQuery{Forward: true, After: 2, Limit: 2}, []uint64{3, 4}},
		{store.HistoryQuery{Forward: true, After: 6, Limit: 100}, []uint64{}},
		{store.HistoryQuery{Forward: true, Limit: 2}, []uint64{1, 2}},
	}
	for _, tc := range cases {
		got := ok(s.History(ctx, "O", "v1", tc.q)).get(t)
		if fmt.Sprint(seqs(got)) != fmt.Sprint(tc.want) {
			t.Errorf("History(%+v) = %v, want %v", tc.q, seqs(got), tc.want)
		}
		for _, m := range got {
			if m.OrgID != "O" || m.VisitorID != "v1" {
				t.Errorf("History(%+v) returned %+v of another visitor", tc.q, m)
			}
		}
	}
	if got := ok(s.History(ctx, "O", "nobody", store.HistoryQuery{Limit: 10})).get(t); len(got) != 0 {
		t.Errorf("history of an unknown visitor = %v", got)
	}
}

// testCatchUpNeverSkips hammers the Seq guarantee: while visitor and manager post concurrently,
// a reader that only ever asks for "after the last Seq I saw" must see 1, 2, 3, … with no gap,
// and in the end every message.
func testCatchUpNeverSkips(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := ok(s.CreateConversation(ctx, newConv("O", "v1", "m1"))).get(t)
	const writers, perWriter = 4, 40
	var wg sync.WaitGroup
	defer wg.Wait() // writers finish before the test ends, even when it fails
	done := make(chan struct{})
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			senderType, senderID := "visitor", "v1"
			if w%2 == 1 {
				senderType, senderID = "manager", "m1"
			}
			for i := 0; i < perWriter; i++ {
				if _, _, err := s.AppendMessage(ctx, newMsg(c, senderType, senderID, fmt.Sprint(w, "-", i), "")); err != nil {
					t.Error(err)
					return
				}
			}
		}(w)
	}
	go func() { wg.Wait(); close(done) }()
	var last uint64
	seen := map[string]bool{}
	read := func() {
		got := ok(s.History(ctx, "O", "v1", store.HistoryQuery{Forward: true, After: last, Limit: 7})).get(t)
		if len(got) == 0 {
			// Nothing new yet: a pause, so that a reader spinning on an empty result does not
			// starve the writers of a store that shares the machine (FerretDB in the tests).
			time.Sleep(2 * time.Millisecond)
		}
		for _, m := range got {
			if m.Seq != last+1 {
				t.Fatalf("catch-up after %d returned seq %d: a message was skipped", last, m.Seq)
			}
			last = m.Seq
			seen[m.ID] = true
		}
	}
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true
		default:
		}
		read()
	}
	for before := -1; before != len(seen); {
		before = len(seen)
		read()
	}
	if len(seen) != writers*perWriter || last != writers*perWriter {
		t.Fatalf("reader saw %d messages up to seq %d, want %d", len(seen), last, writers*perWriter)
	}
}

func testMarkRead(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := ok(s.CreateConversation(ctx, newConv("O", "v1", "m1"))).get(t)
	m := ok3(s.AppendMessage(ctx, newMsg(c, "visitor", "v1", "hi", ""))).get(t)
	at := now()
	r := ok(s.MarkRead(ctx, m.ID, at)).get(t)
	if !r.Read || r.ReadAt == nil || !r.ReadAt.Equal(at) || r.Seq != m.Seq {
		t.Fatalf("marked = %+v", r)
	}
	r2 := ok(s.MarkRead(ctx, m.ID, at.Add(time.Hour))).get(t)
	if !r2.ReadAt.Equal(at) {
		t.Errorf("second mark moved read_at to %v", r2.ReadAt)
	}
	if got := ok(s.Message(ctx, m.ID)).get(t); !got.Read || !got.ReadAt.Equal(at) {
		t.Errorf("stored = %+v", got)
	}
}

func testNotifications(t *testing.T, s store.Store) {
	ctx := context.Background()
	n := store.Notification{ID: store.NewID(), OrgID: "O", VisitorID: "v1", Data: []byte(`{"title":"Sale","n":1}`), CreatedAt: now()}
	got := ok(s.AddNotification(ctx, n)).get(t)
	if got.ID != n.ID || string(got.Data) != string(n.Data) {
		t.Errorf("notification = %+v", got)
	}
}

func testNotFound(t *testing.T, s store.Store) {
	ctx := context.Background()
	checks := map[string]error{}
	_, checks["Org"] = s.Org(ctx, "nope")
	_, checks["Conversation"] = s.Conversation(ctx, "nope")
	_, checks["OpenConversation"] = s.OpenConversation(ctx, "O", "nope")
	_, checks["CloseConversation"] = s.CloseConversation(ctx, "nope", now())
	_, checks["Message"] = s.Message(ctx, "nope")
	_, checks["MarkRead"] = s.MarkRead(ctx, "nope", now())
	for name, err := range checks {
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s of an unknown id: err = %v, want ErrNotFound", name, err)
		}
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

func testOrgKeys(t *testing.T, s store.Store) {
	ctx := context.Background()
	if keys := ok(s.OrgKeys(ctx, "o1")).get(t); len(keys) != 0 {
		t.Fatalf("keys of a new org: %v", keys)
	}
	created := now()
	secret := []byte("0123456789abcdef0123456789abcdef")
	ok(s.PutOrgKey(ctx, store.OrgKey{OrgID: "o1", Kid: "k1", Alg: "HS256", Secret: secret, CreatedAt: created})).get(t)
	ok(s.PutOrgKey(ctx, store.OrgKey{OrgID: "o1", Kid: "k2", Alg: "RS256", PublicKey: "PEM", CreatedAt: created})).get(t)
	ok(s.PutOrgKey(ctx, store.OrgKey{OrgID: "o10", Kid: "k1", Alg: "HS256", Secret: secret, CreatedAt: created})).get(t)
	// Replacing a key keeps its creation time.
	got := ok(s.PutOrgKey(ctx, store.OrgKey{OrgID: "o1", Kid: "k1", Alg: "HS256", Secret: []byte("another-secret-another-secret-xx"), CreatedAt: created.Add(time.Hour)})).get(t)
	if !got.CreatedAt.Equal(created) || string(got.Secret) != "another-secret-another-secret-xx" {
		t.Fatalf("replaced key: %+v", got)
	}
	keys := ok(s.OrgKeys(ctx, "o1")).get(t)
	byKid := map[string]store.OrgKey{}
	for _, k := range keys {
		byKid[k.Kid] = k
	}
	if len(keys) != 2 || byKid["k1"].Alg != "HS256" || byKid["k2"].PublicKey != "PEM" || byKid["k2"].OrgID != "o1" {
		t.Fatalf("keys of o1 (not those of o10): %+v", keys)
	}
	if err := s.DeleteOrgKey(ctx, "o1", "k1"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteOrgKey(ctx, "o1", "k1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete twice: %v, want ErrNotFound", err)
	}
	if keys := ok(s.OrgKeys(ctx, "o1")).get(t); len(keys) != 1 || keys[0].Kid != "k2" {
		t.Fatalf("after delete: %+v", keys)
	}
	if keys := ok(s.OrgKeys(ctx, "o10")).get(t); len(keys) != 1 {
		t.Fatalf("o10 changed: %+v", keys)
	}
}
