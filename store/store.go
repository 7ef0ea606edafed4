// Package store defines the chat's data model and the storage contract every backend fulfils.
//
// Two backends implement Store: store/bolt (embedded, the default) and store/mongo (production).
// Both pass the same conformance suite in store/storetest. The contract is written so that each
// invariant can be kept by one atomic operation of the backend (a bbolt write transaction, or a
// MongoDB single-document write guarded by a unique index), never by a read-then-write race;
// docs/design.md "Ordering and durability" says which invariant lives where.
package store

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Errors every backend returns, possibly wrapped.
var (
	// ErrNotFound: no such organisation, conversation or message.
	ErrNotFound = errors.New("not found")
	// ErrConflict: CreateConversation found an active conversation of the same visitor, or
	// AssignConversation found the conversation no longer as the caller saw it.
	ErrConflict = errors.New("conflict")
	// ErrUnavailable: the backend could not be reached or did not answer in time.
	ErrUnavailable = errors.New("store unavailable")
)

// Conversation statuses. Open and pending conversations are active: a visitor has at most one
// active conversation per organisation. A pending one waits for a manager (ManagerID "").
const (
	StatusOpen    = "open"
	StatusPending = "pending"
	StatusClosed  = "closed"
)

// Offline modes of an organisation: what opening a conversation does when no manager can take it.
const (
	OfflineRefuse = "refuse" // chat_offline, as the original server (the default, also for "")
	OfflineQueue  = "queue"  // a pending conversation, assigned when a manager comes on duty
)

// Org is an organisation (a shop) and its chat settings.
type Org struct {
	ID                 string `json:"id"`
	Name               string `json:"name"`
	ChatOfflineMessage string `json:"chat_offline_message"`
	// AllowedOrigins are browser origins (the shop's sites) allowed for this organisation's
	// visitors and managers, on top of the server-wide list.
	AllowedOrigins []string `json:"allowed_origins"`
	// OfflineMode is OfflineRefuse ("" means the same) or OfflineQueue.
	OfflineMode string `json:"offline_mode"`
	// ReassignAfter: a manager off duty that long loses its open conversations (0: never).
	ReassignAfter Duration `json:"reassign_after"`
	// Retention, in days: closed conversations older than that are deleted (0: kept forever).
	Retention int       `json:"retention"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Duration is a time.Duration that reads and writes JSON as text such as "15m" (0 is "0s").
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration is a string such as \"15m\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Manager is what the store knows of a manager: its registration (name and capacity, set by an
// administrator) and when it was last given a conversation. A manager who was never registered
// has Registered false and unlimited capacity.
type Manager struct {
	OrgID          string     `json:"org_id"`
	ID             string     `json:"id"`
	Name           string     `json:"name"`
	Capacity       int        `json:"capacity"` // open conversations at most; 0 = unlimited
	Registered     bool       `json:"registered"`
	LastAssignedAt *time.Time `json:"last_assigned_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
}

// OrgKey is a key that verifies an organisation's tokens, named by the kid the tokens carry.
// Secret (HS256) is key material: the API never returns it and logs never show it; PublicKey
// (RS256, ES256) is a PEM public key.
type OrgKey struct {
	OrgID     string    `json:"org_id"`
	Kid       string    `json:"kid"`
	Alg       string    `json:"alg"`
	Secret    []byte    `json:"secret,omitempty"`
	PublicKey string    `json:"public_key,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// String never shows the key material, so that an OrgKey in a log line or an error leaks nothing.
func (k OrgKey) String() string { return "orgkey:" + k.OrgID + "/" + k.Kid + "/" + k.Alg }

// Conversation is one chat between a visitor and a manager of an organisation.
type Conversation struct {
	ID        string `json:"id"`
	OrgID     string `json:"org_id"`
	VisitorID string `json:"visitor_id"`
	ManagerID string `json:"manager_id"` // "" while pending
	Status    string `json:"status"`
	// PreviousManagerIDs are the managers the conversation was taken from (transfer,
	// reassignment, deletion), oldest first, without the current one: they may no longer read it.
	PreviousManagerIDs []string   `json:"previous_manager_ids,omitempty"`
	CreatedAt          time.Time  `json:"created_at"`
	UpdatedAt          time.Time  `json:"updated_at"`
	ClosedAt           *time.Time `json:"closed_at,omitempty"`
}

// PreviousManagers is the list of previous managers once a conversation goes from one manager
// to another (AssignConversation): from joins it (once), to leaves it.
func PreviousManagers(previous []string, from, to string) []string {
	out := make([]string, 0, len(previous)+1)
	for _, p := range previous {
		if p != to && p != from {
			out = append(out, p)
		}
	}
	if from != "" && from != to {
		out = append(out, from)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// Active reports whether the conversation is open or pending.
func (c Conversation) Active() bool { return c.Status == StatusOpen || c.Status == StatusPending }

// Activity is what the stores keep up to date on every message of a conversation, so that a
// listing reads it with the conversation: its newest message, and how many messages each side
// has not marked read yet (UnreadByVisitor counts the manager's messages, UnreadByManager the
// visitor's).
type Activity struct {
	LastMessage     *Message `json:"last_message"`
	UnreadByVisitor int      `json:"unread_by_visitor"`
	UnreadByManager int      `json:"unread_by_manager"`
}

// ConversationItem is a conversation with its activity.
type ConversationItem struct {
	Conversation
	Activity Activity
}

// ConversationQuery selects conversations of one organisation. Empty filters match all.
// Items come by (CreatedAt, ID), newest first, or oldest first with Oldest. Cursor is "" for
// the first page, else the next cursor of the previous page: pages stay stable while
// conversations are added (they sort before the cursor, newest first, or after the last
// page, oldest first). Limit is always positive.
type ConversationQuery struct {
	OrgID     string
	Status    string
	ManagerID string
	VisitorID string
	Oldest    bool
	Limit     int
	Cursor    string
}

// ErrBadCursor: a cursor that no page returned.
var ErrBadCursor = errors.New("invalid cursor")

// EncodeCursor names the position after c in a listing; both stores use it.
func EncodeCursor(c Conversation) string {
	b := binary.BigEndian.AppendUint64(nil, uint64(c.CreatedAt.UnixNano()))
	return base64.RawURLEncoding.EncodeToString(append(b, c.ID...))
}

// DecodeCursor reads a cursor of EncodeCursor, or returns ErrBadCursor.
func DecodeCursor(cursor string) (createdAt time.Time, id string, err error) {
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil || len(b) < 9 || len(b) > 8+64 {
		return time.Time{}, "", fmt.Errorf("%w: %q", ErrBadCursor, clip(cursor))
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(b[:8]))).UTC(), string(b[8:]), nil
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// Sender says who wrote a message: Type is "visitor" or "manager".
type Sender struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// Message is one chat message. Seq orders the messages of one visitor in one organisation
// (across all its conversations); see AppendMessage for the guarantee it carries.
type Message struct {
	ID              string     `json:"id"`
	ConversationID  string     `json:"conversation_id"`
	OrgID           string     `json:"org_id"`
	VisitorID       string     `json:"visitor_id"`
	Seq             uint64     `json:"seq"`
	Sender          Sender     `json:"sender"`
	Content         string     `json:"content"`
	ClientMessageID string     `json:"client_message_id,omitempty"`
	Read            bool       `json:"read"`
	ReadAt          *time.Time `json:"read_at"`
	CreatedAt       time.Time  `json:"created_at"`
}

// Notification is a payload sent to a visitor's notification channel, kept for the record.
type Notification struct {
	ID        string          `json:"id"`
	OrgID     string          `json:"org_id"`
	VisitorID string          `json:"visitor_id"`
	Data      json.RawMessage `json:"notification"`
	CreatedAt time.Time       `json:"created_at"`
}

// HistoryQuery selects messages of one visitor by sequence number.
//
//   - Forward: messages with Seq > After, oldest first (catch-up after a reconnect; After 0
//     starts at the first message);
//   - else, From > 0: messages with Seq <= From, newest first (history from a given message);
//   - else: the newest messages, newest first.
//
// Limit is always positive.
type HistoryQuery struct {
	Forward bool
	After   uint64
	From    uint64
	Limit   int
}

// Store is the storage contract of the chat domain. Every method honours ctx; a backend that
// cannot be reached returns an error wrapping ErrUnavailable.
type Store interface {
	// PutOrg creates or updates an organisation's name and offline message.
	PutOrg(ctx context.Context, o Org) (Org, error)
	// Org returns an organisation, or ErrNotFound.
	Org(ctx context.Context, id string) (Org, error)
	// Orgs returns every organisation.
	Orgs(ctx context.Context) ([]Org, error)

	// PutOrgKey creates or replaces the key (OrgID, Kid); a replaced key keeps its CreatedAt.
	PutOrgKey(ctx context.Context, k OrgKey) (OrgKey, error)
	// OrgKeys returns every key of org, by kid; none when it has no keys.
	OrgKeys(ctx context.Context, org string) ([]OrgKey, error)
	// DeleteOrgKey removes a key of org, or returns ErrNotFound.
	DeleteOrgKey(ctx context.Context, org, kid string) error

	// PutManager registers a manager, or updates its name and capacity.
	PutManager(ctx context.Context, m Manager) (Manager, error)
	// Managers returns what the store knows of the given managers of org; unknown ids are absent.
	Managers(ctx context.Context, org string, ids []string) (map[string]Manager, error)
	// RegisteredManagers returns the registered managers of org, by id.
	RegisteredManagers(ctx context.Context, org string) ([]Manager, error)
	// DeleteManager removes a manager's registration (and its LastAssignedAt), or returns
	// ErrNotFound when it has none. Its conversations are not touched.
	DeleteManager(ctx context.Context, org, id string) error

	// CreateConversation stores c (status open, or pending with no manager) unless the visitor
	// already has an active conversation in the organisation, in which case it returns
	// ErrConflict: at most one active conversation per visitor and organisation, also under
	// concurrent calls. When c has a manager, the manager's LastAssignedAt becomes c.CreatedAt.
	CreateConversation(ctx context.Context, c Conversation) (Conversation, error)
	// Conversation returns a conversation by id, or ErrNotFound.
	Conversation(ctx context.Context, id string) (Conversation, error)
	// ConversationItem returns a conversation with its activity, or ErrNotFound.
	ConversationItem(ctx context.Context, id string) (ConversationItem, error)
	// OpenConversation returns the visitor's active (open or pending) conversation in org, or
	// ErrNotFound.
	OpenConversation(ctx context.Context, org, visitor string) (Conversation, error)
	// CloseConversation closes a conversation (a no-op when already closed) and returns it.
	CloseConversation(ctx context.Context, id string, at time.Time) (Conversation, error)
	// AssignConversation gives an active conversation whose manager is still from ("" for a
	// pending one) to the manager to ("" makes it pending), in one atomic step; otherwise
	// (closed, or another manager by now) it returns ErrConflict and changes nothing. A
	// non-empty from joins PreviousManagerIDs, to leaves it; status becomes open (pending when
	// to is ""); UpdatedAt and the new manager's LastAssignedAt become at.
	AssignConversation(ctx context.Context, id, from, to string, at time.Time) (Conversation, error)
	// ListConversations returns a page of conversations with their activity, and the cursor of
	// the next page ("" after the last). It reads an index, never a scan of the organisation:
	// its cost follows the page, not the number of conversations.
	ListConversations(ctx context.Context, q ConversationQuery) (items []ConversationItem, next string, err error)
	// OpenCounts returns the number of open conversations per manager of org.
	OpenCounts(ctx context.Context, org string) (map[string]int, error)

	// AppendMessage stores m and returns it with its Seq, and created true; the conversation's
	// Activity then has m as its last message and one more unread for the other side. When
	// m.ClientMessageID is set and the same sender already stored a message with it for this
	// visitor, the stored message is returned with created false and nothing is written.
	//
	// Seq is 1, 2, 3, … per (OrgID, VisitorID), without gaps, and a message with Seq n becomes
	// visible to readers only after every message with a smaller Seq is visible. So a reader that
	// has seen everything up to n and asks for Seq > n can never skip a message that a
	// concurrent writer commits later: the later message gets a larger Seq.
	AppendMessage(ctx context.Context, m Message) (msg Message, created bool, err error)
	// Message returns a message by id, or ErrNotFound.
	Message(ctx context.Context, id string) (Message, error)
	// MarkRead sets a message's read flag and read time once (one less unread for its
	// recipient's side in the conversation's Activity); later calls change nothing.
	MarkRead(ctx context.Context, id string, at time.Time) (Message, error)
	// History returns messages of one visitor of org as q selects.
	History(ctx context.Context, org, visitor string, q HistoryQuery) ([]Message, error)

	// AddNotification stores a notification.
	AddNotification(ctx context.Context, n Notification) (Notification, error)

	// DeleteVisitor removes everything stored of a visitor of org: its conversations (with
	// their activity), messages, notifications and message numbering. Deleting a visitor that
	// has nothing stored is no error.
	DeleteVisitor(ctx context.Context, org, visitor string) error
	// DeleteClosedBefore deletes at most limit conversations of org closed before the given
	// time, with their messages, and returns how many it deleted: a sweep calls it again
	// while it returns limit. Several nodes may call it at once.
	DeleteClosedBefore(ctx context.Context, org string, before time.Time, limit int) (int, error)

	// Ping checks that the backend answers.
	Ping(ctx context.Context) error
	// Close releases the backend; it waits for nothing that ctx does not allow.
	Close(ctx context.Context) error
}

// NewID returns a new id of 20 characters of [A-Za-z0-9_-]: the creation time in
// milliseconds (48 bits), then 72 random bits, in an alphabet of ascending ASCII order, so
// that ids sort by creation time as strings. A store's index of ids then grows at its end:
// with random ids, every message posted dirtied its own page of bbolt's id index, and
// posts stored per second rose by a third without (BenchmarkAppendMessage). Like MongoDB's
// ObjectIDs, ids tell when they were made; they were never secrets (every read is checked
// against its caller).
func NewID() string { return newIDAt(time.Now()) }

func newIDAt(t time.Time) string {
	var b [15]byte
	ms := uint64(t.UnixMilli())
	for i := 5; i >= 0; i-- {
		b[i] = byte(ms)
		ms >>= 8
	}
	_, _ = rand.Read(b[6:]) // crypto/rand.Read never fails on supported platforms.
	return idEncoding.EncodeToString(b[:])
}

// idEncoding is base64 with the URL-safe characters in ASCII order.
var idEncoding = base64.NewEncoding("-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz").WithPadding(base64.NoPadding)
