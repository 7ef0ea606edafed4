package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/convead/chat-server/store"
)

func testOrgSettings(t *testing.T, s store.Store) {
	ctx := context.Background()
	at := now()
	want := store.Org{ID: "O", Name: "Shop", OfflineMode: store.OfflineQueue, ReassignAfter: store.Duration(15 * time.Minute),
		Retention: 30, CreatedAt: at, UpdatedAt: at}
	ok(s.PutOrg(ctx, want)).get(t)
	for _, o := range []store.Org{ok(s.Org(ctx, "O")).get(t), ok(s.Orgs(ctx)).get(t)[0]} {
		if o.OfflineMode != want.OfflineMode || o.ReassignAfter != want.ReassignAfter || o.Retention != want.Retention {
			t.Errorf("org = %+v: want offline mode %q, reassign after %v, retention %d", o, want.OfflineMode,
				time.Duration(want.ReassignAfter), want.Retention)
		}
	}
	// Settings can be turned off again.
	ok(s.PutOrg(ctx, store.Org{ID: "O", Name: "Shop", CreatedAt: at, UpdatedAt: at})).get(t)
	if o := ok(s.Org(ctx, "O")).get(t); o.OfflineMode != "" || o.ReassignAfter != 0 || o.Retention != 0 {
		t.Errorf("org after clearing the settings = %+v", o)
	}
}

func testPending(t *testing.T, s store.Store) {
	ctx := context.Background()
	p := ok(s.CreateConversation(ctx, newPending("O", "v1"))).get(t)
	if p.Status != store.StatusPending || p.ManagerID != "" || !p.Active() {
		t.Fatalf("pending = %+v", p)
	}
	for _, c := range []store.Conversation{newConv("O", "v1", "m1"), newPending("O", "v1")} {
		if _, err := s.CreateConversation(ctx, c); !errors.Is(err, store.ErrConflict) {
			t.Errorf("create %s beside a pending conversation: err = %v, want ErrConflict", c.Status, err)
		}
	}
	if got := ok(s.OpenConversation(ctx, "O", "v1")).get(t); got.ID != p.ID || got.Status != store.StatusPending {
		t.Errorf("open conversation = %+v, want the pending %s", got, p.ID)
	}
	closed := ok(s.CloseConversation(ctx, p.ID, now())).get(t)
	if closed.Status != store.StatusClosed || closed.ClosedAt == nil {
		t.Errorf("closed pending = %+v", closed)
	}
	if _, err := s.OpenConversation(ctx, "O", "v1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("open conversation after closing the pending one: err = %v, want ErrNotFound", err)
	}
	ok(s.CreateConversation(ctx, newPending("O", "v1"))).get(t)
	// Concurrent creates of pending conversations: still one.
	var wg sync.WaitGroup
	var mu sync.Mutex
	created := 0
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.CreateConversation(ctx, newPending("O", "v2"))
			if err != nil && !errors.Is(err, store.ErrConflict) {
				t.Error(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				created++
			}
		}()
	}
	wg.Wait()
	if created != 1 {
		t.Errorf("20 concurrent pending creates: %d created, want 1", created)
	}
}

func testAssign(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := ok(s.CreateConversation(ctx, newPending("O", "v1"))).get(t)
	base := now().Add(time.Minute)
	steps := []struct {
		name, from, to string
		wantErr        error
		wantStatus     string
		wantPrevious   []string
	}{
		{"pending to a manager", "", "m1", nil, store.StatusOpen, nil},
		{"to another manager", "m1", "m2", nil, store.StatusOpen, []string{"m1"}},
		{"stale from", "m1", "m3", store.ErrConflict, "", nil},
		{"from pending although assigned", "", "m3", store.ErrConflict, "", nil},
		{"back to a previous manager", "m2", "m1", nil, store.StatusOpen, []string{"m2"}},
		{"to nobody", "m1", "", nil, store.StatusPending, []string{"m2", "m1"}},
		{"pending again to a previous manager", "", "m2", nil, store.StatusOpen, []string{"m1"}},
	}
	state := ok(s.Conversation(ctx, c.ID)).get(t)
	for i, st := range steps {
		at := base.Add(time.Duration(i) * time.Second)
		got, err := s.AssignConversation(ctx, c.ID, st.from, st.to, at)
		if st.wantErr != nil {
			if !errors.Is(err, st.wantErr) {
				t.Fatalf("%s: err = %v, want %v", st.name, err, st.wantErr)
			}
			if stored := ok(s.Conversation(ctx, c.ID)).get(t); fmt.Sprint(stored) != fmt.Sprint(state) {
				t.Fatalf("%s: a refused assignment changed %+v into %+v", st.name, state, stored)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		stored := ok(s.Conversation(ctx, c.ID)).get(t)
		for _, conv := range []store.Conversation{got, stored} {
			if conv.ManagerID != st.to || conv.Status != st.wantStatus || !slices.Equal(conv.PreviousManagerIDs, st.wantPrevious) ||
				!conv.UpdatedAt.Equal(at) || !conv.CreatedAt.Equal(c.CreatedAt) {
				t.Fatalf("%s: conversation = %+v; want manager %q, status %s, previous %v, updated at %v", st.name, conv,
					st.to, st.wantStatus, st.wantPrevious, at)
			}
		}
		state = stored
		if st.to != "" {
			m := ok(s.Managers(ctx, "O", []string{st.to})).get(t)[st.to]
			if m.LastAssignedAt == nil || !m.LastAssignedAt.Equal(at) {
				t.Errorf("%s: %s last assigned at %v, want %v", st.name, st.to, m.LastAssignedAt, at)
			}
		}
		// The listings follow: the conversation is under its new manager and status only.
		for _, q := range []store.ConversationQuery{{ManagerID: "m1"}, {ManagerID: "m2"}, {Status: store.StatusOpen},
			{Status: store.StatusPending}, {ManagerID: "m1", Status: store.StatusOpen}, {ManagerID: "m2", Status: store.StatusOpen}} {
			q.OrgID, q.Limit = "O", 10
			items, _ := list(t, s, q)
			want := (q.ManagerID == "" || q.ManagerID == st.to) && (q.Status == "" || q.Status == st.wantStatus)
			if (len(items) == 1) != want {
				t.Errorf("%s: ListConversations(%+v) = %d items, want it listed: %v", st.name, q, len(items), want)
			}
		}
		if counts := ok(s.OpenCounts(ctx, "O")).get(t); st.to != "" && counts[st.to] != 1 || st.to == "" && len(counts) != 0 {
			t.Errorf("%s: open counts = %v", st.name, counts)
		}
	}
	ok(s.CloseConversation(ctx, c.ID, now())).get(t)
	if _, err := s.AssignConversation(ctx, c.ID, "m2", "m3", now()); !errors.Is(err, store.ErrConflict) {
		t.Errorf("assign a closed conversation: err = %v, want ErrConflict", err)
	}
	if _, err := s.AssignConversation(ctx, "nope", "", "m1", now()); !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrConflict) {
		t.Errorf("assign an unknown conversation: err = %v, want ErrNotFound or ErrConflict", err)
	}
}

func testAssignConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := ok(s.CreateConversation(ctx, newConv("O", "v1", "m0"))).get(t)
	const n = 10
	var wg sync.WaitGroup
	var mu sync.Mutex
	var winners []string
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(to string) {
			defer wg.Done()
			_, err := s.AssignConversation(ctx, c.ID, "m0", to, now())
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				winners = append(winners, to)
			case !errors.Is(err, store.ErrConflict):
				t.Error(err)
			}
		}(fmt.Sprint("m", i+1))
	}
	wg.Wait()
	if len(winners) != 1 {
		t.Fatalf("%d concurrent assignments from m0: winners %v, want exactly one", n, winners)
	}
	got := ok(s.Conversation(ctx, c.ID)).get(t)
	if got.ManagerID != winners[0] || !slices.Equal(got.PreviousManagerIDs, []string{"m0"}) {
		t.Errorf("conversation = %+v, want manager %s after m0", got, winners[0])
	}
}

// list returns one page of q, or fails the test.
func list(t *testing.T, s store.Store, q store.ConversationQuery) ([]store.ConversationItem, string) {
	t.Helper()
	items, next, err := s.ListConversations(context.Background(), q)
	if err != nil {
		t.Fatalf("ListConversations(%+v): %v", q, err)
	}
	return items, next
}

// listAll pages through q with pages of q.Limit and returns the ids in order.
func listAll(t *testing.T, s store.Store, q store.ConversationQuery) []string {
	t.Helper()
	var ids []string
	for page := 0; ; page++ {
		if page > 100 {
			t.Fatalf("ListConversations(%+v): no end after 100 pages", q)
		}
		items, next := list(t, s, q)
		if len(items) > q.Limit {
			t.Fatalf("ListConversations(%+v): %d items, over the limit", q, len(items))
		}
		for _, it := range items {
			ids = append(ids, it.ID)
		}
		if next == "" {
			return ids
		}
		if len(items) != q.Limit {
			t.Fatalf("ListConversations(%+v): a short page of %d with a next cursor", q, len(items))
		}
		q.Cursor = next
	}
}

func testListConversations(t *testing.T, s store.Store) {
	ctx := context.Background()
	base := now().Add(-time.Hour)
	var all []store.Conversation
	n := 0
	create := func(org, visitor, manager, status string, sameTimeAsPrevious bool) {
		t.Helper()
		if !sameTimeAsPrevious {
			n++
		}
		c := newConv(org, visitor, manager)
		if status == store.StatusPending {
			c = newPending(org, visitor)
		}
		c.CreatedAt = base.Add(time.Duration(n) * time.Second)
		c.UpdatedAt = c.CreatedAt
		c = ok(s.CreateConversation(ctx, c)).get(t)
		if status == store.StatusClosed {
			c = ok(s.CloseConversation(ctx, c.ID, c.CreatedAt.Add(time.Millisecond))).get(t)
		}
		if org == "O" {
			all = append(all, c)
		}
	}
	create("O", "v1", "m1", store.StatusClosed, false)
	create("O", "v1", "m2", store.StatusClosed, false)
	create("O", "v1", "m1", store.StatusOpen, false)
	create("O", "v2", "m1", store.StatusClosed, false)
	create("O", "v3", "m2", store.StatusClosed, true) // same CreatedAt: the id breaks the tie
	create("O", "v4", "m1", store.StatusClosed, true)
	create("O", "v2", "", store.StatusPending, false)
	create("O", "v3", "m2", store.StatusOpen, false)
	create("O", "v4", "m1", store.StatusOpen, false)
	create("O", "v5", "m2", store.StatusClosed, false)
	create("O", "v5", "", store.StatusPending, false)
	create("O", "v6", "m1", store.StatusClosed, false)
	// Noise in another organisation, and an organisation whose id extends O's.
	create("P", "v1", "m1", store.StatusOpen, false)
	create("P", "v2", "m1", store.StatusClosed, false)
	create("OO", "v1", "m1", store.StatusOpen, false)

	// A message in one conversation: items carry their activity.
	m := ok3(s.AppendMessage(ctx, newMsg(all[2], "visitor", "v1", "hi", ""))).get(t)
	items, _ := list(t, s, store.ConversationQuery{OrgID: "O", VisitorID: "v1", Status: store.StatusOpen, Limit: 5})
	if len(items) != 1 || items[0].Activity.LastMessage == nil || items[0].Activity.LastMessage.ID != m.ID || items[0].Activity.UnreadByManager != 1 {
		t.Errorf("open conversation of v1 with its activity = %+v", items)
	}

	sorted := slices.Clone(all)
	slices.SortFunc(sorted, func(a, b store.Conversation) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	for _, status := range []string{"", store.StatusOpen, store.StatusPending, store.StatusClosed} {
		for _, manager := range []string{"", "m1", "m2", "m9"} {
			for _, visitor := range []string{"", "v1", "v3", "v9"} {
				for _, oldest := range []bool{false, true} {
					for _, limit := range []int{2, 100} {
						q := store.ConversationQuery{OrgID: "O", Status: status, ManagerID: manager, VisitorID: visitor, Oldest: oldest, Limit: limit}
						var want []string
						for _, c := range sorted {
							if (status == "" || c.Status == status) && (manager == "" || c.ManagerID == manager) && (visitor == "" || c.VisitorID == visitor) {
								want = append(want, c.ID)
							}
						}
						if !oldest {
							slices.Reverse(want)
						}
						if got := listAll(t, s, q); !slices.Equal(got, want) {
							t.Errorf("ListConversations(%+v) = %v, want %v", q, got, want)
						}
					}
				}
			}
		}
	}
	for _, cursor := range []string{"!!!", "AA", store.EncodeCursor(store.Conversation{ID: strings.Repeat("x", 100)})} {
		_, _, err := s.ListConversations(ctx, store.ConversationQuery{OrgID: "O", Limit: 2, Cursor: cursor})
		if !errors.Is(err, store.ErrBadCursor) {
			t.Errorf("cursor %q: err = %v, want ErrBadCursor", cursor, err)
		}
	}
	if items, next := list(t, s, store.ConversationQuery{OrgID: "nobody", Limit: 2}); len(items) != 0 || next != "" {
		t.Errorf("conversations of an unknown org: %v, %q", items, next)
	}
}

func testListStable(t *testing.T, s store.Store) {
	ctx := context.Background()
	base := now().Add(-time.Hour)
	var ids []string
	add := func(i int) {
		c := newConv("O", fmt.Sprint("v", i), "m1")
		c.CreatedAt = base.Add(time.Duration(i) * time.Second)
		ids = append(ids, ok(s.CreateConversation(ctx, c)).get(t).ID)
	}
	for i := 0; i < 5; i++ {
		add(i)
	}
	for _, oldest := range []bool{false, true} {
		q := store.ConversationQuery{OrgID: "O", ManagerID: "m1", Status: store.StatusOpen, Oldest: oldest, Limit: 2}
		before := slices.Clone(ids)
		var got []string
		for page := 0; page < 10; page++ {
			items, next := list(t, s, q)
			for _, it := range items {
				got = append(got, it.ID)
			}
			add(len(ids)) // newer than everything listed
			if next == "" {
				break
			}
			q.Cursor = next
		}
		want := slices.Clone(before)
		if !oldest {
			slices.Reverse(want)
		} else {
			// Oldest first, the conversations added while paging come at the end.
			want = ids[:len(got)]
		}
		if !slices.Equal(got, want) {
			t.Errorf("oldest %v: pages while adding = %v, want %v", oldest, got, want)
		}
	}
}

func testActivity(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := ok(s.CreateConversation(ctx, newConv("O", "v1", "m1"))).get(t)
	other := ok(s.CreateConversation(ctx, newConv("O", "v2", "m1"))).get(t)
	if it := ok(s.ConversationItem(ctx, c.ID)).get(t); it.ID != c.ID || it.ManagerID != "m1" || it.Activity != (store.Activity{}) {
		t.Fatalf("item of a conversation without messages = %+v", it)
	}
	v1 := ok3(s.AppendMessage(ctx, newMsg(c, "visitor", "v1", "one", "c-1"))).get(t)
	v2 := ok3(s.AppendMessage(ctx, newMsg(c, "visitor", "v1", "two", ""))).get(t)
	m1 := ok3(s.AppendMessage(ctx, newMsg(c, "manager", "m1", "three", "c-1"))).get(t)
	ok3(s.AppendMessage(ctx, newMsg(other, "visitor", "v2", "elsewhere", ""))).get(t)
	// Retries with a known client id change nothing.
	ok3(s.AppendMessage(ctx, newMsg(c, "visitor", "v1", "one again", "c-1"))).get(t)
	ok3(s.AppendMessage(ctx, newMsg(c, "manager", "m1", "three again", "c-1"))).get(t)
	check := func(step string, last store.Message, byVisitor, byManager int, lastRead bool) {
		t.Helper()
		it := ok(s.ConversationItem(ctx, c.ID)).get(t)
		items, _ := list(t, s, store.ConversationQuery{OrgID: "O", VisitorID: "v1", Limit: 1})
		for _, got := range []store.ConversationItem{it, items[0]} {
			a := got.Activity
			if got.ID != c.ID || a.LastMessage == nil || a.LastMessage.ID != last.ID || a.LastMessage.Content != last.Content ||
				a.LastMessage.Seq != last.Seq || a.LastMessage.Sender != last.Sender || a.LastMessage.Read != lastRead ||
				a.UnreadByVisitor != byVisitor || a.UnreadByManager != byManager {
				t.Errorf("%s: activity = %+v (last %+v); want last %s (read %v), unread by visitor %d, by manager %d",
					step, a, a.LastMessage, last.ID, lastRead, byVisitor, byManager)
			}
		}
	}
	check("after posting", m1, 1, 2, false)
	ok(s.MarkRead(ctx, v1.ID, now())).get(t)
	check("visitor message read", m1, 1, 1, false)
	ok(s.MarkRead(ctx, v1.ID, now())).get(t)
	check("read twice", m1, 1, 1, false)
	ok(s.MarkRead(ctx, m1.ID, now())).get(t)
	check("last message read", m1, 0, 1, true)
	ok(s.MarkRead(ctx, v2.ID, now())).get(t)
	ok(s.MarkRead(ctx, v2.ID, now())).get(t)
	check("all read", m1, 0, 0, true)
	if a := ok(s.ConversationItem(ctx, other.ID)).get(t).Activity; a.UnreadByManager != 1 || a.LastMessage == nil || a.LastMessage.Content != "elsewhere" {
		t.Errorf("activity of the other conversation = %+v", a)
	}
	if _, err := s.ConversationItem(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("item of an unknown conversation: err = %v, want ErrNotFound", err)
	}
}

func testRegisteredManagers(t *testing.T, s store.Store) {
	ctx := context.Background()
	ok(s.PutManager(ctx, store.Manager{OrgID: "O", ID: "m2", Name: "Bob", Capacity: 3, UpdatedAt: now()})).get(t)
	ok(s.PutManager(ctx, store.Manager{OrgID: "O", ID: "m1", Name: "Ann", UpdatedAt: now()})).get(t)
	ok(s.PutManager(ctx, store.Manager{OrgID: "P", ID: "m3", Name: "Eve", UpdatedAt: now()})).get(t)
	c := ok(s.CreateConversation(ctx, newConv("O", "v1", "m4"))).get(t) // m4 is known, not registered
	ms := ok(s.RegisteredManagers(ctx, "O")).get(t)
	if len(ms) != 2 || ms[0].ID != "m1" || ms[1].ID != "m2" || ms[1].Name != "Bob" || ms[1].Capacity != 3 || !ms[1].Registered || ms[0].OrgID != "O" {
		t.Fatalf("registered managers of O = %+v, want m1 and m2", ms)
	}
	if err := s.DeleteManager(ctx, "O", "m1"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"m1", "m4", "m9"} {
		if err := s.DeleteManager(ctx, "O", id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("delete manager %s, not registered: err = %v, want ErrNotFound", id, err)
		}
	}
	if err := s.DeleteManager(ctx, "O", "m3"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("delete a manager of another org: err = %v, want ErrNotFound", err)
	}
	if ms := ok(s.RegisteredManagers(ctx, "O")).get(t); len(ms) != 1 || ms[0].ID != "m2" {
		t.Errorf("after deleting m1: %+v", ms)
	}
	if ms := ok(s.Managers(ctx, "O", []string{"m1", "m4"})).get(t); len(ms) != 1 || ms["m4"].LastAssignedAt == nil {
		t.Errorf("managers m1, m4 after deleting m1 = %+v, want m4 only", ms)
	}
	if got := ok(s.Conversation(ctx, c.ID)).get(t); got.ManagerID != "m4" {
		t.Errorf("conversation after deleting a manager = %+v", got)
	}
	if ms := ok(s.RegisteredManagers(ctx, "P")).get(t); len(ms) != 1 || ms[0].ID != "m3" {
		t.Errorf("registered managers of P = %+v", ms)
	}
}

func testDeleteVisitor(t *testing.T, s store.Store) {
	ctx := context.Background()
	old := ok(s.CreateConversation(ctx, newConv("O", "v1", "m1"))).get(t)
	oldMsg := ok3(s.AppendMessage(ctx, newMsg(old, "visitor", "v1", "old", "c-1"))).get(t)
	ok(s.CloseConversation(ctx, old.ID, now())).get(t)
	cur := ok(s.CreateConversation(ctx, newConv("O", "v1", "m1"))).get(t)
	curMsg := ok3(s.AppendMessage(ctx, newMsg(cur, "manager", "m1", "new", "c-2"))).get(t)
	ok(s.AddNotification(ctx, store.Notification{ID: store.NewID(), OrgID: "O", VisitorID: "v1", Data: []byte(`{}`), CreatedAt: now()})).get(t)
	// Others keep everything: another visitor, the same visitor id in another org, a visitor
	// whose id extends v1's.
	var kept []store.Conversation
	for _, ov := range [][2]string{{"O", "v2"}, {"P", "v1"}, {"O", "v10"}} {
		c := ok(s.CreateConversation(ctx, newConv(ov[0], ov[1], "m1"))).get(t)
		ok3(s.AppendMessage(ctx, newMsg(c, "visitor", ov[1], "stay", "c-1"))).get(t)
		ok(s.AddNotification(ctx, store.Notification{ID: store.NewID(), OrgID: ov[0], VisitorID: ov[1], Data: []byte(`{}`), CreatedAt: now()})).get(t)
		kept = append(kept, c)
	}

	for i := 0; i < 2; i++ { // the second time there is nothing left, which is no error
		if err := s.DeleteVisitor(ctx, "O", "v1"); err != nil {
			t.Fatalf("delete visitor (%d): %v", i+1, err)
		}
	}
	for _, id := range []string{old.ID, cur.ID} {
		if _, err := s.Conversation(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("conversation %s after delete: err = %v", id, err)
		}
		if _, err := s.ConversationItem(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("conversation item %s after delete: err = %v", id, err)
		}
	}
	for _, id := range []string{oldMsg.ID, curMsg.ID} {
		if _, err := s.Message(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("message %s after delete: err = %v", id, err)
		}
	}
	if _, err := s.OpenConversation(ctx, "O", "v1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("open conversation after delete: err = %v", err)
	}
	if h := ok(s.History(ctx, "O", "v1", store.HistoryQuery{Limit: 10})).get(t); len(h) != 0 {
		t.Errorf("history after delete: %v", h)
	}
	for _, q := range []store.ConversationQuery{{}, {VisitorID: "v1"}, {ManagerID: "m1"}, {Status: store.StatusClosed}, {ManagerID: "m1", Status: store.StatusClosed}} {
		q.OrgID, q.Limit = "O", 100
		for _, id := range listAll(t, s, q) {
			if id == old.ID || id == cur.ID {
				t.Errorf("ListConversations(%+v) still lists %s", q, id)
			}
		}
	}
	if ids := listAll(t, s, store.ConversationQuery{OrgID: "O", Limit: 100}); len(ids) != 2 {
		t.Errorf("conversations of O after delete = %v, want those of v2 and v10", ids)
	}
	// The visitor starts afresh: a new numbering, and its old client ids are free.
	c := ok(s.CreateConversation(ctx, newConv("O", "v1", "m1"))).get(t)
	m, created, err := s.AppendMessage(ctx, newMsg(c, "visitor", "v1", "again", "c-1"))
	if err != nil || !created || m.Seq != 1 {
		t.Errorf("first message after delete = %+v, created %v, %v; want a new message with seq 1", m, created, err)
	}
	for _, k := range kept {
		if _, err := s.Conversation(ctx, k.ID); err != nil {
			t.Errorf("conversation of %s/%s: %v", k.OrgID, k.VisitorID, err)
		}
		if h := ok(s.History(ctx, k.OrgID, k.VisitorID, store.HistoryQuery{Limit: 10})).get(t); len(h) != 1 {
			t.Errorf("history of %s/%s = %v", k.OrgID, k.VisitorID, h)
		}
	}
	if err := s.DeleteVisitor(ctx, "O", "nobody"); err != nil {
		t.Errorf("delete a visitor with nothing stored: %v", err)
	}
}

func testDeleteClosedBefore(t *testing.T, s store.Store) {
	ctx := context.Background()
	base := now().Add(-time.Hour)
	var closed []store.Conversation
	var msgs []store.Message
	for i := 0; i < 5; i++ {
		c := ok(s.CreateConversation(ctx, newConv("O", "v1", "m1"))).get(t)
		msgs = append(msgs, ok3(s.AppendMessage(ctx, newMsg(c, "visitor", "v1", fmt.Sprint("closed ", i), fmt.Sprint("c-", i)))).get(t))
		closed = append(closed, ok(s.CloseConversation(ctx, c.ID, base.Add(time.Duration(i)*time.Minute))).get(t))
	}
	open := ok(s.CreateConversation(ctx, newConv("O", "v1", "m1"))).get(t)
	openMsg := ok3(s.AppendMessage(ctx, newMsg(open, "visitor", "v1", "open", ""))).get(t)
	pending := ok(s.CreateConversation(ctx, newPending("O", "v2"))).get(t)
	p := ok(s.CreateConversation(ctx, newConv("P", "v1", "m1"))).get(t)
	pMsg := ok3(s.AppendMessage(ctx, newMsg(p, "visitor", "v1", "other org", ""))).get(t)
	ok(s.CloseConversation(ctx, p.ID, base)).get(t)

	before := base.Add(3 * time.Minute) // closed[3] closed exactly then: not before
	for _, want := range []int{2, 1, 0} {
		if n := ok(s.DeleteClosedBefore(ctx, "O", before, 2)).get(t); n != want {
			t.Fatalf("DeleteClosedBefore = %d, want %d", n, want)
		}
	}
	for i, c := range closed {
		_, cerr := s.Conversation(ctx, c.ID)
		_, merr := s.Message(ctx, msgs[i].ID)
		if i < 3 && (!errors.Is(cerr, store.ErrNotFound) || !errors.Is(merr, store.ErrNotFound)) {
			t.Errorf("conversation closed at +%dm: %v, its message: %v; want both gone", i, cerr, merr)
		}
		if i >= 3 && (cerr != nil || merr != nil) {
			t.Errorf("conversation closed at +%dm: %v, its message: %v; want both kept", i, cerr, merr)
		}
	}
	for _, id := range []string{open.ID, pending.ID, p.ID} {
		if _, err := s.Conversation(ctx, id); err != nil {
			t.Errorf("conversation %s: %v, want kept", id, err)
		}
	}
	for _, id := range []string{openMsg.ID, pMsg.ID} {
		if _, err := s.Message(ctx, id); err != nil {
			t.Errorf("message %s: %v, want kept", id, err)
		}
	}
	h := ok(s.History(ctx, "O", "v1", store.HistoryQuery{Limit: 100})).get(t)
	if fmt.Sprint(seqs(h)) != "[6 5 4]" {
		t.Errorf("history after the sweep: seqs %v, want [6 5 4]", seqs(h))
	}
	if ids := listAll(t, s, store.ConversationQuery{OrgID: "O", Status: store.StatusClosed, Limit: 10}); !slices.Equal(ids, []string{closed[4].ID, closed[3].ID}) {
		t.Errorf("closed conversations after the sweep = %v", ids)
	}
	// A deleted message's client id is free again.
	if _, created, err := s.AppendMessage(ctx, newMsg(open, "visitor", "v1", "reused", "c-0")); err != nil || !created {
		t.Errorf("reuse the client id of a deleted message: created %v, %v", created, err)
	}
	if n := ok(s.DeleteClosedBefore(ctx, "O", now().Add(time.Hour), 10)).get(t); n != 2 {
		t.Errorf("sweep everything closed: %d, want 2", n)
	}
}

// testSeqAfterSweep: a retention sweep that takes a visitor's newest messages does not restart
// its numbering, also when a later sweep takes older ones: a client that saw Seq n must find
// the next message after n.
func testSeqAfterSweep(t *testing.T, s store.Store) {
	ctx := context.Background()
	base := now().Add(-time.Hour)
	a := ok(s.CreateConversation(ctx, newConv("O", "v1", "m1"))).get(t)
	ok3(s.AppendMessage(ctx, newMsg(a, "visitor", "v1", "1", ""))).get(t)
	ok(s.CloseConversation(ctx, a.ID, base.Add(2*time.Minute))).get(t)
	b := ok(s.CreateConversation(ctx, newConv("O", "v1", "m1"))).get(t)
	ok3(s.AppendMessage(ctx, newMsg(b, "visitor", "v1", "2", ""))).get(t)
	ok(s.CloseConversation(ctx, b.ID, base.Add(time.Minute))).get(t) // swept first
	for _, want := range []int{1, 1} {
		if n := ok(s.DeleteClosedBefore(ctx, "O", base.Add(time.Hour), 1)).get(t); n != want {
			t.Fatalf("DeleteClosedBefore = %d, want %d", n, want)
		}
	}
	c := ok(s.CreateConversation(ctx, newConv("O", "v1", "m1"))).get(t)
	if m := ok3(s.AppendMessage(ctx, newMsg(c, "visitor", "v1", "3", ""))).get(t); m.Seq != 3 {
		t.Errorf("seq after the sweeps = %d, want 3", m.Seq)
	}
	if h := ok(s.History(ctx, "O", "v1", store.HistoryQuery{Forward: true, After: 2, Limit: 10})).get(t); len(h) != 1 || h[0].Seq != 3 {
		t.Errorf("catch-up after 2 = seqs %v, want [3]", seqs(h))
	}
}

// testReadAfterWrite: a conversation read after a change shows the change, however often it
// was read before (a store may keep what it read).
func testReadAfterWrite(t *testing.T, s store.Store) {
	ctx := context.Background()
	read := func(id string) (store.Conversation, error) {
		for range 2 {
			if _, err := s.Conversation(ctx, id); err != nil {
				return store.Conversation{}, err
			}
		}
		return s.Conversation(ctx, id)
	}
	c := ok(s.CreateConversation(ctx, newPending("O", "v1"))).get(t)
	ok(read(c.ID)).get(t)
	ok(s.AssignConversation(ctx, c.ID, "", "m1", now())).get(t)
	if got := ok(read(c.ID)).get(t); got.ManagerID != "m1" || got.Status != store.StatusOpen {
		t.Errorf("after assigning to m1: %+v", got)
	}
	ok(s.AssignConversation(ctx, c.ID, "m1", "m2", now())).get(t)
	got := ok(read(c.ID)).get(t)
	if got.ManagerID != "m2" || !slices.Contains(got.PreviousManagerIDs, "m1") {
		t.Errorf("after transfer to m2: %+v", got)
	}
	got.PreviousManagerIDs[0] = "changed by the caller"
	if again := ok(read(c.ID)).get(t); slices.Contains(again.PreviousManagerIDs, "changed by the caller") {
		t.Errorf("a caller's change of a read conversation is seen by the next read: %+v", again)
	}
	ok(s.CloseConversation(ctx, c.ID, now().Add(-time.Hour))).get(t)
	if got := ok(read(c.ID)).get(t); got.Status != store.StatusClosed || got.ClosedAt == nil {
		t.Errorf("after close: %+v", got)
	}
	ok(s.DeleteClosedBefore(ctx, "O", now(), 10)).get(t)
	if _, err := read(c.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after the retention sweep: err = %v, want ErrNotFound", err)
	}
	d := ok(s.CreateConversation(ctx, newConv("O", "v2", "m1"))).get(t)
	ok(read(d.ID)).get(t)
	if err := s.DeleteVisitor(ctx, "O", "v2"); err != nil {
		t.Fatal(err)
	}
	if _, err := read(d.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after deleting the visitor: err = %v, want ErrNotFound", err)
	}
}
