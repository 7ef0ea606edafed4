package metrics

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/convead/chat-server/store"
)

// Store returns st with every call timed into chat_store_duration_seconds. The backend is
// unchanged; only the wrapper knows about metrics.
func (m *Metrics) Store(st store.Store) store.Store { return &timedStore{st: st, h: m.store} }

type timedStore struct {
	st store.Store
	h  *prometheus.HistogramVec
}

func outcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, store.ErrNotFound):
		return "not_found"
	case errors.Is(err, store.ErrConflict):
		return "conflict"
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return "unavailable"
	}
	return "error"
}

func (t *timedStore) observe(op string, start time.Time, err error) {
	t.h.WithLabelValues(op, outcome(err)).Observe(time.Since(start).Seconds())
}

func timed[T any](t *timedStore, op string, call func() (T, error)) (T, error) {
	start := time.Now()
	v, err := call()
	t.observe(op, start, err)
	return v, err
}

func (t *timedStore) PutOrg(ctx context.Context, o store.Org) (store.Org, error) {
	return timed(t, "put_org", func() (store.Org, error) { return t.st.PutOrg(ctx, o) })
}

func (t *timedStore) Org(ctx context.Context, id string) (store.Org, error) {
	return timed(t, "org", func() (store.Org, error) { return t.st.Org(ctx, id) })
}

func (t *timedStore) Orgs(ctx context.Context) ([]store.Org, error) {
	return timed(t, "orgs", func() ([]store.Org, error) { return t.st.Orgs(ctx) })
}

func (t *timedStore) PutOrgKey(ctx context.Context, k store.OrgKey) (store.OrgKey, error) {
	return timed(t, "put_org_key", func() (store.OrgKey, error) { return t.st.PutOrgKey(ctx, k) })
}

func (t *timedStore) OrgKeys(ctx context.Context, org string) ([]store.OrgKey, error) {
	return timed(t, "org_keys", func() ([]store.OrgKey, error) { return t.st.OrgKeys(ctx, org) })
}

func (t *timedStore) DeleteOrgKey(ctx context.Context, org, kid string) error {
	start := time.Now()
	err := t.st.DeleteOrgKey(ctx, org, kid)
	t.observe("delete_org_key", start, err)
	return err
}

func (t *timedStore) PutManager(ctx context.Context, mg store.Manager) (store.Manager, error) {
	return timed(t, "put_manager", func() (store.Manager, error) { return t.st.PutManager(ctx, mg) })
}

func (t *timedStore) Managers(ctx context.Context, org string, ids []string) (map[string]store.Manager, error) {
	return timed(t, "managers", func() (map[string]store.Manager, error) { return t.st.Managers(ctx, org, ids) })
}

func (t *timedStore) RegisteredManagers(ctx context.Context, org string) ([]store.Manager, error) {
	return timed(t, "registered_managers", func() ([]store.Manager, error) { return t.st.RegisteredManagers(ctx, org) })
}

func (t *timedStore) DeleteManager(ctx context.Context, org, id string) error {
	start := time.Now()
	err := t.st.DeleteManager(ctx, org, id)
	t.observe("delete_manager", start, err)
	return err
}

func (t *timedStore) CreateConversation(ctx context.Context, c store.Conversation) (store.Conversation, error) {
	return timed(t, "create_conversation", func() (store.Conversation, error) { return t.st.CreateConversation(ctx, c) })
}

func (t *timedStore) Conversation(ctx context.Context, id string) (store.Conversation, error) {
	return timed(t, "conversation", func() (store.Conversation, error) { return t.st.Conversation(ctx, id) })
}

func (t *timedStore) ConversationItem(ctx context.Context, id string) (store.ConversationItem, error) {
	return timed(t, "conversation_item", func() (store.ConversationItem, error) { return t.st.ConversationItem(ctx, id) })
}

func (t *timedStore) OpenConversation(ctx context.Context, org, visitor string) (store.Conversation, error) {
	return timed(t, "open_conversation", func() (store.Conversation, error) { return t.st.OpenConversation(ctx, org, visitor) })
}

func (t *timedStore) CloseConversation(ctx context.Context, id string, at time.Time) (store.Conversation, error) {
	return timed(t, "close_conversation", func() (store.Conversation, error) { return t.st.CloseConversation(ctx, id, at) })
}

func (t *timedStore) AssignConversation(ctx context.Context, id, from, to string, at time.Time) (store.Conversation, error) {
	return timed(t, "assign_conversation", func() (store.Conversation, error) { return t.st.AssignConversation(ctx, id, from, to, at) })
}

func (t *timedStore) ListConversations(ctx context.Context, q store.ConversationQuery) ([]store.ConversationItem, string, error) {
	start := time.Now()
	items, next, err := t.st.ListConversations(ctx, q)
	t.observe("list_conversations", start, err)
	return items, next, err
}

func (t *timedStore) OpenCounts(ctx context.Context, org string) (map[string]int, error) {
	return timed(t, "open_counts", func() (map[string]int, error) { return t.st.OpenCounts(ctx, org) })
}

func (t *timedStore) AppendMessage(ctx context.Context, msg store.Message) (store.Message, bool, error) {
	start := time.Now()
	out, created, err := t.st.AppendMessage(ctx, msg)
	t.observe("append_message", start, err)
	return out, created, err
}

func (t *timedStore) Message(ctx context.Context, id string) (store.Message, error) {
	return timed(t, "message", func() (store.Message, error) { return t.st.Message(ctx, id) })
}

func (t *timedStore) MarkRead(ctx context.Context, id string, at time.Time) (store.Message, error) {
	return timed(t, "mark_read", func() (store.Message, error) { return t.st.MarkRead(ctx, id, at) })
}

func (t *timedStore) History(ctx context.Context, org, visitor string, q store.HistoryQuery) ([]store.Message, error) {
	return timed(t, "history", func() ([]store.Message, error) { return t.st.History(ctx, org, visitor, q) })
}

func (t *timedStore) AddNotification(ctx context.Context, n store.Notification) (store.Notification, error) {
	return timed(t, "add_notification", func() (store.Notification, error) { return t.st.AddNotification(ctx, n) })
}

func (t *timedStore) DeleteVisitor(ctx context.Context, org, visitor string) error {
	start := time.Now()
	err := t.st.DeleteVisitor(ctx, org, visitor)
	t.observe("delete_visitor", start, err)
	return err
}

func (t *timedStore) DeleteClosedBefore(ctx context.Context, org string, before time.Time, limit int) (int, error) {
	return timed(t, "delete_closed_before", func() (int, error) { return t.st.DeleteClosedBefore(ctx, org, before, limit) })
}

func (t *timedStore) Ping(ctx context.Context) error {
	start := time.Now()
	err := t.st.Ping(ctx)
	t.observe("ping", start, err)
	return err
}

// Close is not timed: it happens once, at shutdown.
func (t *timedStore) Close(ctx context.Context) error { return t.st.Close(ctx) }
