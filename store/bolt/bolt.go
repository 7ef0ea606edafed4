// Package bolt is the embedded store: a bbolt file in the data folder. It is the default when no
// MongoDB URI is configured, and serves a single node for real.
//
// Every write is one bbolt transaction, and bbolt runs one write transaction at a time, so each
// invariant of the store contract is kept by construction: the active-conversation check and the
// insert happen in the same transaction, an assignment compares and sets in one, a message's Seq
// is taken and written in the same transaction, so messages become visible in Seq order, and
// every change of a conversation moves its index entries in the transaction that makes it.
// Writes go through groupCommit, which commits concurrent writes together with one fsync:
// durable and fast.
package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/convead/chat-server/store"
)

// FileName is the database file inside the data folder.
const FileName = "chat.db"

var (
	bOrgs          = []byte("orgs")          // org id → Org
	bManagers      = []byte("managers")      // org \0 manager id → Manager
	bConversations = []byte("conversations") // conversation id → Conversation
	bOpen          = []byte("open")          // org \0 visitor → active (open or pending) conversation id
	bMessages      = []byte("messages")      // org \0 visitor \0 seq (8 bytes, big endian) → Message
	bMessageIDs    = []byte("message_ids")   // message id → key in messages
	bClientIDs     = []byte("client_ids")    // org \0 visitor \0 sender type \0 sender id \0 client id → message id
	bNotifications = []byte("notifications") // notification id → Notification
	bOrgKeys       = []byte("org_keys")      // org \0 kid → OrgKey
	bActivity      = []byte("activity")      // conversation id → Activity
	bMeta          = []byte("meta")          // "version" → layout version of the file
	// org \0 visitor → the last Seq (8 bytes, big endian) a retention sweep deleted, so that
	// numbering goes on after it when the sweep took the visitor's newest messages.
	bSweptSeqs = []byte("swept_seqs")
	// A visitor's notifications, for DeleteVisitor: org \0 visitor \0 notification id → nothing.
	bNotificationsByVisitor = []byte("notifications_by_visitor")
	allBuckets              = [][]byte{bOrgs, bManagers, bConversations, bOpen, bMessages, bMessageIDs, bClientIDs,
		bNotifications, bOrgKeys, bActivity, bMeta, bSweptSeqs, bNotificationsByVisitor,
		bByCreated, bByStatus, bByManager, bByManagerStatus, bByVisitor, bByClosed}
)

// Conversation indexes: every key ends in created (8 bytes, big endian) \0 id and maps to
// nothing, so a listing is a prefix range walked in either direction from the cursor. Each
// filter combination of store.ConversationQuery has its range (see indexFor); only a visitor's
// range, which is small, is filtered further in memory.
var (
	bByCreated       = []byte("conv_by_created")        // org \0 created \0 id
	bByStatus        = []byte("conv_by_status")         // org \0 status \0 created \0 id
	bByManager       = []byte("conv_by_manager")        // org \0 manager \0 created \0 id (not while pending)
	bByManagerStatus = []byte("conv_by_manager_status") // org \0 manager \0 status \0 created \0 id (not while pending)
	bByVisitor       = []byte("conv_by_visitor")        // org \0 visitor \0 created \0 id
	// Closed conversations by closing time, for DeleteClosedBefore: org \0 closed \0 id.
	bByClosed = []byte("conv_by_closed")
)

// layoutVersion is the version of the file's layout that Open brings older files up to: 2 added
// the conversation and notification indexes, which Open builds once for what 1 stored.
const layoutVersion = "2"

// Store is the bbolt implementation of store.Store.
type Store struct {
	db     *bbolt.DB
	writes groupCommit
	convs  *convCache
}

var _ store.Store = (*Store)(nil)

// Open opens (or creates) the database in dir.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data folder %s: %w", dir, err)
	}
	path := filepath.Join(dir, FileName)
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open %s (is another server using this data folder?): %w", path, err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return migrate(tx)
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("prepare %s: %w", path, err)
	}
	return &Store{db: db, writes: groupCommit{db: db}, convs: newConvCache()}, nil
}

// migrate builds the indexes of layout 2 for conversations and notifications stored before it,
// once: the file then records the version. Writing an index entry twice changes nothing, so a
// migration interrupted by a crash simply runs again in full.
func migrate(tx *bbolt.Tx) error {
	meta := tx.Bucket(bMeta)
	if string(meta.Get([]byte("version"))) == layoutVersion {
		return nil
	}
	err := tx.Bucket(bConversations).ForEach(func(_, v []byte) error {
		var c store.Conversation
		if err := json.Unmarshal(v, &c); err != nil {
			return err
		}
		return putIndexes(tx, c)
	})
	if err != nil {
		return fmt.Errorf("index conversations: %w", err)
	}
	byVisitor := tx.Bucket(bNotificationsByVisitor)
	err = tx.Bucket(bNotifications).ForEach(func(_, v []byte) error {
		var n store.Notification
		if err := json.Unmarshal(v, &n); err != nil {
			return err
		}
		return byVisitor.Put(key(n.OrgID, n.VisitorID, n.ID), nil)
	})
	if err != nil {
		return fmt.Errorf("index notifications: %w", err)
	}
	return meta.Put([]byte("version"), []byte(layoutVersion))
}

// timeKey is t as 8 bytes, big endian, as store.EncodeCursor orders it.
func timeKey(t time.Time) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(t.UnixNano()))
}

// indexEntry is one key of a conversation in one index bucket.
type indexEntry struct {
	bucket []byte
	key    []byte
}

// indexEntries are the index keys of c as it is stored: they change with its status, manager
// and closing time.
func indexEntries(c store.Conversation) []indexEntry {
	tail := append(append(timeKey(c.CreatedAt), 0), c.ID...)
	at := func(parts ...string) []byte { return append(key(append(parts, "")...), tail...) }
	out := []indexEntry{
		{bByCreated, at(c.OrgID)},
		{bByStatus, at(c.OrgID, c.Status)},
		{bByVisitor, at(c.OrgID, c.VisitorID)},
	}
	if c.ManagerID != "" {
		out = append(out, indexEntry{bByManager, at(c.OrgID, c.ManagerID)},
			indexEntry{bByManagerStatus, at(c.OrgID, c.ManagerID, c.Status)})
	}
	if c.Status == store.StatusClosed && c.ClosedAt != nil {
		out = append(out, indexEntry{bByClosed, append(append(key(c.OrgID, ""), timeKey(*c.ClosedAt)...), append([]byte{0}, c.ID...)...)})
	}
	return out
}

func putIndexes(tx *bbolt.Tx, c store.Conversation) error {
	for _, e := range indexEntries(c) {
		if err := tx.Bucket(e.bucket).Put(e.key, nil); err != nil {
			return err
		}
	}
	return nil
}

func deleteIndexes(tx *bbolt.Tx, c store.Conversation) error {
	for _, e := range indexEntries(c) {
		if err := tx.Bucket(e.bucket).Delete(e.key); err != nil {
			return err
		}
	}
	return nil
}

// replaceConversation stores c in place of old, moving its index entries along.
func (s *Store) replaceConversation(tx *bbolt.Tx, old, c store.Conversation) error {
	s.convs.forgetOnCommit(tx, c.ID)
	if err := deleteIndexes(tx, old); err != nil {
		return err
	}
	if err := putIndexes(tx, c); err != nil {
		return err
	}
	return put(tx.Bucket(bConversations), []byte(c.ID), c)
}

func key(parts ...string) []byte {
	var b bytes.Buffer
	for i, p := range parts {
		if i > 0 {
			b.WriteByte(0)
		}
		b.WriteString(p)
	}
	return b.Bytes()
}

func put(b *bbolt.Bucket, k []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(k, data)
}

func get(b *bbolt.Bucket, k []byte, v any) error {
	data := b.Get(k)
	if data == nil {
		return store.ErrNotFound
	}
	return json.Unmarshal(data, v)
}

// update runs fn in a group-committed write transaction. fn may run more than once (a group is
// retried without the function that failed), so it only sets its results from the transaction.
func (s *Store) update(ctx context.Context, fn func(tx *bbolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.writes.do(fn)
}

func (s *Store) view(ctx context.Context, fn func(tx *bbolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.View(fn)
}

// PutOrg implements store.Store.
func (s *Store) PutOrg(ctx context.Context, o store.Org) (store.Org, error) {
	var out store.Org
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bOrgs)
		out = o
		var old store.Org
		if err := get(b, []byte(o.ID), &old); err == nil {
			out.CreatedAt = old.CreatedAt
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return put(b, []byte(o.ID), out)
	})
	if err != nil {
		return store.Org{}, fmt.Errorf("put org %s: %w", o.ID, err)
	}
	return out, nil
}

// Org implements store.Store.
func (s *Store) Org(ctx context.Context, id string) (store.Org, error) {
	var o store.Org
	err := s.view(ctx, func(tx *bbolt.Tx) error { return get(tx.Bucket(bOrgs), []byte(id), &o) })
	if err != nil {
		return store.Org{}, fmt.Errorf("get org %s: %w", id, err)
	}
	return o, nil
}

// Orgs implements store.Store.
func (s *Store) Orgs(ctx context.Context) ([]store.Org, error) {
	var out []store.Org
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		return tx.Bucket(bOrgs).ForEach(func(_, v []byte) error {
			var o store.Org
			if err := json.Unmarshal(v, &o); err != nil {
				return err
			}
			out = append(out, o)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list orgs: %w", err)
	}
	return out, nil
}

// PutOrgKey implements store.Store.
func (s *Store) PutOrgKey(ctx context.Context, k store.OrgKey) (store.OrgKey, error) {
	var out store.OrgKey
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bOrgKeys)
		out = k
		var old store.OrgKey
		if err := get(b, key(k.OrgID, k.Kid), &old); err == nil {
			out.CreatedAt = old.CreatedAt
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return put(b, key(k.OrgID, k.Kid), out)
	})
	if err != nil {
		return store.OrgKey{}, fmt.Errorf("put key %s of org %s: %w", k.Kid, k.OrgID, err)
	}
	return out, nil
}

// OrgKeys implements store.Store.
func (s *Store) OrgKeys(ctx context.Context, org string) ([]store.OrgKey, error) {
	var out []store.OrgKey
	prefix := key(org, "")
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		c := tx.Bucket(bOrgKeys).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var ok store.OrgKey
			if err := json.Unmarshal(v, &ok); err != nil {
				return err
			}
			out = append(out, ok)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list keys of org %s: %w", org, err)
	}
	return out, nil
}

// DeleteOrgKey implements store.Store.
func (s *Store) DeleteOrgKey(ctx context.Context, org, kid string) error {
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bOrgKeys)
		if b.Get(key(org, kid)) == nil {
			return store.ErrNotFound
		}
		return b.Delete(key(org, kid))
	})
	if err != nil {
		return fmt.Errorf("delete key %s of org %s: %w", kid, org, err)
	}
	return nil
}

// PutManager implements store.Store.
func (s *Store) PutManager(ctx context.Context, m store.Manager) (store.Manager, error) {
	var out store.Manager
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bManagers)
		k := key(m.OrgID, m.ID)
		out = m
		out.Registered = true
		var old store.Manager
		if err := get(b, k, &old); err == nil {
			out.LastAssignedAt = old.LastAssignedAt
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return put(b, k, out)
	})
	if err != nil {
		return store.Manager{}, fmt.Errorf("put manager %s/%s: %w", m.OrgID, m.ID, err)
	}
	return out, nil
}

// Managers implements store.Store.
func (s *Store) Managers(ctx context.Context, org string, ids []string) (map[string]store.Manager, error) {
	out := make(map[string]store.Manager, len(ids))
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bManagers)
		for _, id := range ids {
			var m store.Manager
			if err := get(b, key(org, id), &m); err == nil {
				out[id] = m
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("get managers of %s: %w", org, err)
	}
	return out, nil
}

// CreateConversation implements store.Store.
func (s *Store) CreateConversation(ctx context.Context, c store.Conversation) (store.Conversation, error) {
	if err := checkNew(c); err != nil {
		return store.Conversation{}, fmt.Errorf("create conversation for %s/%s: %w", c.OrgID, c.VisitorID, err)
	}
	var conflict bool
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		open := tx.Bucket(bOpen)
		ok := key(c.OrgID, c.VisitorID)
		if conflict = open.Get(ok) != nil; conflict {
			return nil
		}
		if err := open.Put(ok, []byte(c.ID)); err != nil {
			return err
		}
		s.convs.forgetOnCommit(tx, c.ID)
		if err := put(tx.Bucket(bConversations), []byte(c.ID), c); err != nil {
			return err
		}
		if err := putIndexes(tx, c); err != nil {
			return err
		}
		return recordAssignment(tx, c.OrgID, c.ManagerID, c.CreatedAt)
	})
	switch {
	case err != nil:
		return store.Conversation{}, fmt.Errorf("create conversation for %s/%s: %w", c.OrgID, c.VisitorID, err)
	case conflict:
		return store.Conversation{}, fmt.Errorf("create conversation for %s/%s: %w", c.OrgID, c.VisitorID, store.ErrConflict)
	}
	return c, nil
}

// checkNew refuses what CreateConversation must not store: a conversation that is not active,
// or a pending one with a manager.
func checkNew(c store.Conversation) error {
	switch {
	case !c.Active():
		return fmt.Errorf("status %q: a new conversation is open or pending", c.Status)
	case c.Status == store.StatusPending && c.ManagerID != "":
		return fmt.Errorf("a pending conversation has no manager, not %s", c.ManagerID)
	}
	return nil
}

// recordAssignment sets manager's LastAssignedAt to at (nothing for the manager "").
func recordAssignment(tx *bbolt.Tx, org, manager string, at time.Time) error {
	if manager == "" {
		return nil
	}
	mb := tx.Bucket(bManagers)
	mk := key(org, manager)
	m := store.Manager{OrgID: org, ID: manager, UpdatedAt: at}
	if err := get(mb, mk, &m); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	m.LastAssignedAt = &at
	return put(mb, mk, m)
}

// Conversation implements store.Store, from the conversation cache when it can.
func (s *Store) Conversation(ctx context.Context, id string) (store.Conversation, error) {
	cached, gen, ok := s.convs.get(id)
	if ok {
		return cached, nil
	}
	var c store.Conversation
	err := s.view(ctx, func(tx *bbolt.Tx) error { return get(tx.Bucket(bConversations), []byte(id), &c) })
	if err != nil {
		return store.Conversation{}, fmt.Errorf("get conversation %s: %w", id, err)
	}
	s.convs.fill(gen, c)
	return c, nil
}

// OpenConversation implements store.Store.
func (s *Store) OpenConversation(ctx context.Context, org, visitor string) (store.Conversation, error) {
	var c store.Conversation
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		id := tx.Bucket(bOpen).Get(key(org, visitor))
		if id == nil {
			return store.ErrNotFound
		}
		return get(tx.Bucket(bConversations), id, &c)
	})
	if err != nil {
		return store.Conversation{}, fmt.Errorf("get open conversation of %s/%s: %w", org, visitor, err)
	}
	return c, nil
}

// CloseConversation implements store.Store.
func (s *Store) CloseConversation(ctx context.Context, id string, at time.Time) (store.Conversation, error) {
	var c store.Conversation
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bConversations)
		var old store.Conversation
		if err := get(b, []byte(id), &old); err != nil {
			return err
		}
		c = old
		if !c.Active() {
			return nil
		}
		c.Status, c.UpdatedAt, c.ClosedAt = store.StatusClosed, at, &at
		open := tx.Bucket(bOpen)
		ok := key(c.OrgID, c.VisitorID)
		if string(open.Get(ok)) == c.ID {
			if err := open.Delete(ok); err != nil {
				return err
			}
		}
		return s.replaceConversation(tx, old, c)
	})
	if err != nil {
		return store.Conversation{}, fmt.Errorf("close conversation %s: %w", id, err)
	}
	return c, nil
}

// OpenCounts implements store.Store.
func (s *Store) OpenCounts(ctx context.Context, org string) (map[string]int, error) {
	out := map[string]int{}
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		convs := tx.Bucket(bConversations)
		prefix := key(org, "")
		cur := tx.Bucket(bOpen).Cursor()
		for k, v := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = cur.Next() {
			var c store.Conversation
			if err := get(convs, v, &c); err != nil {
				return fmt.Errorf("open conversation %s: %w", v, err)
			}
			if c.Status == store.StatusOpen && c.ManagerID != "" {
				out[c.ManagerID]++
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("count open conversations of %s: %w", org, err)
	}
	return out, nil
}

func messageKey(org, visitor string, seq uint64) []byte {
	k := key(org, visitor, "")
	return binary.BigEndian.AppendUint64(k, seq)
}

func clientKey(m store.Message) []byte {
	return key(m.OrgID, m.VisitorID, m.Sender.Type, m.Sender.ID, m.ClientMessageID)
}

// readMessage decodes the message stored under k and restores its Seq from the key.
func readMessage(b *bbolt.Bucket, k []byte) (store.Message, error) {
	var m store.Message
	if err := get(b, k, &m); err != nil {
		return store.Message{}, err
	}
	m.Seq = binary.BigEndian.Uint64(k[len(k)-8:])
	return m, nil
}

// AppendMessage implements store.Store. The Seq is the last key of the visitor's range plus one,
// taken inside the write transaction: the one-writer-at-a-time rule of bbolt makes it gap-free
// and commit-ordered.
func (s *Store) AppendMessage(ctx context.Context, m store.Message) (store.Message, bool, error) {
	var out store.Message
	var created bool
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		msgs, ids, cids := tx.Bucket(bMessages), tx.Bucket(bMessageIDs), tx.Bucket(bClientIDs)
		created = false
		if m.ClientMessageID != "" {
			if id := cids.Get(clientKey(m)); id != nil {
				var err error
				out, err = readMessage(msgs, ids.Get(id))
				return err
			}
		}
		prefix := key(m.OrgID, m.VisitorID, "")
		var seq uint64 = 1
		cur := msgs.Cursor()
		// The last key of this visitor's range: seek past it, then step back.
		end := append(bytes.Clone(prefix), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
		k, _ := cur.Seek(end)
		if k == nil {
			k, _ = cur.Last()
		} else {
			k, _ = cur.Prev()
		}
		if k != nil && bytes.HasPrefix(k, prefix) && len(k) == len(prefix)+8 {
			seq = binary.BigEndian.Uint64(k[len(prefix):]) + 1
		}
		if swept := tx.Bucket(bSweptSeqs).Get(key(m.OrgID, m.VisitorID)); len(swept) == 8 {
			seq = max(seq, binary.BigEndian.Uint64(swept)+1)
		}
		out = m
		out.Seq = seq
		mk := messageKey(m.OrgID, m.VisitorID, seq)
		data, err := json.Marshal(out)
		if err != nil {
			return err
		}
		if err := msgs.Put(mk, data); err != nil {
			return err
		}
		if err := ids.Put([]byte(m.ID), mk); err != nil {
			return err
		}
		if m.ClientMessageID != "" {
			if err := cids.Put(clientKey(m), []byte(m.ID)); err != nil {
				return err
			}
		}
		created = true
		return appendActivity(tx, m.ConversationID, data, m.Sender.Type == "visitor")
	})
	if err != nil {
		return store.Message{}, false, fmt.Errorf("append message to %s: %w", m.ConversationID, err)
	}
	return out, created, nil
}

// Message implements store.Store.
func (s *Store) Message(ctx context.Context, id string) (store.Message, error) {
	var m store.Message
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		k := tx.Bucket(bMessageIDs).Get([]byte(id))
		if k == nil {
			return store.ErrNotFound
		}
		var err error
		m, err = readMessage(tx.Bucket(bMessages), k)
		return err
	})
	if err != nil {
		return store.Message{}, fmt.Errorf("get message %s: %w", id, err)
	}
	return m, nil
}

// MarkRead implements store.Store.
func (s *Store) MarkRead(ctx context.Context, id string, at time.Time) (store.Message, error) {
	var m store.Message
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		k := tx.Bucket(bMessageIDs).Get([]byte(id))
		if k == nil {
			return store.ErrNotFound
		}
		msgs := tx.Bucket(bMessages)
		var err error
		if m, err = readMessage(msgs, k); err != nil || m.Read {
			return err
		}
		m.Read, m.ReadAt = true, &at
		if err := put(msgs, k, m); err != nil {
			return err
		}
		return updateActivity(tx, m.ConversationID, func(a *store.Activity) {
			// Messages stored before activity was kept were never counted: no count goes below 0.
			if m.Sender.Type == "visitor" {
				a.UnreadByManager = max(a.UnreadByManager-1, 0)
			} else {
				a.UnreadByVisitor = max(a.UnreadByVisitor-1, 0)
			}
			if a.LastMessage != nil && a.LastMessage.ID == m.ID {
				last := m
				a.LastMessage = &last
			}
		})
	})
	if err != nil {
		return store.Message{}, fmt.Errorf("mark message %s read: %w", id, err)
	}
	return m, nil
}

// History implements store.Store.
func (s *Store) History(ctx context.Context, org, visitor string, q store.HistoryQuery) ([]store.Message, error) {
	out := make([]store.Message, 0, min(q.Limit, 256))
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		msgs := tx.Bucket(bMessages)
		prefix := key(org, visitor, "")
		cur := msgs.Cursor()
		var k []byte
		var next func() ([]byte, []byte)
		switch {
		case q.Forward:
			k, _ = cur.Seek(messageKey(org, visitor, q.After+1))
			next = cur.Next
		default:
			from := uint64(1<<64 - 1)
			if q.From > 0 {
				from = q.From
			}
			k, _ = cur.Seek(messageKey(org, visitor, from))
			// Seek lands on the first key >= from; step back unless it is exactly from.
			if k == nil {
				k, _ = cur.Last()
			} else if !bytes.Equal(k, messageKey(org, visitor, from)) {
				k, _ = cur.Prev()
			}
			next = cur.Prev
		}
		for ; k != nil && bytes.HasPrefix(k, prefix) && len(out) < q.Limit; k, _ = next() {
			m, err := readMessage(msgs, k)
			if err != nil {
				return err
			}
			out = append(out, m)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("history of %s/%s: %w", org, visitor, err)
	}
	return out, nil
}

// AddNotification implements store.Store.
func (s *Store) AddNotification(ctx context.Context, n store.Notification) (store.Notification, error) {
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		if err := put(tx.Bucket(bNotifications), []byte(n.ID), n); err != nil {
			return err
		}
		return tx.Bucket(bNotificationsByVisitor).Put(key(n.OrgID, n.VisitorID, n.ID), nil)
	})
	if err != nil {
		return store.Notification{}, fmt.Errorf("add notification for %s/%s: %w", n.OrgID, n.VisitorID, err)
	}
	return n, nil
}

// Ping implements store.Store.
func (s *Store) Ping(ctx context.Context) error {
	return s.view(ctx, func(tx *bbolt.Tx) error {
		if tx.Bucket(bMessages) == nil {
			return fmt.Errorf("%w: bucket %s missing", store.ErrUnavailable, bMessages)
		}
		return nil
	})
}

// Close implements store.Store. bbolt waits for open transactions, which are all short.
func (s *Store) Close(context.Context) error { return s.db.Close() }

// updateActivity applies fn to the activity of a conversation, in the caller's transaction.
func updateActivity(tx *bbolt.Tx, conversation string, fn func(*store.Activity)) error {
	b := tx.Bucket(bActivity)
	var a store.Activity
	if err := get(b, []byte(conversation), &a); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	fn(&a)
	return put(b, []byte(conversation), a)
}

// activityCounts are the counters of a stored store.Activity. Appending a message, the
// hottest write, reads only them and writes the record by hand around the message's bytes as
// stored: the previous last message is neither copied nor decoded, and the new one is not
// re-validated by encoding/json. The record's JSON is that of store.Activity, which reads it.
type activityCounts struct {
	UnreadByVisitor int `json:"unread_by_visitor"`
	UnreadByManager int `json:"unread_by_manager"`
}

// appendActivity records message (as stored, compact JSON) as the conversation's last one and
// counts it as unread by the other side, in the caller's transaction.
func appendActivity(tx *bbolt.Tx, conversation string, message []byte, fromVisitor bool) error {
	b := tx.Bucket(bActivity)
	var a activityCounts
	if data := b.Get([]byte(conversation)); data != nil {
		if err := json.Unmarshal(data, &a); err != nil {
			return err
		}
	}
	if fromVisitor {
		a.UnreadByManager++
	} else {
		a.UnreadByVisitor++
	}
	rec := make([]byte, 0, len(message)+80)
	rec = append(rec, `{"last_message":`...)
	rec = append(rec, message...)
	rec = append(rec, `,"unread_by_visitor":`...)
	rec = strconv.AppendInt(rec, int64(a.UnreadByVisitor), 10)
	rec = append(rec, `,"unread_by_manager":`...)
	rec = strconv.AppendInt(rec, int64(a.UnreadByManager), 10)
	rec = append(rec, '}')
	return b.Put([]byte(conversation), rec)
}

// readItem reads a conversation and its activity (zero for a conversation without messages).
func readItem(tx *bbolt.Tx, id []byte) (store.ConversationItem, error) {
	var it store.ConversationItem
	if err := get(tx.Bucket(bConversations), id, &it.Conversation); err != nil {
		return store.ConversationItem{}, err
	}
	if err := get(tx.Bucket(bActivity), id, &it.Activity); err != nil && !errors.Is(err, store.ErrNotFound) {
		return store.ConversationItem{}, err
	}
	return it, nil
}

// ConversationItem implements store.Store.
func (s *Store) ConversationItem(ctx context.Context, id string) (store.ConversationItem, error) {
	var it store.ConversationItem
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		var err error
		it, err = readItem(tx, []byte(id))
		return err
	})
	if err != nil {
		return store.ConversationItem{}, fmt.Errorf("get conversation item %s: %w", id, err)
	}
	return it, nil
}

// AssignConversation implements store.Store: the compare and the set are one transaction.
func (s *Store) AssignConversation(ctx context.Context, id, from, to string, at time.Time) (store.Conversation, error) {
	var c store.Conversation
	var conflict bool
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		var old store.Conversation
		if err := get(tx.Bucket(bConversations), []byte(id), &old); err != nil {
			return err
		}
		if conflict = !old.Active() || old.ManagerID != from; conflict {
			return nil
		}
		c = old
		c.PreviousManagerIDs = store.PreviousManagers(old.PreviousManagerIDs, from, to)
		c.ManagerID, c.UpdatedAt, c.Status = to, at, store.StatusOpen
		if to == "" {
			c.Status = store.StatusPending
		}
		if err := s.replaceConversation(tx, old, c); err != nil {
			return err
		}
		return recordAssignment(tx, c.OrgID, to, at)
	})
	switch {
	case err != nil:
		return store.Conversation{}, fmt.Errorf("assign conversation %s from %q to %q: %w", id, from, to, err)
	case conflict:
		return store.Conversation{}, fmt.Errorf("assign conversation %s from %q to %q: %w", id, from, to, store.ErrConflict)
	}
	return c, nil
}

// indexFor picks the index range that serves q: its bucket, the key prefix of the range, and
// whether the visitor's range must still be filtered by status and manager.
func indexFor(q store.ConversationQuery) (bucket, prefix []byte, filter bool) {
	switch {
	case q.VisitorID != "":
		return bByVisitor, key(q.OrgID, q.VisitorID, ""), q.Status != "" || q.ManagerID != ""
	case q.ManagerID != "" && q.Status != "":
		return bByManagerStatus, key(q.OrgID, q.ManagerID, q.Status, ""), false
	case q.ManagerID != "":
		return bByManager, key(q.OrgID, q.ManagerID, ""), false
	case q.Status != "":
		return bByStatus, key(q.OrgID, q.Status, ""), false
	}
	return bByCreated, key(q.OrgID, ""), false
}

// ListConversations implements store.Store. It walks one index range (see indexFor) from the
// cursor and reads one more entry than the page to know whether another page follows.
func (s *Store) ListConversations(ctx context.Context, q store.ConversationQuery) ([]store.ConversationItem, string, error) {
	bucket, prefix, filter := indexFor(q)
	var from []byte // the cursor's key in the range: the page starts just past it
	if q.Cursor != "" {
		createdAt, id, err := store.DecodeCursor(q.Cursor)
		if err != nil {
			return nil, "", fmt.Errorf("list conversations of %s: %w", q.OrgID, err)
		}
		from = append(append(append(bytes.Clone(prefix), timeKey(createdAt)...), 0), id...)
	}
	var items []store.ConversationItem
	var next string
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		cur := tx.Bucket(bucket).Cursor()
		var k []byte
		step := cur.Next
		switch {
		case q.Oldest && from == nil:
			k, _ = cur.Seek(prefix)
		case q.Oldest:
			if k, _ = cur.Seek(from); bytes.Equal(k, from) {
				k, _ = cur.Next()
			}
		default:
			step = cur.Prev
			if from == nil {
				from = append(bytes.Clone(prefix), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
			}
			// The last key before from.
			if k, _ = cur.Seek(from); k == nil {
				k, _ = cur.Last()
			} else {
				k, _ = cur.Prev()
			}
		}
		for ; k != nil && bytes.HasPrefix(k, prefix); k, _ = step() {
			if len(k) < len(prefix)+9 {
				return fmt.Errorf("index %s: short key %q", bucket, k)
			}
			it, err := readItem(tx, k[len(prefix)+9:])
			if err != nil {
				return fmt.Errorf("index %s: conversation %s: %w", bucket, k[len(prefix)+9:], err)
			}
			if filter && (q.Status != "" && it.Status != q.Status || q.ManagerID != "" && it.ManagerID != q.ManagerID) {
				continue
			}
			if len(items) == q.Limit {
				next = store.EncodeCursor(items[len(items)-1].Conversation)
				return nil
			}
			items = append(items, it)
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("list conversations of %s: %w", q.OrgID, err)
	}
	return items, next, nil
}

// RegisteredManagers implements store.Store.
func (s *Store) RegisteredManagers(ctx context.Context, org string) ([]store.Manager, error) {
	var out []store.Manager
	prefix := key(org, "")
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		c := tx.Bucket(bManagers).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var m store.Manager
			if err := json.Unmarshal(v, &m); err != nil {
				return err
			}
			if m.Registered {
				out = append(out, m)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list registered managers of %s: %w", org, err)
	}
	return out, nil
}

// DeleteManager implements store.Store.
func (s *Store) DeleteManager(ctx context.Context, org, id string) error {
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bManagers)
		var m store.Manager
		if err := get(b, key(org, id), &m); err != nil {
			return err
		}
		if !m.Registered {
			return store.ErrNotFound
		}
		return b.Delete(key(org, id))
	})
	if err != nil {
		return fmt.Errorf("delete manager %s/%s: %w", org, id, err)
	}
	return nil
}

// keysWithPrefix returns the keys of b that start with prefix. Callers delete them afterwards:
// deleting under a bbolt cursor would make it skip keys.
func keysWithPrefix(b *bbolt.Bucket, prefix []byte) [][]byte {
	var out [][]byte
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		out = append(out, bytes.Clone(k))
	}
	return out
}

// deleteConversation removes a conversation, its index entries and its activity.
func (s *Store) deleteConversation(tx *bbolt.Tx, c store.Conversation) error {
	s.convs.forgetOnCommit(tx, c.ID)
	if err := deleteIndexes(tx, c); err != nil {
		return err
	}
	if err := tx.Bucket(bActivity).Delete([]byte(c.ID)); err != nil {
		return err
	}
	return tx.Bucket(bConversations).Delete([]byte(c.ID))
}

// deleteMessage removes the message stored under k with its message-id and client-id entries.
func deleteMessage(tx *bbolt.Tx, k []byte, m store.Message) error {
	if err := tx.Bucket(bMessageIDs).Delete([]byte(m.ID)); err != nil {
		return err
	}
	if m.ClientMessageID != "" {
		if err := tx.Bucket(bClientIDs).Delete(clientKey(m)); err != nil {
			return err
		}
	}
	return tx.Bucket(bMessages).Delete(k)
}

// DeleteVisitor implements store.Store: one transaction over the visitor's ranges.
func (s *Store) DeleteVisitor(ctx context.Context, org, visitor string) error {
	prefix := key(org, visitor, "")
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		for _, k := range keysWithPrefix(tx.Bucket(bByVisitor), prefix) {
			var c store.Conversation
			if err := get(tx.Bucket(bConversations), k[len(prefix)+9:], &c); err != nil {
				return fmt.Errorf("conversation %s: %w", k[len(prefix)+9:], err)
			}
			if err := s.deleteConversation(tx, c); err != nil {
				return err
			}
		}
		if err := tx.Bucket(bOpen).Delete(key(org, visitor)); err != nil {
			return err
		}
		if err := tx.Bucket(bSweptSeqs).Delete(key(org, visitor)); err != nil {
			return err
		}
		msgs := tx.Bucket(bMessages)
		for _, k := range keysWithPrefix(msgs, prefix) {
			var m store.Message
			if err := get(msgs, k, &m); err != nil {
				return err
			}
			if err := tx.Bucket(bMessageIDs).Delete([]byte(m.ID)); err != nil {
				return err
			}
			if err := msgs.Delete(k); err != nil {
				return err
			}
		}
		// The visitor's client ids are one range of their own.
		cids := tx.Bucket(bClientIDs)
		for _, k := range keysWithPrefix(cids, prefix) {
			if err := cids.Delete(k); err != nil {
				return err
			}
		}
		byVisitor := tx.Bucket(bNotificationsByVisitor)
		for _, k := range keysWithPrefix(byVisitor, prefix) {
			if err := tx.Bucket(bNotifications).Delete(k[len(prefix):]); err != nil {
				return err
			}
			if err := byVisitor.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete visitor %s/%s: %w", org, visitor, err)
	}
	return nil
}

// DeleteClosedBefore implements store.Store. It reads the oldest entries of the closing-time
// index, and deletes each conversation's messages from its visitor's range. The visitor's last
// Seq is kept aside first: the sweep may take the newest messages, and a Seq must never be
// handed out twice, or a client catching up after it would skip the new message.
func (s *Store) DeleteClosedBefore(ctx context.Context, org string, before time.Time, limit int) (int, error) {
	prefix := key(org, "")
	end := append(bytes.Clone(prefix), timeKey(before)...)
	var n int
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		n = 0
		closed := tx.Bucket(bByClosed)
		var ids [][]byte
		c := closed.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.Compare(k, end) < 0 && len(ids) < limit; k, _ = c.Next() {
			ids = append(ids, bytes.Clone(k[len(prefix)+9:]))
		}
		msgs := tx.Bucket(bMessages)
		for _, id := range ids {
			var conv store.Conversation
			if err := get(tx.Bucket(bConversations), id, &conv); err != nil {
				return fmt.Errorf("conversation %s: %w", id, err)
			}
			keys := keysWithPrefix(msgs, key(org, conv.VisitorID, ""))
			if len(keys) > 0 {
				swept := tx.Bucket(bSweptSeqs)
				last := keys[len(keys)-1]
				if old := swept.Get(key(org, conv.VisitorID)); bytes.Compare(old, last[len(last)-8:]) < 0 {
					if err := swept.Put(key(org, conv.VisitorID), bytes.Clone(last[len(last)-8:])); err != nil {
						return err
					}
				}
			}
			for _, k := range keys {
				var m store.Message
				if err := get(msgs, k, &m); err != nil {
					return err
				}
				if m.ConversationID != conv.ID {
					continue
				}
				if err := deleteMessage(tx, k, m); err != nil {
					return err
				}
			}
			if err := s.deleteConversation(tx, conv); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("delete conversations of %s closed before %s: %w", org, before.Format(time.RFC3339), err)
	}
	return n, nil
}
