// Package chat holds the rules of the product: who may open, post, read and close, which
// manager gets a conversation, and what is published where. The doors (REST, MQTT, Faye) call
// it with an authenticated identity; it calls the store and publishes through the broker.
package chat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/convead/chat-server/auth"
	"github.com/convead/chat-server/channel"
	"github.com/convead/chat-server/origin"
	"github.com/convead/chat-server/ratelimit"
	"github.com/convead/chat-server/store"
)

// Publisher delivers a payload to a channel of an organisation (the broker does).
type Publisher interface {
	Publish(org, channelName string, payload []byte) error
}

// Duty tells which managers of an organisation are on duty (package duty on one node, or
// cluster.Duty across nodes).
type Duty interface {
	OnDuty(org string) []string
}

// Config holds the limits the rules need.
type Config struct {
	// MaxMessagesCount is the history page size when none is asked.
	MaxMessagesCount int
	// MessagesCountLimit is the largest page: a larger count is clamped to it. Below
	// MaxMessagesCount (0 included) it is MaxMessagesCount.
	MessagesCountLimit int
	// ContentChars is the longest message content, in characters.
	ContentChars int
	// OpensPerMinutePerVisitor and PostsPerMinute bound how often a visitor's conversation is
	// opened and how often one sender posts, whatever door they use; 0 is off.
	OpensPerMinutePerVisitor int
	PostsPerMinute           int
}

// DefaultOfflineMessage answers chat_offline for an organisation that set none.
const DefaultOfflineMessage = "No manager is available right now. Please try again later."

// MaxClientMessageIDBytes bounds client_message_id.
const MaxClientMessageIDBytes = 128

// Service implements the chat rules.
type Service struct {
	store store.Store
	pub   Publisher
	duty  Duty
	cfg   Config
	log   *slog.Logger
	now   func() time.Time

	// assign serialises manager choice and creation per organisation, so that concurrent
	// openings on this node respect capacities.
	assignMu sync.Mutex
	assign   map[string]*sync.Mutex

	convs *convCache
	out   *outbox

	opens, posts *ratelimit.Limiter

	// Background work (assignments after a duty change or a closing) ends before Stop returns.
	bgMu    sync.Mutex
	bg      sync.WaitGroup
	stopped bool

	// offSince is when the sweeps first saw each manager (org → manager) off duty while
	// holding open conversations.
	offMu    sync.Mutex
	offSince map[string]map[string]time.Time

	refreshMu  sync.Mutex
	refreshing map[string]bool // conversation ids MayReceive is loading into the cache
}

// New returns the chat service.
func New(s store.Store, pub Publisher, duty Duty, cfg Config, log *slog.Logger) *Service {
	return &Service{store: s, pub: pub, duty: duty, cfg: cfg, log: log, out: newOutbox(pub, log, runtime.GOMAXPROCS(0), outboxDepth),
		now:    func() time.Time { return time.Now().UTC().Truncate(time.Millisecond) },
		assign: map[string]*sync.Mutex{}, convs: newConvCache(100_000, convCacheTTL), offSince: map[string]map[string]time.Time{}, refreshing: map[string]bool{},
		opens: ratelimit.New(cfg.OpensPerMinutePerVisitor), posts: ratelimit.New(cfg.PostsPerMinute)}
}

func rateLimited(what string) *Error {
	return newErr(KindRateLimited, "rate_limited", "too many %s, retry in a minute", what)
}

// storeErr turns store errors into client errors; unexpected ones keep their text for the log.
func storeErr(err error, notFound *Error) error {
	switch {
	case errors.Is(err, store.ErrNotFound) && notFound != nil:
		return notFound
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w (%w)", newErr(KindUnavailable, "store_unavailable", "the message store is unavailable, retry later"), err)
	}
	return err
}

var (
	errConversationNotFound = newErr(KindNotFound, "conversation_not_found", "no such conversation")
	errMessageNotFound      = newErr(KindNotFound, "message_not_found", "no such message")
)

// conversation loads a conversation of the caller's organisation; one of another organisation
// is "not found", so that its existence is not revealed.
func (s *Service) conversation(ctx context.Context, id auth.Identity, convID string) (store.Conversation, error) {
	if !channel.ValidID(convID) {
		return store.Conversation{}, errConversationNotFound
	}
	c, err := s.store.Conversation(ctx, convID)
	if err != nil {
		return store.Conversation{}, storeErr(err, errConversationNotFound)
	}
	if c.OrgID != id.Org {
		return store.Conversation{}, errConversationNotFound
	}
	s.convs.put(c)
	return c, nil
}

type conversationEvent struct {
	Entity       string             `json:"entity"`
	Conversation store.Conversation `json:"conversation"`
}

type messageEvent struct {
	Entity  string        `json:"entity"`
	Message store.Message `json:"message"`
}

type notificationEvent struct {
	Entity       string          `json:"entity"`
	Notification json.RawMessage `json:"notification"`
}

// outboxDepth is the events each outbox shard queues before publishers wait.
const outboxDepth = 1024

// publish sends an event through the outbox; a failure is logged, not returned: what was
// stored stays acknowledged, and clients close any gap with the history catch-up.
func (s *Service) publish(org, ch string, event any) {
	payload, err := json.Marshal(event)
	if err != nil {
		s.log.Error("publish failed", "org", org, "channel", ch, "err", err)
		return
	}
	s.out.publish(org, ch, payload)
}

// Flush returns once every event of the calls that returned before it has been published
// (a server stopping calls it before it closes the broker).
func (s *Service) Flush() { s.out.flush() }

// QueuedEvents is the number of events waiting in the outbox (metric chat_outbox_queued_events).
func (s *Service) QueuedEvents() int { return s.out.queued() }

// OpenConversation opens the visitor's conversation or returns the open one (README "REST API"), and
// announces it on /service/<visitor>. created tells whether it is new.
func (s *Service) OpenConversation(ctx context.Context, id auth.Identity, visitorID string) (c store.Conversation, created bool, err error) {
	if !channel.ValidID(visitorID) {
		return c, false, invalidID("visitor_id")
	}
	if id.Role == auth.Visitor && id.Subject != visitorID {
		return c, false, Forbidden("a visitor can only open its own conversation")
	}
	if !s.opens.Allow(id.Org+"/"+visitorID, s.now()) {
		return c, false, rateLimited("conversation openings for this visitor")
	}
	for attempt := 0; attempt < 3; attempt++ {
		c, err = s.store.OpenConversation(ctx, id.Org, visitorID)
		switch {
		case err == nil:
			if id.Role == auth.Manager && c.ManagerID != id.Subject {
				return store.Conversation{}, false, newErr(KindConflict, "conversation_taken", "chat is already open with another manager")
			}
			s.convs.put(c)
			s.publish(id.Org, channel.ServiceOf(visitorID), conversationEvent{"conversation", c})
			return c, false, nil
		case !errors.Is(err, store.ErrNotFound):
			return c, false, storeErr(err, nil)
		}
		c, err = s.create(ctx, id, visitorID)
		switch {
		case err == nil:
			s.convs.put(c)
			s.publish(id.Org, channel.ServiceOf(visitorID), conversationEvent{"conversation", c})
			return c, true, nil
		case !errors.Is(err, store.ErrConflict):
			return c, false, err
		}
		// Someone opened it concurrently: take the path of an existing conversation.
	}
	return store.Conversation{}, false, newErr(KindConflict, "conversation_busy", "the conversation changed concurrently, retry")
}

func (s *Service) orgLock(org string) *sync.Mutex {
	s.assignMu.Lock()
	defer s.assignMu.Unlock()
	mu := s.assign[org]
	if mu == nil {
		mu = &sync.Mutex{}
		s.assign[org] = mu
	}
	return mu
}

// create makes a new open conversation; the counterpart is the opening manager, or the chosen
// on-duty manager when a visitor (or service) opens it. With nobody to take it, the
// organisation's offline_mode decides: chat_offline, or a pending conversation.
func (s *Service) create(ctx context.Context, id auth.Identity, visitorID string) (store.Conversation, error) {
	mu := s.orgLock(id.Org)
	mu.Lock()
	defer mu.Unlock()
	manager, status := id.Subject, store.StatusOpen
	if id.Role != auth.Manager {
		r, err := s.roster(ctx, id.Org, "")
		if err != nil {
			return store.Conversation{}, err
		}
		var ok bool
		if manager, ok = r.pick(s.now()); !ok {
			o, err := s.orgOf(ctx, id.Org)
			switch {
			case err != nil:
				return store.Conversation{}, err
			case o.OfflineMode != store.OfflineQueue:
				return store.Conversation{}, newErr(KindOffline, "chat_offline", "%s", offlineMessage(o))
			}
			manager, status = "", store.StatusPending
		}
	}
	now := s.now()
	c, err := s.store.CreateConversation(ctx, store.Conversation{ID: store.NewID(), OrgID: id.Org, VisitorID: visitorID,
		ManagerID: manager, Status: status, CreatedAt: now, UpdatedAt: now})
	if err != nil && !errors.Is(err, store.ErrConflict) {
		return c, storeErr(err, nil)
	}
	return c, err
}

// orgOf returns an organisation's settings; one never put has the defaults (the zero Org).
func (s *Service) orgOf(ctx context.Context, org string) (store.Org, error) {
	o, err := s.store.Org(ctx, org)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return store.Org{}, storeErr(err, nil)
	}
	return o, nil
}

// offlineMessage is what a visitor is told when nobody can take its conversation.
func offlineMessage(o store.Org) string {
	if o.ChatOfflineMessage != "" {
		return o.ChatOfflineMessage
	}
	return DefaultOfflineMessage
}

// roster is the on-duty managers of an organisation with their loads and registrations, read
// once for a round of assignments made under the organisation's lock, where loads change only
// by the round's own picks.
type roster struct {
	onDuty []string // sorted by id
	loads  map[string]int
	info   map[string]store.Manager
}

// roster reads who of org may be given conversations now, except one manager ("" for none).
func (s *Service) roster(ctx context.Context, org, except string) (*roster, error) {
	r := &roster{onDuty: slices.DeleteFunc(slices.Clone(s.duty.OnDuty(org)), func(m string) bool { return m == except })}
	if len(r.onDuty) == 0 {
		return r, nil
	}
	var err error
	if r.loads, err = s.store.OpenCounts(ctx, org); err != nil {
		return nil, storeErr(err, nil)
	}
	if r.info, err = s.store.Managers(ctx, org, r.onDuty); err != nil {
		return nil, storeErr(err, nil)
	}
	return r, nil
}

// pick chooses the least loaded on-duty manager below its capacity, ties going to the one
// assigned longest ago (never assigned counts as longest) and then by id, so the choice is
// deterministic; it counts the assignment at at, as the store will. false: nobody has room.
func (r *roster) pick(at time.Time) (string, bool) {
	best := ""
	var bestLoad int
	var bestAt time.Time
	for _, m := range r.onDuty {
		info, load := r.info[m], r.loads[m]
		if info.Capacity > 0 && load >= info.Capacity {
			continue
		}
		var last time.Time
		if info.LastAssignedAt != nil {
			last = *info.LastAssignedAt
		}
		if best == "" || load < bestLoad || load == bestLoad && last.Before(bestAt) {
			best, bestLoad, bestAt = m, load, last
		}
	}
	if best == "" {
		return "", false
	}
	r.loads[best]++
	info := r.info[best]
	info.LastAssignedAt = &at
	r.info[best] = info
	return best, true
}

// ContentOf reads the raw JSON `content` of a post, the same for every door. Absent is "",
// which PostMessage refuses as empty; any non-string (a number, an object, null…) is refused
// here, so that what a client sent is never stored as something else.
func ContentOf(raw json.RawMessage) (string, error) {
	if raw == nil {
		return "", nil
	}
	var s string
	if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '"' || json.Unmarshal(t, &s) != nil {
		return "", Invalid("invalid_content", "content must be a JSON string")
	}
	return s, nil
}

// validateContent checks a message body: non-blank, valid UTF-8, at most limit characters.
func validateContent(content string, limit int) error {
	switch {
	case !utf8.ValidString(content):
		return Invalid("invalid_content", "content must be valid UTF-8")
	case strings.TrimSpace(content) == "":
		return Invalid("invalid_content", "content must not be empty")
	case utf8.RuneCountInString(content) > limit:
		return Invalid("content_too_long", "content is longer than %d characters", limit)
	}
	return nil
}

func validClientMessageID(s string) bool {
	if len(s) > MaxClientMessageIDBytes || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// senderOf returns the sender a participant posts as, or an error if id is no participant.
func senderOf(id auth.Identity, c store.Conversation) (store.Sender, error) {
	switch {
	case id.Role == auth.Visitor && id.Subject == c.VisitorID:
		return store.Sender{Type: string(auth.Visitor), ID: id.Subject}, nil
	case id.Role == auth.Manager && id.Subject == c.ManagerID:
		return store.Sender{Type: string(auth.Manager), ID: id.Subject}, nil
	}
	return store.Sender{}, Forbidden("only the conversation's visitor and manager may do this")
}

// PostMessage stores a message of a participant and publishes it on /conversations/<id>.
// A retry with the same client_message_id returns the stored message with created false and
// publishes nothing again.
func (s *Service) PostMessage(ctx context.Context, id auth.Identity, convID, content, clientMessageID string) (store.Message, bool, error) {
	c, err := s.conversation(ctx, id, convID)
	if err != nil {
		return store.Message{}, false, err
	}
	sender, err := senderOf(id, c)
	if err != nil {
		return store.Message{}, false, err
	}
	if !s.posts.Allow(id.Key(), s.now()) {
		return store.Message{}, false, rateLimited("messages from this sender")
	}
	if !validClientMessageID(clientMessageID) {
		return store.Message{}, false, Invalid("invalid_client_message_id", "client_message_id must be at most %d bytes of printable UTF-8", MaxClientMessageIDBytes)
	}
	if err := validateContent(content, s.cfg.ContentChars); err != nil {
		return store.Message{}, false, err
	}
	if !c.Active() {
		return store.Message{}, false, errClosed
	}
	m, created, err := s.store.AppendMessage(ctx, store.Message{ID: store.NewID(), ConversationID: c.ID, OrgID: c.OrgID,
		VisitorID: c.VisitorID, Sender: sender, Content: content, ClientMessageID: clientMessageID, CreatedAt: s.now()})
	if err != nil {
		return store.Message{}, false, storeErr(err, nil)
	}
	if created {
		s.publish(c.OrgID, channel.ConversationOf(c.ID), messageEvent{"message", m})
	}
	return m, created, nil
}

// HistoryQuery is a history request: Count messages (0 = the configured default) from SinceID
// or SinceSeq (inclusive, newest first), or after AfterID or AfterSeq (exclusive, oldest
// first), or the newest. A nil Seq is absent: AfterSeq 0 is meaningful (from the first).
type HistoryQuery struct {
	Count    int
	SinceID  string
	AfterID  string
	SinceSeq *uint64
	AfterSeq *uint64
}

// History returns messages of the conversation's visitor across all its conversations in the
// organisation (README "REST API"). The visitor itself, any manager of the organisation and a service may
// read it.
func (s *Service) History(ctx context.Context, id auth.Identity, convID string, q HistoryQuery) ([]store.Message, error) {
	c, err := s.conversation(ctx, id, convID)
	if err != nil {
		return nil, err
	}
	if id.Role == auth.Visitor && id.Subject != c.VisitorID {
		return nil, Forbidden("a visitor can only read its own history")
	}
	if err := canRead(id, c); err != nil {
		return nil, err
	}
	limit := q.Count
	switch {
	case limit < 0:
		return nil, Invalid("invalid_count", "count must be positive")
	case limit == 0:
		limit = s.cfg.MaxMessagesCount
	default:
		// Clamped, not refused, as a count above the page size always was: old clients that
		// ask for "a lot" keep working.
		limit = min(limit, max(s.cfg.MessagesCountLimit, s.cfg.MaxMessagesCount))
	}
	given := 0
	for _, ok := range []bool{q.SinceID != "", q.AfterID != "", q.SinceSeq != nil, q.AfterSeq != nil} {
		if ok {
			given++
		}
	}
	if given > 1 {
		return nil, Invalid("invalid_params", "give at most one of since_id, after_id, since_seq, after_seq")
	}
	sq := store.HistoryQuery{Limit: limit}
	switch {
	case q.SinceSeq != nil && *q.SinceSeq == 0:
		// Seq starts at 1, and From 0 would silently mean "the newest".
		return nil, Invalid("invalid_since_seq", "since_seq must be 1 or more")
	case q.SinceSeq != nil:
		sq.From = *q.SinceSeq
	case q.AfterSeq != nil:
		sq.Forward, sq.After = true, *q.AfterSeq
	}
	for _, ref := range []struct {
		id    string
		apply func(seq uint64)
	}{
		{q.SinceID, func(seq uint64) { sq.From = seq }},
		{q.AfterID, func(seq uint64) { sq.Forward, sq.After = true, seq }},
	} {
		if ref.id == "" {
			continue
		}
		m, err := s.message(ctx, ref.id)
		if err != nil {
			return nil, err
		}
		if m.OrgID != c.OrgID || m.VisitorID != c.VisitorID {
			return nil, errMessageNotFound
		}
		ref.apply(m.Seq)
	}
	msgs, err := s.store.History(ctx, c.OrgID, c.VisitorID, sq)
	if err != nil {
		return nil, storeErr(err, nil)
	}
	return msgs, nil
}

func (s *Service) message(ctx context.Context, msgID string) (store.Message, error) {
	if !channel.ValidID(msgID) {
		return store.Message{}, errMessageNotFound
	}
	m, err := s.store.Message(ctx, msgID)
	if err != nil {
		return store.Message{}, storeErr(err, errMessageNotFound)
	}
	return m, nil
}

// MarkRead marks a message read; only its recipient may, and it publishes a receipt on
// /conversations/<id>/receipts.
func (s *Service) MarkRead(ctx context.Context, id auth.Identity, convID, msgID string) (store.Message, error) {
	c, err := s.conversation(ctx, id, convID)
	if err != nil {
		return store.Message{}, err
	}
	m, err := s.message(ctx, msgID)
	if err != nil {
		return store.Message{}, err
	}
	if m.ConversationID != c.ID {
		return store.Message{}, errMessageNotFound
	}
	sender, err := senderOf(id, c)
	if err != nil {
		return store.Message{}, err
	}
	if sender.Type == m.Sender.Type {
		return store.Message{}, Forbidden("only the recipient may mark a message read")
	}
	if m.Read {
		return m, nil
	}
	if m, err = s.store.MarkRead(ctx, msgID, s.now()); err != nil {
		return store.Message{}, storeErr(err, errMessageNotFound)
	}
	s.publish(c.OrgID, channel.ConversationSubOf(c.ID, channel.SubReceipts), messageEvent{"receipt", m})
	return m, nil
}

// CloseConversation closes a conversation; its visitor, its manager or a service may. The closed
// conversation is published on /conversations/<id>/status.
func (s *Service) CloseConversation(ctx context.Context, id auth.Identity, convID string) (store.Conversation, error) {
	c, err := s.conversation(ctx, id, convID)
	if err != nil {
		return c, err
	}
	if id.Role != auth.Service {
		if _, err := senderOf(id, c); err != nil {
			return c, err
		}
	}
	if c.Status == store.StatusClosed {
		return c, nil
	}
	return s.close(ctx, c)
}

// close closes the active conversation c, tells its participants on
// /conversations/<id>/status, and, when c held a manager, hands that manager's freed room to a
// pending conversation. Every way of closing goes through here so that no participant misses it.
func (s *Service) close(ctx context.Context, c store.Conversation) (store.Conversation, error) {
	freed := c.Status == store.StatusOpen
	c, err := s.store.CloseConversation(ctx, c.ID, s.now())
	if err != nil {
		return c, storeErr(err, errConversationNotFound)
	}
	s.publish(c.OrgID, channel.ConversationSubOf(c.ID, channel.SubStatus), conversationEvent{"conversation", c})
	if freed {
		s.DutyChanged(c.OrgID) // its manager has room for a pending one
	}
	return c, nil
}

// Notify stores a notification for a visitor and publishes it on /notifications/<visitor>.
// Only a service may.
func (s *Service) Notify(ctx context.Context, id auth.Identity, visitorID string, data json.RawMessage) (store.Notification, error) {
	if id.Role != auth.Service {
		return store.Notification{}, Forbidden("only a service may send notifications")
	}
	if !channel.ValidID(visitorID) {
		return store.Notification{}, invalidID("visitor_id")
	}
	if len(data) == 0 || data[0] != '{' || !json.Valid(data) {
		return store.Notification{}, Invalid("invalid_notification", "notification must be a JSON object")
	}
	n, err := s.store.AddNotification(ctx, store.Notification{ID: store.NewID(), OrgID: id.Org, VisitorID: visitorID, Data: data, CreatedAt: s.now()})
	if err != nil {
		return n, storeErr(err, nil)
	}
	s.publish(id.Org, channel.NotificationsOf(visitorID), notificationEvent{"notification", n.Data})
	return n, nil
}

func (s *Service) requireAdmin(id auth.Identity, org string) error {
	if id.Role != auth.Admin && (id.Role != auth.Service || id.Org != org) {
		return Forbidden("administration needs a service token of organisation %s or an admin token", org)
	}
	if !channel.ValidID(org) {
		return invalidID("org_id")
	}
	return nil
}

// MaxOrgOrigins bounds an organisation's allowed origins.
const MaxOrgOrigins = 100

// OrgSettings are what an administrator sets of an organisation.
type OrgSettings struct {
	Name               string
	ChatOfflineMessage string
	AllowedOrigins     []string
	OfflineMode        string
	ReassignAfter      time.Duration
	Retention          int // days
}

// Bounds of the organisation settings.
const (
	MinReassignAfter = time.Second
	MaxReassignAfter = 30 * 24 * time.Hour
	MaxRetentionDays = 10 * 365
)

// PutOrg sets an organisation's name, offline message, allowed browser origins and desk settings.
func (s *Service) PutOrg(ctx context.Context, id auth.Identity, org string, in OrgSettings) (store.Org, error) {
	if err := s.requireAdmin(id, org); err != nil {
		return store.Org{}, err
	}
	if len(in.AllowedOrigins) > MaxOrgOrigins {
		return store.Org{}, Invalid("invalid_allowed_origins", "at most %d allowed origins", MaxOrgOrigins)
	}
	for _, o := range in.AllowedOrigins {
		if !origin.Valid(o) {
			return store.Org{}, Invalid("invalid_allowed_origins", "%q is not an origin such as https://shop.example", clipString(o))
		}
	}
	for field, v := range map[string]string{"name": in.Name, "chat_offline_message": in.ChatOfflineMessage} {
		if !utf8.ValidString(v) || utf8.RuneCountInString(v) > s.cfg.ContentChars {
			return store.Org{}, Invalid("invalid_"+field, "%s must be valid UTF-8 of at most %d characters", field, s.cfg.ContentChars)
		}
	}
	switch in.OfflineMode {
	case "":
		in.OfflineMode = store.OfflineRefuse
	case store.OfflineRefuse, store.OfflineQueue:
	default:
		return store.Org{}, Invalid("invalid_offline_mode", "offline_mode must be %s or %s", store.OfflineRefuse, store.OfflineQueue)
	}
	if in.ReassignAfter != 0 && (in.ReassignAfter < MinReassignAfter || in.ReassignAfter > MaxReassignAfter) {
		return store.Org{}, Invalid("invalid_reassign_after", "reassign_after must be 0 (off) or %s to %s", MinReassignAfter, MaxReassignAfter)
	}
	if in.Retention < 0 || in.Retention > MaxRetentionDays {
		return store.Org{}, Invalid("invalid_retention", "retention must be 0 (keep forever) to %d days", MaxRetentionDays)
	}
	now := s.now()
	o, err := s.store.PutOrg(ctx, store.Org{ID: org, Name: in.Name, ChatOfflineMessage: in.ChatOfflineMessage, AllowedOrigins: in.AllowedOrigins,
		OfflineMode: in.OfflineMode, ReassignAfter: store.Duration(in.ReassignAfter), Retention: in.Retention, CreatedAt: now, UpdatedAt: now})
	if err == nil && o.OfflineMode == store.OfflineQueue {
		s.DutyChanged(org) // conversations left pending under an earlier queue setting
	}
	return o, storeErr(err, nil)
}

func clipString(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// PutManager registers a manager with a name and a capacity (0 = unlimited).
func (s *Service) PutManager(ctx context.Context, id auth.Identity, org, manager, name string, capacity int) (store.Manager, error) {
	if err := s.requireAdmin(id, org); err != nil {
		return store.Manager{}, err
	}
	switch {
	case !channel.ValidID(manager):
		return store.Manager{}, invalidID("manager_id")
	case capacity < 0:
		return store.Manager{}, Invalid("invalid_capacity", "capacity must be 0 (unlimited) or more")
	case !utf8.ValidString(name) || utf8.RuneCountInString(name) > 200:
		return store.Manager{}, Invalid("invalid_name", "name must be valid UTF-8 of at most 200 characters")
	}
	m, err := s.store.PutManager(ctx, store.Manager{OrgID: org, ID: manager, Name: name, Capacity: capacity, UpdatedAt: s.now()})
	return m, storeErr(err, nil)
}

// Ready reports whether the store answers.
func (s *Service) Ready(ctx context.Context) error { return s.store.Ping(ctx) }
