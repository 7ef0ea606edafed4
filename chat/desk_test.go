package chat

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/convead/chat-server/store"
)

func (f *fixture) queue(t *testing.T, in OrgSettings) {
	t.Helper()
	if in.Name == "" {
		in.Name = "Shop"
	}
	if _, err := f.svc.PutOrg(context.Background(), service(), "O", in); err != nil {
		t.Fatal(err)
	}
}

func ids(p Page) []string {
	var out []string
	for _, it := range p.Items {
		out = append(out, it.Conversation.VisitorID)
	}
	return out
}

func TestListConversationsDefaultsPerRole(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.duty.Join("O", "m1", "h1")
	// Creation times are in milliseconds, and two conversations of one millisecond sort by
	// the random part of their ids: the waits keep "newest first" one order.
	a := f.open(t, visitor("va"), "va")
	f.duty.Join("O", "m2", "h2")
	f.duty.Leave("O", "m1", "h1")
	time.Sleep(2 * time.Millisecond)
	f.open(t, visitor("vb"), "vb") // m2
	time.Sleep(2 * time.Millisecond)
	closed := f.open(t, visitor("vc"), "vc")
	if _, err := f.svc.CloseConversation(ctx, service(), closed.ID); err != nil {
		t.Fatal(err)
	}
	f.post(t, visitor("va"), a.ID, "hello")
	f.post(t, visitor("va"), a.ID, "again")
	reply := f.post(t, manager("m1"), a.ID, "hi")

	cases := []struct {
		name  string
		id    func() Page
		want  []string
		err   string
		query ListQuery
	}{
		{name: "manager: own open", query: ListQuery{}, want: []string{"va"}},
		{name: "manager: closed of the org with a manager filter", query: ListQuery{Status: "closed", ManagerID: "m2"}, want: []string{"vc"}},
		{name: "manager: a visitor", query: ListQuery{VisitorID: "vb"}, want: []string{"vb"}},
		{name: "bad status", query: ListQuery{Status: "gone"}, err: "invalid_status"},
		{name: "bad limit", query: ListQuery{Limit: MaxListLimit + 1}, err: "invalid_limit"},
		{name: "bad cursor", query: ListQuery{Cursor: "!!"}, err: "invalid_cursor"},
		{name: "bad manager id", query: ListQuery{ManagerID: "a/b"}, err: "invalid_manager_id"},
	}
	for _, tc := range cases {
		p, err := f.svc.ListConversations(ctx, manager("m1"), tc.query)
		if code(err) != tc.err {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.err)
			continue
		}
		if tc.err == "" && !slices.Equal(ids(p), tc.want) {
			t.Errorf("%s: visitors %v, want %v", tc.name, ids(p), tc.want)
		}
	}
	all, err := f.svc.ListConversations(ctx, service(), ListQuery{})
	if err != nil || !slices.Equal(ids(all), []string{"vc", "vb", "va"}) {
		t.Errorf("service: %v, %v; want every conversation, newest first", ids(all), err)
	}
	own, err := f.svc.ListConversations(ctx, visitor("vb"), ListQuery{})
	if err != nil || !slices.Equal(ids(own), []string{"vb"}) {
		t.Errorf("visitor: %v, %v; want only its own", ids(own), err)
	}
	if _, err := f.svc.ListConversations(ctx, visitor("vb"), ListQuery{VisitorID: "va"}); code(err) != "forbidden" {
		t.Errorf("a visitor listing another: %v", err)
	}
	foreign, err := f.svc.ListConversations(ctx, managerOf("P", "m1"), ListQuery{VisitorID: "va"})
	if err != nil || len(foreign.Items) != 0 {
		t.Errorf("another organisation's manager sees %v, %v", ids(foreign), err)
	}

	mine, _ := f.svc.ListConversations(ctx, manager("m1"), ListQuery{})
	if it := mine.Items[0]; it.UnreadCount != 2 || it.LastMessage == nil || it.LastMessage.ID != reply.ID {
		t.Errorf("manager's item: unread %d, last %+v; want 2 unread and its reply last", it.UnreadCount, it.LastMessage)
	}
	v, err := f.svc.ConversationItem(ctx, visitor("va"), a.ID)
	if err != nil || v.UnreadCount != 1 {
		t.Errorf("visitor's item: %+v, %v; want 1 unread", v, err)
	}
	if _, err := f.svc.MarkRead(ctx, visitor("va"), a.ID, reply.ID); err != nil {
		t.Fatal(err)
	}
	if v, _ = f.svc.ConversationItem(ctx, visitor("va"), a.ID); v.UnreadCount != 0 {
		t.Errorf("after mark_read the visitor has %d unread", v.UnreadCount)
	}
	if _, err := f.svc.ConversationItem(ctx, visitor("vb"), a.ID); code(err) != "forbidden" {
		t.Errorf("another visitor's item: %v", err)
	}
	if _, err := f.svc.ConversationItem(ctx, managerOf("P", "m1"), a.ID); code(err) != "conversation_not_found" {
		t.Errorf("another organisation's item: %v", err)
	}
}

func TestTransfer(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.duty.Join("O", "m1", "h1")
	c := f.open(t, visitor("v1"), "v1")
	f.duty.Join("O", "m2", "h2")
	if _, err := f.svc.PutManager(ctx, service(), "O", "m3", "Full", 1); err != nil {
		t.Fatal(err)
	}
	f.duty.Join("O", "m3", "h3")
	f.duty.Leave("O", "m1", "h1") // the next opening goes to m3 or m2, not m1
	other := f.open(t, visitor("v2"), "v2")
	if _, err := f.svc.Transfer(ctx, service(), other.ID, "m3"); err != nil { // m3 is full now
		t.Fatal(err)
	}

	cases := []struct {
		name string
		by   func() error
		want string
	}{
		{"another manager", func() error { _, err := f.svc.Transfer(ctx, manager("m2"), c.ID, "m2"); return err }, "forbidden"},
		{"a visitor", func() error { _, err := f.svc.Transfer(ctx, visitor("v1"), c.ID, "m2"); return err }, "forbidden"},
		{"an unknown manager", func() error { _, err := f.svc.Transfer(ctx, manager("m1"), c.ID, "ghost"); return err }, "manager_not_found"},
		{"a bad id", func() error { _, err := f.svc.Transfer(ctx, manager("m1"), c.ID, "a b"); return err }, "invalid_manager_id"},
		{"a full manager", func() error { _, err := f.svc.Transfer(ctx, manager("m1"), c.ID, "m3"); return err }, "manager_full"},
	}
	for _, tc := range cases {
		if err := tc.by(); code(err) != tc.want {
			t.Errorf("transfer by %s: %v, want %q", tc.name, err, tc.want)
		}
	}
	moved, err := f.svc.Transfer(ctx, manager("m1"), c.ID, "m2")
	if err != nil || moved.ManagerID != "m2" || !slices.Equal(moved.PreviousManagerIDs, []string{"m1"}) {
		t.Fatalf("Transfer = %+v, %v", moved, err)
	}
	if got := f.on("/service/v1"); len(got) != 2 || got[1].payload["conversation"].(map[string]any)["manager_id"] != "m2" {
		t.Errorf("/service/v1 got %+v; want the opening and then the transfer", got)
	}
	if got := f.on("/conversations/" + c.ID + "/status"); len(got) != 1 {
		t.Errorf("status channel got %+v; want the transfer", got)
	}
	if _, _, err := f.svc.PostMessage(ctx, manager("m1"), c.ID, "still here?", ""); code(err) != "forbidden" {
		t.Errorf("the previous manager posts: %v", err)
	}
	for _, name := range []string{"/conversations/" + c.ID, "/conversations/" + c.ID + "/typing"} {
		if err := f.svc.CanSubscribe(ctx, manager("m1"), name); code(err) != "forbidden" {
			t.Errorf("the previous manager subscribes to %s: %v", name, err)
		}
		if err := f.svc.CanSubscribe(ctx, manager("m2"), name); err != nil {
			t.Errorf("the new manager subscribes to %s: %v", name, err)
		}
	}
	if _, err := f.svc.History(ctx, manager("m1"), c.ID, HistoryQuery{}); code(err) != "forbidden" {
		t.Errorf("the previous manager reads the history: %v", err)
	}
	f.post(t, manager("m2"), c.ID, "I take over")
	if again, err := f.svc.Transfer(ctx, service(), c.ID, "m2"); err != nil || again.ManagerID != "m2" {
		t.Errorf("a transfer to the current manager: %+v, %v; want a no-op", again, err)
	}
	if _, err := f.svc.CloseConversation(ctx, service(), c.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Transfer(ctx, service(), c.ID, "m1"); code(err) != "conversation_closed" {
		t.Errorf("transfer of a closed conversation: %v", err)
	}
}

func TestOfflineQueueAndClaim(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	if _, _, err := f.svc.OpenConversation(ctx, visitor("v0"), "v0"); code(err) != "chat_offline" {
		t.Fatalf("refuse mode with nobody on duty: %v", err)
	}
	f.queue(t, OrgSettings{OfflineMode: store.OfflineQueue, ChatOfflineMessage: "Back at 9"})
	var pending []store.Conversation
	for _, v := range []string{"v1", "v2", "v3"} {
		c, created, err := f.svc.OpenConversation(ctx, visitor(v), v)
		if err != nil || !created || c.Status != store.StatusPending || c.ManagerID != "" {
			t.Fatalf("open under queue: %+v, %v, %v", c, created, err)
		}
		pending = append(pending, c)
		time.Sleep(2 * time.Millisecond) // distinct creation times: the queue is oldest first
	}
	if msg, _ := f.svc.OfflineMessage(ctx, "O"); msg != "Back at 9" {
		t.Errorf("OfflineMessage = %q", msg)
	}
	f.post(t, visitor("v1"), pending[0].ID, "anyone?")
	if _, _, err := f.svc.PostMessage(ctx, manager("m1"), pending[0].ID, "me", ""); code(err) != "forbidden" {
		t.Errorf("a manager posts to a pending conversation: %v", err)
	}
	if again, created, err := f.svc.OpenConversation(ctx, visitor("v1"), "v1"); err != nil || created || again.ID != pending[0].ID {
		t.Errorf("reopening a pending conversation: %+v %v %v", again, created, err)
	}
	waiting, err := f.svc.ListConversations(ctx, manager("m1"), ListQuery{Status: store.StatusPending})
	if err != nil || len(waiting.Items) != 3 {
		t.Fatalf("pending listing for a manager: %v, %v", ids(waiting), err)
	}

	claimed, err := f.svc.Claim(ctx, manager("m9"), pending[2].ID)
	if err != nil || claimed.ManagerID != "m9" || claimed.Status != store.StatusOpen {
		t.Fatalf("Claim = %+v, %v", claimed, err)
	}
	if _, err := f.svc.Claim(ctx, manager("m8"), pending[2].ID); code(err) != "conversation_not_pending" {
		t.Errorf("claiming a claimed conversation: %v", err)
	}
	if _, err := f.svc.Claim(ctx, service(), pending[1].ID); code(err) != "forbidden" {
		t.Errorf("a service claims: %v", err)
	}

	// A manager with room for one comes on duty: it gets the oldest pending one only.
	if _, err := f.svc.PutManager(ctx, service(), "O", "m1", "Anna", 1); err != nil {
		t.Fatal(err)
	}
	f.duty.Join("O", "m1", "h1")
	n, err := f.svc.AssignPending(ctx, "O")
	if err != nil {
		t.Fatal(err)
	}
	first, _ := f.svc.ConversationItem(ctx, service(), pending[0].ID)
	second, _ := f.svc.ConversationItem(ctx, service(), pending[1].ID)
	if first.Conversation.ManagerID != "m1" || second.Conversation.Status != store.StatusPending {
		t.Errorf("after m1 came on duty (assigned %d): first %+v, second %+v", n, first.Conversation, second.Conversation)
	}
	if _, err := f.svc.Claim(ctx, manager("m1"), pending[1].ID); code(err) != "manager_full" {
		t.Errorf("a full manager claims: %v", err)
	}
	// Closing frees m1's room: the next pending one follows.
	if _, err := f.svc.CloseConversation(ctx, manager("m1"), pending[0].ID); err != nil {
		t.Fatal(err)
	}
	f.svc.Stop() // waits for the assignment the closing started
	if second, _ = f.svc.ConversationItem(ctx, service(), pending[1].ID); second.Conversation.ManagerID != "m1" {
		t.Errorf("after m1 closed one, the next pending: %+v", second.Conversation)
	}
	h, err := f.svc.History(ctx, manager("m1"), pending[0].ID, HistoryQuery{})
	if err != nil || len(h) != 1 || h[0].Content != "anyone?" {
		t.Errorf("the message posted while pending: %+v, %v", h, err)
	}
}

func TestSweepReassignsStrandedConversations(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.queue(t, OrgSettings{ReassignAfter: 10 * time.Minute})
	f.duty.Join("O", "m1", "h1")
	a := f.open(t, visitor("v1"), "v1")
	b := f.open(t, visitor("v2"), "v2")
	f.duty.Leave("O", "m1", "h1")
	t0 := time.Now()
	if err := f.svc.Sweep(ctx, t0); err != nil {
		t.Fatal(err)
	}
	f.post(t, visitor("v1"), a.ID, "hello?") // while its manager is away
	f.duty.Join("O", "m2", "h2")
	if err := f.svc.Sweep(ctx, t0.Add(9*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if c, _ := f.svc.ConversationItem(ctx, service(), a.ID); c.Conversation.ManagerID != "m1" {
		t.Fatalf("moved before reassign_after: %+v", c.Conversation)
	}
	if err := f.svc.Sweep(ctx, t0.Add(10*time.Minute)); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{a.ID, b.ID} {
		c, _ := f.svc.ConversationItem(ctx, service(), id)
		if c.Conversation.ManagerID != "m2" || !slices.Equal(c.Conversation.PreviousManagerIDs, []string{"m1"}) {
			t.Errorf("after reassign_after: %+v; want m2, taken from m1", c.Conversation)
		}
	}
	h, err := f.svc.History(ctx, manager("m2"), a.ID, HistoryQuery{})
	if err != nil || len(h) != 1 {
		t.Errorf("what was posted meanwhile: %+v, %v", h, err)
	}

	// Back on duty, then away again: the clock starts over.
	f.duty.Join("O", "m1", "h1")
	c := f.open(t, visitor("v3"), "v3") // m1 is the least loaded
	if c.ManagerID != "m1" {
		t.Fatalf("v3 went to %s", c.ManagerID)
	}
	if err := f.svc.Sweep(ctx, t0.Add(11*time.Minute)); err != nil {
		t.Fatal(err)
	}
	f.duty.Leave("O", "m1", "h1")
	f.duty.Leave("O", "m2", "h2")
	if err := f.svc.Sweep(ctx, t0.Add(12*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Sweep(ctx, t0.Add(30*time.Minute)); err != nil {
		t.Fatal(err)
	}
	// Nobody on duty under refuse: the conversation stays with its manager.
	if got, _ := f.svc.ConversationItem(ctx, service(), c.ID); got.Conversation.ManagerID != "m1" {
		t.Errorf("with nobody to take it under refuse: %+v", got.Conversation)
	}
	// Under queue it waits as pending.
	f.queue(t, OrgSettings{ReassignAfter: 10 * time.Minute, OfflineMode: store.OfflineQueue})
	if err := f.svc.Sweep(ctx, t0.Add(31*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.svc.ConversationItem(ctx, service(), c.ID); got.Conversation.Status != store.StatusPending {
		t.Errorf("under queue with nobody on duty: %+v", got.Conversation)
	}
}

func TestSweepRetention(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.queue(t, OrgSettings{Retention: 30})
	f.duty.Join("O", "m1", "h1")
	old := f.open(t, visitor("v1"), "v1")
	f.post(t, visitor("v1"), old.ID, "old news")
	if _, err := f.svc.CloseConversation(ctx, service(), old.ID); err != nil {
		t.Fatal(err)
	}
	open := f.open(t, visitor("v2"), "v2")
	now := time.Now()
	if err := f.svc.Sweep(ctx, now.Add(29*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.ConversationItem(ctx, service(), old.ID); err != nil {
		t.Fatalf("deleted before its retention: %v", err)
	}
	if err := f.svc.Sweep(ctx, now.Add(31*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.ConversationItem(ctx, service(), old.ID); code(err) != "conversation_not_found" {
		t.Errorf("a closed conversation past retention: %v", err)
	}
	if _, err := f.svc.ConversationItem(ctx, service(), open.ID); err != nil {
		t.Errorf("an open conversation was deleted: %v", err)
	}
}

func TestAdminReadsAndDeleteManager(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	if _, err := f.svc.PutManager(ctx, service(), "O", "m1", "Anna", 3); err != nil {
		t.Fatal(err)
	}
	f.duty.Join("O", "m1", "h1")
	c := f.open(t, visitor("v1"), "v1")
	f.duty.Join("O", "m2", "h2")
	ms, err := f.svc.Managers(ctx, service(), "O")
	if err != nil || len(ms) != 2 || ms[0].ID != "m1" || !ms[0].Registered || ms[0].OpenConversations != 1 || !ms[0].OnDuty || ms[1].ID != "m2" || ms[1].Registered {
		t.Fatalf("Managers = %+v, %v", ms, err)
	}
	if on, err := f.svc.Duty(service(), "O"); err != nil || !slices.Equal(on, []string{"m1", "m2"}) {
		t.Errorf("Duty = %v, %v", on, err)
	}
	if _, err := f.svc.Duty(manager("m1"), "O"); code(err) != "forbidden" {
		t.Errorf("a manager reads the admin duty list: %v", err)
	}
	if on, err := f.svc.OnDutyManagers(manager("m1")); err != nil || len(on) != 2 {
		t.Errorf("OnDutyManagers = %v, %v", on, err)
	}
	if _, err := f.svc.OnDutyManagers(visitor("v1")); code(err) != "forbidden" {
		t.Errorf("a visitor reads the duty list: %v", err)
	}
	if err := f.svc.DeleteManager(ctx, service(), "O", "m1"); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.DeleteManager(ctx, service(), "O", "m1"); code(err) != "manager_not_found" {
		t.Errorf("deleting twice: %v", err)
	}
	if got, _ := f.svc.ConversationItem(ctx, service(), c.ID); got.Conversation.ManagerID != "m2" {
		t.Errorf("the deleted manager's conversation: %+v; want it with m2", got.Conversation)
	}
	if _, err := f.svc.Org(ctx, service(), "O"); code(err) != "org_not_found" {
		t.Errorf("an organisation never put: %v", err)
	}
	f.queue(t, OrgSettings{OfflineMode: store.OfflineQueue, ReassignAfter: time.Hour, Retention: 7})
	o, err := f.svc.Org(ctx, service(), "O")
	if err != nil || o.OfflineMode != store.OfflineQueue || time.Duration(o.ReassignAfter) != time.Hour || o.Retention != 7 {
		t.Errorf("Org = %+v, %v", o, err)
	}
	for _, tc := range []struct {
		in   OrgSettings
		want string
	}{
		{OrgSettings{OfflineMode: "maybe"}, "invalid_offline_mode"},
		{OrgSettings{ReassignAfter: time.Millisecond}, "invalid_reassign_after"},
		{OrgSettings{Retention: -1}, "invalid_retention"},
	} {
		if _, err := f.svc.PutOrg(ctx, service(), "O", tc.in); code(err) != tc.want {
			t.Errorf("PutOrg(%+v) = %v, want %s", tc.in, err, tc.want)
		}
	}
}
