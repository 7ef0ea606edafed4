// Package bolt is the embedded store: a bbolt file in the data folder. It is the default when no
// MongoDB URI is configured, and serves a single node for real.
//
// Every write is one bbolt transaction, and bbolt runs one write transaction at a time, so each
// invariant of the store contract is kept by construction: the open-conversation check and the
// insert happen in the same transaction, and a message's Seq is taken and written in the same
// transaction, so messages become visible in Seq order. Writes go through DB.Batch, which
// commits concurrent writes together with one fsync (group commit): durable and fast.
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
	bOpen          = []byte("open")          // org \0 visitor → open conversation id
	bMessages      = []byte("messages")      // org \0 visitor \0 seq (8 bytes, big endian) → Message
	bMessageIDs    = []byte("message_ids")   // message id → key in messages
	bClientIDs     = []byte("client_ids")    // org \0 visitor \0 sender type \0 sender id \0 client id → message id
	bNotifications = []byte("notifications") // notification id → Notification
	bOrgKeys       = []byte("org_keys")      // org \0 kid → OrgKey
	allBuckets     = [][]byte{bOrgs, bManagers, bConversations, bOpen, bMessages, bMessageIDs, bClientIDs, bNotifications, bOrgKeys}
)

// Store is the bbolt implementation of store.Store.
type Store struct {
	db *bbolt.DB
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
	// Concurrent posts wait at most this long to share one commit.
	db.MaxBatchDelay = 2 * time.Millisecond
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("create buckets in %s: %w", path, err)
	}
	return &Store{db: db}, nil
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

// update runs fn in a group-committed write transaction. fn may run more than once (bbolt retries
// a batch without the function that failed), so it only sets its results from the transaction.
func (s *Store) update(ctx context.Context, fn func(tx *bbolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.Batch(fn)
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
		if err := put(tx.Bucket(bConversations), []byte(c.ID), c); err != nil {
			return err
		}
		if c.ManagerID == "" {
			return nil
		}
		mb := tx.Bucket(bManagers)
		mk := key(c.OrgID, c.ManagerID)
		m := store.Manager{OrgID: c.OrgID, ID: c.ManagerID, UpdatedAt: c.CreatedAt}
		if err := get(mb, mk, &m); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		at := c.CreatedAt
		m.LastAssignedAt = &at
		return put(mb, mk, m)
	})
	switch {
	case err != nil:
		return store.Conversation{}, fmt.Errorf("create conversation for %s/%s: %w", c.OrgID, c.VisitorID, err)
	case conflict:
		return store.Conversation{}, fmt.Errorf("create conversation for %s/%s: %w", c.OrgID, c.VisitorID, store.ErrConflict)
	}
	return c, nil
}

// Conversation implements store.Store.
func (s *Store) Conversation(ctx context.Context, id string) (store.Conversation, error) {
	var c store.Conversation
	err := s.view(ctx, func(tx *bbolt.Tx) error { return get(tx.Bucket(bConversations), []byte(id), &c) })
	if err != nil {
		return store.Conversation{}, fmt.Errorf("get conversation %s: %w", id, err)
	}
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
		c = store.Conversation{}
		if err := get(b, []byte(id), &c); err != nil {
			return err
		}
		if c.Status == store.StatusClosed {
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
		return put(b, []byte(id), c)
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
			if c.ManagerID != "" {
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
		out = m
		out.Seq = seq
		mk := messageKey(m.OrgID, m.VisitorID, seq)
		if err := put(msgs, mk, out); err != nil {
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
		return nil
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
		return put(msgs, k, m)
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
	err := s.update(ctx, func(tx *bbolt.Tx) error { return put(tx.Bucket(bNotifications), []byte(n.ID), n) })
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
