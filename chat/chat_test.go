package chat

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/convead/chat-server/auth"
	"github.com/convead/chat-server/duty"
	"github.com/convead/chat-server/store"
	"github.com/convead/chat-server/store/bolt"
)

type published struct {
	org, channel string
	payload      map[string]any
}

// recorder is a Publisher that remembers what was published.
type recorder struct {
	mu   sync.Mutex
	msgs []published
}

func (r *recorder) Publish(org, ch string, payload []byte) error {
	var p map[string]any
	if err := json.Unmarshal(payload, &p); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, published{org, ch, p})
	return nil
}

func (r *recorder) on(ch string) []published {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []published
	for _, m := range r.msgs {
		if m.channel == ch {
			out = append(out, m)
		}
	}
	return out
}

// on returns what was published on ch, once the outbox has sent everything queued.
func (f *fixture) on(ch string) []published {
	f.svc.Flush()
	return f.pub.on(ch)
}

type fixture struct {
	svc  *Service
	pub  *recorder
	duty *duty.Registry
	st   store.Store
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	st, err := bolt.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close(context.Background()) })
	f := &fixture{pub: &recorder{}, duty: duty.NewRegistry(), st: st}
	f.svc = New(st, f.pub, f.duty, Config{MaxMessagesCount: 5, ContentChars: 20}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(f.svc.Stop) // before the store closes: cleanups run last first
	return f
}

func visitor(v string) auth.Identity { return auth.Identity{Subject: v, Role: auth.Visitor, Org: "O"} }
func manager(m string) auth.Identity { return auth.Identity{Subject: m, Role: auth.Manager, Org: "O"} }
func service() auth.Identity {
	return auth.Identity{Subject: "backoffice", Role: auth.Service, Org: "O"}
}
func managerOf(org, m string) auth.Identity {
	return auth.Identity{Subject: m, Role: auth.Manager, Org: org}
}

func code(err error) string {
	if e := AsError(err); e != nil {
		return e.Code
	}
	if err != nil {
		return "internal: " + err.Error()
	}
	return ""
}

func (f *fixture) open(t *testing.T, id auth.Identity, v string) store.Conversation {
	t.Helper()
	c, _, err := f.svc.OpenConversation(context.Background(), id, v)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (f *fixture) post(t *testing.T, id auth.Identity, conv, content string) store.Message {
	t.Helper()
	m, _, err := f.svc.PostMessage(context.Background(), id, conv, content, "")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestOpenConversationRules(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	if _, _, err := f.svc.OpenConversation(ctx, visitor("v1"), "v1"); code(err) != "chat_offline" ||
		!strings.Contains(AsError(err).Message, DefaultOfflineMessage) {
		t.Fatalf("no manager on duty: %v", err)
	}
	if _, err := f.svc.PutOrg(ctx, service(), "O", OrgSettings{Name: "Shop", ChatOfflineMessage: "We are asleep"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.svc.OpenConversation(ctx, visitor("v1"), "v1"); code(err) != "chat_offline" || AsError(err).Message != "We are asleep" {
		t.Fatalf("offline message: %v", err)
	}
	f.duty.Join("O", "m1", "h1")
	c, created, err := f.svc.OpenConversation(ctx, visitor("v1"), "v1")
	if err != nil || !created || c.ManagerID != "m1" || c.Status != store.StatusOpen {
		t.Fatalf("open = %+v, %v, %v", c, created, err)
	}
	again, created, err := f.svc.OpenConversation(ctx, visitor("v1"), "v1")
	if err != nil || created || again.ID != c.ID {
		t.Fatalf("reopen = %+v, %v, %v", again, created, err)
	}
	if got := f.on("/service/v1"); len(got) != 2 || got[0].payload["entity"] != "conversation" || got[0].org != "O" {
		t.Fatalf("published on /service/v1: %+v", got)
	}
	cases := []struct {
		name string
		id   auth.Identity
		v    string
		want string
	}{
		{"counterpart manager gets it", manager("m1"), "v1", ""},
		{"another manager is refused", manager("m2"), "v1", "conversation_taken"},
		{"a visitor cannot open another's", visitor("v2"), "v1", "forbidden"},
		{"invalid visitor id", visitor("v/1"), "v/1", "invalid_visitor_id"},
		{"a manager starts a new one", manager("m2"), "v3", ""},
		{"a service gets the open one", service(), "v1", ""},
	}
	for _, tc := range cases {
		_, _, err := f.svc.OpenConversation(ctx, tc.id, tc.v)
		if code(err) != tc.want {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
	if c3, _ := f.st.OpenConversation(ctx, "O", "v3"); c3.ManagerID != "m2" {
		t.Errorf("manager-started conversation has counterpart %q, want m2", c3.ManagerID)
	}
}

func TestOneOpenConversationUnderConcurrentOpens(t *testing.T) {
	f := newFixture(t)
	f.duty.Join("O", "m1", "h1")
	const n = 50
	var wg sync.WaitGroup
	ids := make([]string, n)
	var created int
	var mu sync.Mutex
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c, isNew, err := f.svc.OpenConversation(context.Background(), visitor("v1"), "v1")
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = c.ID
			if isNew {
				mu.Lock()
				created++
				mu.Unlock()
			}
		}(i)
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("concurrent opens returned different conversations: %v", ids)
		}
	}
	if created != 1 {
		t.Fatalf("%d concurrent opens created %d conversations", n, created)
	}
}

func TestManagerChoice(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	for _, m := range []string{"m1", "m2", "m3"} {
		f.duty.Join("O", m, "h-"+m)
	}
	if _, err := f.svc.PutManager(ctx, service(), "O", "m3", "Cap", 1); err != nil {
		t.Fatal(err)
	}
	// Equal loads: never-assigned first, by id; then the one assigned longest ago.
	var got []string
	for i := 0; i < 6; i++ {
		got = append(got, f.open(t, visitor(fmt.Sprint("v", i)), fmt.Sprint("v", i)).ManagerID)
	}
	// m3 has capacity 1: after its first conversation it is skipped.
	if want := "[m1 m2 m3 m1 m2 m1]"; fmt.Sprint(got) != want {
		t.Errorf("assignment order = %v, want %s", got, want)
	}
	// Closing frees capacity and lowers load.
	c, _ := f.st.OpenConversation(ctx, "O", "v2")
	if _, err := f.svc.CloseConversation(ctx, service(), c.ID); err != nil {
		t.Fatal(err)
	}
	if m := f.open(t, visitor("v9"), "v9").ManagerID; m != "m3" {
		t.Errorf("after m3's conversation closed, got %s, want m3", m)
	}
	// Going off duty removes a manager from the choice.
	f.duty.Gone("h-m1")
	f.duty.Gone("h-m2")
	if _, _, err := f.svc.OpenConversation(ctx, visitor("v10"), "v10"); code(err) != "chat_offline" {
		t.Errorf("only m3 at capacity on duty: err = %v, want chat_offline", err)
	}
}

func TestPostMessageRules(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.duty.Join("O", "m1", "h")
	c := f.open(t, visitor("v1"), "v1")
	other := f.open(t, visitor("v2"), "v2")
	f.duty.Join("P", "m1", "hp")
	foreign, _, err := f.svc.OpenConversation(ctx, auth.Identity{Subject: "v1", Role: auth.Visitor, Org: "P"}, "v1")
	if err != nil {
		t.Fatal(err)
	}
	closed := f.open(t, manager("m1"), "v3")
	if _, err := f.svc.CloseConversation(ctx, visitor("v3"), closed.ID); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		id      auth.Identity
		conv    string
		content string
		cmid    string
		want    string
	}{
		{"visitor posts", visitor("v1"), c.ID, "hi", "", ""},
		{"manager posts", manager("m1"), c.ID, "hello", "", ""},
		{"visitor into another's conversation", visitor("v2"), c.ID, "x", "", "forbidden"},
		{"another manager", manager("m2"), c.ID, "x", "", "forbidden"},
		{"service cannot post", service(), c.ID, "x", "", "forbidden"},
		{"manager of another org", managerOf("P", "m1"), c.ID, "x", "", "conversation_not_found"},
		{"into another org's conversation by id", visitor("v1"), foreign.ID, "x", "", "conversation_not_found"},
		{"unknown conversation", visitor("v1"), "nope", "x", "", "conversation_not_found"},
		{"malformed conversation id", visitor("v1"), "../x", "x", "", "conversation_not_found"},
		{"empty content", visitor("v1"), c.ID, "", "", "invalid_content"},
		{"blank content", visitor("v1"), c.ID, " \n\t", "", "invalid_content"},
		{"invalid UTF-8", visitor("v1"), c.ID, "a\xffb", "", "invalid_content"},
		{"too long", visitor("v1"), c.ID, strings.Repeat("é", 21), "", "content_too_long"},
		{"exactly the limit", visitor("v1"), c.ID, strings.Repeat("é", 20), "", ""},
		{"control char in client id", visitor("v1"), c.ID, "x", "a\x00b", "invalid_client_message_id"},
		{"huge client id", visitor("v1"), c.ID, "x", strings.Repeat("a", 129), "invalid_client_message_id"},
		{"closed conversation", visitor("v3"), closed.ID, "x", "", "conversation_closed"},
		{"other visitor's own conversation is fine", visitor("v2"), other.ID, "x", "", ""},
	}
	for _, tc := range cases {
		_, _, err := f.svc.PostMessage(ctx, tc.id, tc.conv, tc.content, tc.cmid)
		if code(err) != tc.want {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
	msgs := f.on("/conversations/" + c.ID)
	if len(msgs) != 3 || msgs[0].payload["entity"] != "message" {
		t.Fatalf("published on the conversation: %+v", msgs)
	}
	m := msgs[0].payload["message"].(map[string]any)
	if m["content"] != "hi" || m["conversation_id"] != c.ID || m["sender"].(map[string]any)["type"] != "visitor" {
		t.Errorf("published message = %v", m)
	}
}

func TestIdempotentPostUnderConcurrentRetries(t *testing.T) {
	f := newFixture(t)
	f.duty.Join("O", "m1", "h")
	c := f.open(t, visitor("v1"), "v1")
	var wg sync.WaitGroup
	ids := make([]string, 20)
	for i := range ids {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			m, _, err := f.svc.PostMessage(context.Background(), visitor("v1"), c.ID, "once", "cm-1")
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = m.ID
		}(i)
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("retries returned different messages: %v", ids)
		}
	}
	h, err := f.svc.History(context.Background(), visitor("v1"), c.ID, HistoryQuery{})
	if err != nil || len(h) != 1 {
		t.Fatalf("history after 20 retries = %d messages, %v", len(h), err)
	}
	if got := f.on("/conversations/" + c.ID); len(got) != 1 {
		t.Errorf("retries published %d times, want once", len(got))
	}
}

func contents(ms []store.Message) string {
	var s []string
	for _, m := range ms {
		s = append(s, m.Content)
	}
	return strings.Join(s, ",")
}

func TestHistory(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.duty.Join("O", "m1", "h")
	c1 := f.open(t, visitor("v1"), "v1")
	var ids []string
	for i := 1; i <= 4; i++ {
		ids = append(ids, f.post(t, visitor("v1"), c1.ID, fmt.Sprint("a", i)).ID)
	}
	if _, err := f.svc.CloseConversation(ctx, manager("m1"), c1.ID); err != nil {
		t.Fatal(err)
	}
	c2 := f.open(t, visitor("v1"), "v1")
	for i := 5; i <= 7; i++ {
		ids = append(ids, f.post(t, manager("m1"), c2.ID, fmt.Sprint("b", i)).ID)
	}
	c3 := f.open(t, visitor("v2"), "v2")
	foreignMsg := f.post(t, visitor("v2"), c3.ID, "other")
	cases := []struct {
		name string
		id   auth.Identity
		conv string
		q    HistoryQuery
		want string
		err  string
	}{
		{"newest, default count 5", visitor("v1"), c2.ID, HistoryQuery{}, "b7,b6,b5,a4,a3", ""},
		{"through a closed conversation", visitor("v1"), c1.ID, HistoryQuery{Count: 2}, "b7,b6", ""},
		{"count above the maximum is capped", visitor("v1"), c1.ID, HistoryQuery{Count: 500}, "b7,b6,b5,a4,a3", ""},
		{"since_id inclusive", manager("m1"), c2.ID, HistoryQuery{SinceID: ids[4], Count: 3}, "b5,a4,a3", ""},
		{"after_id exclusive, oldest first", visitor("v1"), c2.ID, HistoryQuery{AfterID: ids[2]}, "a4,b5,b6,b7", ""},
		{"after the newest is empty", visitor("v1"), c2.ID, HistoryQuery{AfterID: ids[6]}, "", ""},
		{"any manager of the org", manager("m9"), c2.ID, HistoryQuery{Count: 1}, "b7", ""},
		{"service", service(), c2.ID, HistoryQuery{Count: 1}, "b7", ""},
		{"another visitor", visitor("v2"), c2.ID, HistoryQuery{}, "", "forbidden"},
		{"another org", managerOf("P", "m1"), c2.ID, HistoryQuery{}, "", "conversation_not_found"},
		{"since_id of another visitor", manager("m1"), c2.ID, HistoryQuery{SinceID: foreignMsg.ID}, "", "message_not_found"},
		{"unknown since_id", visitor("v1"), c2.ID, HistoryQuery{SinceID: "nope"}, "", "message_not_found"},
		{"both since and after", visitor("v1"), c2.ID, HistoryQuery{SinceID: ids[0], AfterID: ids[1]}, "", "invalid_params"},
		{"negative count", visitor("v1"), c2.ID, HistoryQuery{Count: -1}, "", "invalid_count"},
		{"since_seq inclusive", manager("m1"), c2.ID, HistoryQuery{SinceSeq: seq(5), Count: 3}, "b5,a4,a3", ""},
		{"since_seq past the newest", visitor("v1"), c2.ID, HistoryQuery{SinceSeq: seq(99), Count: 2}, "b7,b6", ""},
		{"since_seq 0", visitor("v1"), c2.ID, HistoryQuery{SinceSeq: seq(0)}, "", "invalid_since_seq"},
		{"after_seq exclusive, oldest first", visitor("v1"), c2.ID, HistoryQuery{AfterSeq: seq(3)}, "a4,b5,b6,b7", ""},
		{"after_seq 0 is from the first", visitor("v1"), c2.ID, HistoryQuery{AfterSeq: seq(0), Count: 2}, "a1,a2", ""},
		{"after the newest seq is empty", visitor("v1"), c2.ID, HistoryQuery{AfterSeq: seq(7)}, "", ""},
		{"since_seq and after_seq", visitor("v1"), c2.ID, HistoryQuery{SinceSeq: seq(5), AfterSeq: seq(1)}, "", "invalid_params"},
		{"after_id and after_seq", visitor("v1"), c2.ID, HistoryQuery{AfterID: ids[1], AfterSeq: seq(1)}, "", "invalid_params"},
	}
	for _, tc := range cases {
		got, err := f.svc.History(ctx, tc.id, tc.conv, tc.q)
		if code(err) != tc.err || contents(got) != tc.want {
			t.Errorf("%s: History = %q, %v; want %q, %q", tc.name, contents(got), err, tc.want, tc.err)
		}
	}
}

func seq(n uint64) *uint64 { return &n }

// TestMessagesCarrySeq: the post reply, the published event and the history all show the
// visitor's gap-free seq, so a client can tell it missed a message.
func TestMessagesCarrySeq(t *testing.T) {
	f := newFixture(t)
	f.duty.Join("O", "m1", "h")
	c := f.open(t, visitor("v1"), "v1")
	for i, id := range []auth.Identity{visitor("v1"), manager("m1"), visitor("v1")} {
		m := f.post(t, id, c.ID, fmt.Sprint("m", i))
		if m.Seq != uint64(i+1) {
			t.Errorf("post %d: seq = %d, want %d", i, m.Seq, i+1)
		}
	}
	events := f.on("/conversations/" + c.ID)
	h, err := f.svc.History(context.Background(), visitor("v1"), c.ID, HistoryQuery{AfterSeq: seq(0)})
	if err != nil || len(h) != 3 || len(events) != 3 {
		t.Fatalf("history %d messages (%v), %d events; want 3 of each", len(h), err, len(events))
	}
	for i := range 3 {
		event, _ := events[i].payload["message"].(map[string]any)
		body, err := json.Marshal(h[i])
		var hist map[string]any
		if err == nil {
			err = json.Unmarshal(body, &hist)
		}
		if err != nil {
			t.Fatal(err)
		}
		for name, got := range map[string]any{"event": event["seq"], "history": hist["seq"]} {
			if got != float64(i+1) {
				t.Errorf("%s of message %d: seq = %v, want %d", name, i, got, i+1)
			}
		}
	}
}

func TestContentOf(t *testing.T) {
	cases := []struct {
		raw  string
		want string
		err  string
	}{
		{`"hi"`, "hi", ""},
		{` "spaced" `, "spaced", ""},
		{`"42"`, "42", ""},
		{`42`, "", "invalid_content"},
		{`4.2e1`, "", "invalid_content"},
		{`{"a":1}`, "", "invalid_content"},
		{`["hi"]`, "", "invalid_content"},
		{`true`, "", "invalid_content"},
		{`null`, "", "invalid_content"},
		{``, "", "invalid_content"},
	}
	for _, tc := range cases {
		got, err := ContentOf(json.RawMessage(tc.raw))
		if got != tc.want || code(err) != tc.err {
			t.Errorf("ContentOf(%s) = %q, %v; want %q, %q", tc.raw, got, err, tc.want, tc.err)
		}
	}
	if got, err := ContentOf(nil); got != "" || err != nil {
		t.Errorf("ContentOf(absent) = %q, %v; want \"\" for PostMessage to refuse", got, err)
	}
}

// TestHistoryCountLimit: max_messages_count is only the default page; a count above it is
// honoured up to the limit, and clamped there.
func TestHistoryCountLimit(t *testing.T) {
	f := newFixture(t)
	f.svc.cfg.MessagesCountLimit = 8
	f.duty.Join("O", "m1", "h")
	c := f.open(t, visitor("v1"), "v1")
	for i := 1; i <= 10; i++ {
		f.post(t, visitor("v1"), c.ID, fmt.Sprint("m", i))
	}
	cases := []struct {
		name  string
		count int
		want  int
	}{
		{"no count is the default", 0, 5},
		{"below the default", 3, 3},
		{"above the default", 7, 7},
		{"at the limit", 8, 8},
		{"above the limit is clamped", 50, 8},
	}
	for _, tc := range cases {
		got, err := f.svc.History(context.Background(), visitor("v1"), c.ID, HistoryQuery{Count: tc.count})
		if err != nil || len(got) != tc.want {
			t.Errorf("%s: count=%d returned %d messages, %v; want %d", tc.name, tc.count, len(got), err, tc.want)
		}
	}
}

// TestCatchUpWhilePosting is the client's recipe under load: visitor and manager post
// concurrently while a reader catches up with after_id from the last id it saw; it must see
// every message exactly once, in order.
func TestCatchUpWhilePosting(t *testing.T) {
	f := newFixture(t)
	f.svc.cfg.MaxMessagesCount = 7
	f.duty.Join("O", "m1", "h")
	c := f.open(t, visitor("v1"), "v1")
	first := f.post(t, visitor("v1"), c.ID, "start") // the client's last seen id
	const perSide = 60
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, id := range []auth.Identity{visitor("v1"), manager("m1")} {
		wg.Add(1)
		go func(id auth.Identity) {
			defer wg.Done()
			for i := 0; i < perSide; i++ {
				if _, _, err := f.svc.PostMessage(context.Background(), id, c.ID, fmt.Sprint(id.Role, i), ""); err != nil {
					t.Error(err)
					return
				}
			}
		}(id)
	}
	writersDone := make(chan struct{})
	go func() { wg.Wait(); close(writersDone) }()
	seen := map[string]bool{}
	last := first.ID
	next := map[auth.Role]int{}
	for len(seen) < 2*perSide {
		page, err := f.svc.History(context.Background(), visitor("v1"), c.ID, HistoryQuery{AfterID: last})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			select {
			case <-writersDone:
				t.Fatalf("writers finished, reader saw %d of %d messages", len(seen), 2*perSide)
			default:
			}
		}
		for _, m := range page {
			if seen[m.ID] {
				t.Fatalf("message %s seen twice", m.ID)
			}
			seen[m.ID] = true
			role := auth.Role(m.Sender.Type)
			if want := fmt.Sprint(role, next[role]); m.Content != want {
				t.Fatalf("got %q, want %q: per-sender order broken or a message skipped", m.Content, want)
			}
			next[role]++
			last = m.ID
		}
	}
}

func TestMarkRead(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.duty.Join("O", "m1", "h")
	c := f.open(t, visitor("v1"), "v1")
	fromVisitor := f.post(t, visitor("v1"), c.ID, "q")
	fromManager := f.post(t, manager("m1"), c.ID, "a")
	c2 := f.open(t, visitor("v2"), "v2")
	cases := []struct {
		name      string
		id        auth.Identity
		conv, msg string
		want      string
	}{
		{"sender cannot mark its own", visitor("v1"), c.ID, fromVisitor.ID, "forbidden"},
		{"another manager cannot", manager("m2"), c.ID, fromVisitor.ID, "forbidden"},
		{"message of another conversation", manager("m1"), c2.ID, fromVisitor.ID, "message_not_found"},
		{"unknown message", manager("m1"), c.ID, "nope", "message_not_found"},
		{"another org", managerOf("P", "m1"), c.ID, fromVisitor.ID, "conversation_not_found"},
		{"recipient manager", manager("m1"), c.ID, fromVisitor.ID, ""},
		{"again: idempotent", manager("m1"), c.ID, fromVisitor.ID, ""},
		{"recipient visitor", visitor("v1"), c.ID, fromManager.ID, ""},
	}
	for _, tc := range cases {
		m, err := f.svc.MarkRead(ctx, tc.id, tc.conv, tc.msg)
		if code(err) != tc.want {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
		if err == nil && (!m.Read || m.ReadAt == nil) {
			t.Errorf("%s: message not read: %+v", tc.name, m)
		}
	}
	if got := f.on("/conversations/" + c.ID + "/receipts"); len(got) != 2 || got[0].payload["entity"] != "receipt" {
		t.Errorf("receipts published: %+v", got)
	}
}

func TestNotifyAndAdmin(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	n, err := f.svc.Notify(ctx, service(), "v1", json.RawMessage(`{"title":"Sale"}`))
	if err != nil || n.VisitorID != "v1" || n.OrgID != "O" {
		t.Fatalf("Notify = %+v, %v", n, err)
	}
	if got := f.on("/notifications/v1"); len(got) != 1 || got[0].payload["notification"].(map[string]any)["title"] != "Sale" {
		t.Errorf("published notification: %+v", got)
	}
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"visitor cannot notify", func() error { _, err := f.svc.Notify(ctx, visitor("v1"), "v1", json.RawMessage(`{}`)); return err }(), "forbidden"},
		{"not an object", func() error { _, err := f.svc.Notify(ctx, service(), "v1", json.RawMessage(`[1]`)); return err }(), "invalid_notification"},
		{"bad visitor", func() error { _, err := f.svc.Notify(ctx, service(), "v 1", json.RawMessage(`{}`)); return err }(), "invalid_visitor_id"},
		{"manager cannot admin", func() error { _, err := f.svc.PutOrg(ctx, manager("m1"), "O", OrgSettings{Name: "x"}); return err }(), "forbidden"},
		{"service of another org", func() error { _, err := f.svc.PutOrg(ctx, service(), "P", OrgSettings{Name: "x"}); return err }(), "forbidden"},
		{"bad origin", func() error {
			_, err := f.svc.PutOrg(ctx, service(), "O", OrgSettings{Name: "x", AllowedOrigins: []string{"https://a.example/path"}})
			return err
		}(), "invalid_allowed_origins"},
		{"negative capacity", func() error { _, err := f.svc.PutManager(ctx, service(), "O", "m1", "x", -1); return err }(), "invalid_capacity"},
		{"bad manager id", func() error { _, err := f.svc.PutManager(ctx, service(), "O", "m/1", "x", 1); return err }(), "invalid_manager_id"},
	}
	for _, tc := range cases {
		if code(tc.err) != tc.want {
			t.Errorf("%s: err = %v, want %q", tc.name, tc.err, tc.want)
		}
	}
}

func TestACL(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.duty.Join("O", "m1", "h")
	c := f.open(t, visitor("v1"), "v1")
	f.duty.Join("P", "m1", "hp")
	foreign, _, err := f.svc.OpenConversation(ctx, auth.Identity{Subject: "v1", Role: auth.Visitor, Org: "P"}, "v1")
	if err != nil {
		t.Fatal(err)
	}
	conv := "/conversations/" + c.ID
	subCases := []struct {
		id   auth.Identity
		name string
		ok   bool
	}{
		{visitor("v1"), "/service/v1", true},
		{visitor("v1"), "/notifications/v1", true},
		{visitor("v1"), conv, true},
		{visitor("v1"), conv + "/typing", true},
		{visitor("v1"), conv + "/receipts", true},
		{visitor("v1"), "/service/v2", false},
		{visitor("v1"), "/notifications/v2", false},
		{visitor("v1"), "/service/*", false},
		{visitor("v1"), "/service/**", false},
		{visitor("v1"), "/**", false},
		{visitor("v1"), "/*", false},
		{visitor("v1"), "/conversations/*", false},
		{visitor("v1"), conv + "/*", false},
		{visitor("v2"), conv, false},
		{visitor("v1"), "/conversations/" + foreign.ID, false},
		{visitor("v1"), "/conversations/nope", false},
		{visitor("v1"), "/other", false},
		{manager("m2"), "/service/*", true},
		{manager("m2"), "/service/v9", true},
		{manager("m2"), conv, true},
		{manager("m2"), "/notifications/v1", false},
		{manager("m2"), "/**", false},
		{manager("m2"), "/conversations/*", true},
		{manager("m2"), "/conversations/**", true},
		{manager("m2"), "/service/**", false},
		{managerOf("P", "m1"), conv, false},
		{service(), "/**", true},
		{visitor("v1"), "/replies/visitor/v1", true},
		{visitor("v1"), "/replies/visitor/v2", false},
		{visitor("v1"), "/replies/manager/v1", false},
		{manager("m1"), "/replies/manager/m1", true},
	}
	for _, tc := range subCases {
		err := f.svc.CanSubscribe(ctx, tc.id, tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("CanSubscribe(%v, %s) = %v, want ok=%v", tc.id, tc.name, err, tc.ok)
		}
	}
	pubCases := []struct {
		id   auth.Identity
		name string
		ok   bool
	}{
		{visitor("v1"), conv + "/typing", true},
		{manager("m1"), conv + "/typing", true},
		{manager("m2"), conv + "/typing", false},
		{visitor("v2"), conv + "/typing", false},
		{visitor("v1"), conv, false},
		{manager("m1"), conv, false},
		{visitor("v1"), conv + "/receipts", false},
		{visitor("v1"), conv + "/post", true},
		{visitor("v2"), conv + "/post", false},
		{visitor("v1"), "/service/v1", false},
		{manager("m1"), "/service/v1", false},
		{service(), conv, true},
	}
	for _, tc := range pubCases {
		err := f.svc.CanPublish(ctx, tc.id, tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("CanPublish(%v, %s) = %v, want ok=%v", tc.id, tc.name, err, tc.ok)
		}
	}
}

func TestRateLimits(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.svc = New(f.st, f.pub, f.duty, Config{MaxMessagesCount: 5, ContentChars: 20, OpensPerMinutePerVisitor: 3, PostsPerMinute: 5},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	f.duty.Join("O", "m1", "h")
	for i := 0; i < 3; i++ {
		if _, _, err := f.svc.OpenConversation(ctx, visitor("v1"), "v1"); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := f.svc.OpenConversation(ctx, visitor("v1"), "v1"); code(err) != "rate_limited" {
		t.Fatalf("4th open in a minute: %v", err)
	}
	// Opening by a manager counts against the same visitor; another visitor is not affected.
	if _, _, err := f.svc.OpenConversation(ctx, manager("m1"), "v1"); code(err) != "rate_limited" {
		t.Fatalf("open by a manager: %v", err)
	}
	c := f.open(t, visitor("v2"), "v2")
	for i := 0; i < 5; i++ {
		f.post(t, visitor("v2"), c.ID, fmt.Sprint("m", i))
	}
	if _, _, err := f.svc.PostMessage(ctx, visitor("v2"), c.ID, "flood", ""); code(err) != "rate_limited" {
		t.Fatalf("6th post in a minute: %v", err)
	}
	// The manager of the same conversation still gets through.
	f.post(t, manager("m1"), c.ID, "still served")
}
