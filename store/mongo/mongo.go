// Package mongo is the production store: MongoDB through the official v2 driver.
//
// Every invariant of the store contract is kept by one single-document write guarded by a unique
// index, so it holds on a standalone server, a replica set and a sharded cluster alike, and
// needs no transaction:
//
//   - one open conversation per visitor: conversations carry `open_key` ("org:visitor") only
//     while open, under a unique sparse index, so a second insert fails with a duplicate key;
//   - idempotent posts: messages with a client_message_id carry `client_key`, unique and sparse;
//   - gap-free, commit-ordered Seq: (org_id, visitor_id, seq) is unique, and a writer inserts
//     seq n only after it has observed n-1 stored (see AppendMessage), so no reader can see n
//     while n-1 is still missing.
package mongo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"

	"github.com/convead/chat-server/store"
)

// maxSeqProbes bounds the inserts AppendMessage tries when its Seq hint is stale.
const maxSeqProbes = 10000

// Store is the MongoDB implementation of store.Store.
type Store struct {
	client        *mongo.Client
	timeout       time.Duration
	orgs          *mongo.Collection
	managers      *mongo.Collection
	conversations *mongo.Collection
	messages      *mongo.Collection
	seqs          *mongo.Collection
	notifications *mongo.Collection
	orgKeys       *mongo.Collection
}

var _ store.Store = (*Store)(nil)

// Open connects to uri, uses database db and creates the indexes. timeout bounds every call.
func Open(ctx context.Context, uri, db string, timeout time.Duration) (*Store, error) {
	client, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(timeout))
	if err != nil {
		return nil, fmt.Errorf("connect to MongoDB: %w", err)
	}
	d := client.Database(db)
	s := &Store{
		client:        client,
		timeout:       timeout,
		orgs:          d.Collection("orgs"),
		managers:      d.Collection("managers"),
		conversations: d.Collection("conversations"),
		messages:      d.Collection("messages"),
		seqs:          d.Collection("visitor_seqs"),
		notifications: d.Collection("notifications"),
		orgKeys:       d.Collection("org_keys"),
	}
	// A store that is briefly unreachable as the server starts (a restart of both, a failover)
	// gets a few more chances before the server gives up.
	for attempt := 1; ; attempt++ {
		err = s.createIndexes(ctx)
		if err == nil {
			return s, nil
		}
		if !errors.Is(err, store.ErrUnavailable) || attempt == openAttempts {
			_ = client.Disconnect(context.Background())
			return nil, err
		}
		select {
		case <-ctx.Done():
			_ = client.Disconnect(context.Background())
			return nil, err
		case <-time.After(time.Duration(attempt) * 500 * time.Millisecond):
		}
	}
}

// openAttempts bounds the tries of Open while the store is unavailable.
const openAttempts = 5

func (s *Store) createIndexes(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	type index struct {
		name   string
		keys   bson.D
		unique bool
		sparse bool
	}
	sets := []struct {
		coll    *mongo.Collection
		indexes []index
	}{
		{s.conversations, []index{
			{"one_open_per_visitor", bson.D{{Key: "open_key", Value: 1}}, true, true},
			{"org_status", bson.D{{Key: "org_id", Value: 1}, {Key: "status", Value: 1}}, false, false},
		}},
		{s.messages, []index{
			{"visitor_seq", bson.D{{Key: "org_id", Value: 1}, {Key: "visitor_id", Value: 1}, {Key: "seq", Value: 1}}, true, false},
			{"idempotent_post", bson.D{{Key: "client_key", Value: 1}}, true, true},
		}},
		{s.orgKeys, []index{
			{"org_keys_of_org", bson.D{{Key: "org_id", Value: 1}}, false, false},
		}},
	}
	for _, set := range sets {
		// Only the missing ones: a restart then needs no DDL, which a busy server may delay.
		specs, err := set.coll.Indexes().ListSpecifications(ctx)
		if err != nil {
			return wrap(fmt.Sprintf("list indexes of %s", set.coll.Name()), err)
		}
		have := map[string]bool{}
		for _, spec := range specs {
			have[spec.Name] = true
		}
		var missing []mongo.IndexModel
		for _, ix := range set.indexes {
			if !have[ix.name] {
				opts := options.Index().SetName(ix.name).SetUnique(ix.unique)
				if ix.sparse {
					opts.SetSparse(true)
				}
				missing = append(missing, mongo.IndexModel{Keys: ix.keys, Options: opts})
			}
		}
		if len(missing) == 0 {
			continue
		}
		if _, err := set.coll.Indexes().CreateMany(ctx, missing); err != nil {
			return wrap(fmt.Sprintf("create indexes on %s", set.coll.Name()), err)
		}
	}
	return nil
}

// wrap adds what failed, and marks errors of reachability as store.ErrUnavailable.
func wrap(op string, err error) error {
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		return fmt.Errorf("%s: %w", op, store.ErrNotFound)
	case mongo.IsNetworkError(err), mongo.IsTimeout(err), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, mongo.ErrClientDisconnected), retryable(err):
		return fmt.Errorf("%s: %w: %w", op, store.ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// retryable reports errors the driver marks as worth retrying: a connection pool cleared after
// a lost server, for one, which carries no network label of its own.
func retryable(err error) bool {
	var r interface{ Retryable() bool }
	return errors.As(err, &r) && r.Retryable()
}

func (s *Store) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

func utc(t time.Time) time.Time { return t.UTC() }

func utcp(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

type orgDoc struct {
	ID                 string    `bson:"_id"`
	Name               string    `bson:"name"`
	ChatOfflineMessage string    `bson:"chat_offline_message"`
	AllowedOrigins     []string  `bson:"allowed_origins"`
	CreatedAt          time.Time `bson:"created_at"`
	UpdatedAt          time.Time `bson:"updated_at"`
}

func (d orgDoc) org() store.Org {
	return store.Org{ID: d.ID, Name: d.Name, ChatOfflineMessage: d.ChatOfflineMessage, AllowedOrigins: d.AllowedOrigins,
		CreatedAt: utc(d.CreatedAt), UpdatedAt: utc(d.UpdatedAt)}
}

// upsert runs an upserting update, retrying once on the duplicate key error that two
// concurrent upserts of one new document can raise.
func upsert(ctx context.Context, c *mongo.Collection, filter, update any) error {
	_, err := c.UpdateOne(ctx, filter, update, options.UpdateOne().SetUpsert(true))
	if mongo.IsDuplicateKeyError(err) {
		_, err = c.UpdateOne(ctx, filter, update, options.UpdateOne().SetUpsert(true))
	}
	return err
}

// PutOrg implements store.Store.
func (s *Store) PutOrg(ctx context.Context, o store.Org) (store.Org, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	op := "put org " + o.ID
	err := upsert(ctx, s.orgs, bson.D{{Key: "_id", Value: o.ID}}, bson.D{
		{Key: "$set", Value: bson.D{{Key: "name", Value: o.Name}, {Key: "chat_offline_message", Value: o.ChatOfflineMessage},
			{Key: "allowed_origins", Value: o.AllowedOrigins}, {Key: "updated_at", Value: o.UpdatedAt}}},
		{Key: "$setOnInsert", Value: bson.D{{Key: "created_at", Value: o.CreatedAt}}},
	})
	if err != nil {
		return store.Org{}, wrap(op, err)
	}
	var d orgDoc
	if err := s.orgs.FindOne(ctx, bson.D{{Key: "_id", Value: o.ID}}).Decode(&d); err != nil {
		return store.Org{}, wrap(op, err)
	}
	return d.org(), nil
}

// Orgs implements store.Store.
func (s *Store) Orgs(ctx context.Context) ([]store.Org, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	cur, err := s.orgs.Find(ctx, bson.D{})
	if err != nil {
		return nil, wrap("list orgs", err)
	}
	var docs []orgDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, wrap("list orgs", err)
	}
	out := make([]store.Org, len(docs))
	for i, d := range docs {
		out[i] = d.org()
	}
	return out, nil
}

// Org implements store.Store.
func (s *Store) Org(ctx context.Context, id string) (store.Org, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	var d orgDoc
	if err := s.orgs.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&d); err != nil {
		return store.Org{}, wrap("get org "+id, err)
	}
	return d.org(), nil
}

type orgKeyDoc struct {
	ID        string    `bson:"_id"` // org:kid
	OrgID     string    `bson:"org_id"`
	Kid       string    `bson:"kid"`
	Alg       string    `bson:"alg"`
	Secret    []byte    `bson:"secret,omitempty"`
	PublicKey string    `bson:"public_key,omitempty"`
	CreatedAt time.Time `bson:"created_at"`
}

func (d orgKeyDoc) orgKey() store.OrgKey {
	return store.OrgKey{OrgID: d.OrgID, Kid: d.Kid, Alg: d.Alg, Secret: d.Secret, PublicKey: d.PublicKey, CreatedAt: utc(d.CreatedAt)}
}

// PutOrgKey implements store.Store.
func (s *Store) PutOrgKey(ctx context.Context, k store.OrgKey) (store.OrgKey, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	op := fmt.Sprintf("put key %s of org %s", k.Kid, k.OrgID)
	id := pairKey(k.OrgID, k.Kid)
	err := upsert(ctx, s.orgKeys, bson.D{{Key: "_id", Value: id}}, bson.D{
		{Key: "$set", Value: bson.D{{Key: "org_id", Value: k.OrgID}, {Key: "kid", Value: k.Kid}, {Key: "alg", Value: k.Alg},
			{Key: "secret", Value: k.Secret}, {Key: "public_key", Value: k.PublicKey}}},
		{Key: "$setOnInsert", Value: bson.D{{Key: "created_at", Value: k.CreatedAt}}},
	})
	if err != nil {
		return store.OrgKey{}, wrap(op, err)
	}
	var d orgKeyDoc
	if err := s.orgKeys.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&d); err != nil {
		return store.OrgKey{}, wrap(op, err)
	}
	return d.orgKey(), nil
}

// OrgKeys implements store.Store.
func (s *Store) OrgKeys(ctx context.Context, org string) ([]store.OrgKey, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	op := "list keys of org " + org
	cur, err := s.orgKeys.Find(ctx, bson.D{{Key: "org_id", Value: org}}, options.Find().SetSort(bson.D{{Key: "kid", Value: 1}}))
	if err != nil {
		return nil, wrap(op, err)
	}
	var docs []orgKeyDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, wrap(op, err)
	}
	out := make([]store.OrgKey, len(docs))
	for i, d := range docs {
		out[i] = d.orgKey()
	}
	return out, nil
}

// DeleteOrgKey implements store.Store.
func (s *Store) DeleteOrgKey(ctx context.Context, org, kid string) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	op := fmt.Sprintf("delete key %s of org %s", kid, org)
	res, err := s.orgKeys.DeleteOne(ctx, bson.D{{Key: "_id", Value: pairKey(org, kid)}})
	if err != nil {
		return wrap(op, err)
	}
	if res.DeletedCount == 0 {
		return fmt.Errorf("%s: %w", op, store.ErrNotFound)
	}
	return nil
}

type managerDoc struct {
	ID             string     `bson:"_id"`
	OrgID          string     `bson:"org_id"`
	ManagerID      string     `bson:"manager_id"`
	Name           string     `bson:"name"`
	Capacity       int        `bson:"capacity"`
	Registered     bool       `bson:"registered"`
	LastAssignedAt *time.Time `bson:"last_assigned_at,omitempty"`
	UpdatedAt      time.Time  `bson:"updated_at"`
}

func (d managerDoc) manager() store.Manager {
	return store.Manager{OrgID: d.OrgID, ID: d.ManagerID, Name: d.Name, Capacity: d.Capacity, Registered: d.Registered,
		LastAssignedAt: utcp(d.LastAssignedAt), UpdatedAt: utc(d.UpdatedAt)}
}

// pairKey joins two ids; ids never contain ':', so the key is unambiguous.
func pairKey(a, b string) string { return a + ":" + b }

// PutManager implements store.Store.
func (s *Store) PutManager(ctx context.Context, m store.Manager) (store.Manager, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	op := fmt.Sprintf("put manager %s/%s", m.OrgID, m.ID)
	k := pairKey(m.OrgID, m.ID)
	err := upsert(ctx, s.managers, bson.D{{Key: "_id", Value: k}}, bson.D{{Key: "$set", Value: bson.D{
		{Key: "org_id", Value: m.OrgID}, {Key: "manager_id", Value: m.ID}, {Key: "name", Value: m.Name},
		{Key: "capacity", Value: m.Capacity}, {Key: "registered", Value: true}, {Key: "updated_at", Value: m.UpdatedAt},
	}}})
	if err != nil {
		return store.Manager{}, wrap(op, err)
	}
	var d managerDoc
	if err := s.managers.FindOne(ctx, bson.D{{Key: "_id", Value: k}}).Decode(&d); err != nil {
		return store.Manager{}, wrap(op, err)
	}
	return d.manager(), nil
}

// Managers implements store.Store.
func (s *Store) Managers(ctx context.Context, org string, ids []string) (map[string]store.Manager, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	op := "get managers of " + org
	out := make(map[string]store.Manager, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = pairKey(org, id)
	}
	cur, err := s.managers.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: keys}}}})
	if err != nil {
		return nil, wrap(op, err)
	}
	var docs []managerDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, wrap(op, err)
	}
	for _, d := range docs {
		out[d.ManagerID] = d.manager()
	}
	return out, nil
}

type conversationDoc struct {
	ID        string     `bson:"_id"`
	OrgID     string     `bson:"org_id"`
	VisitorID string     `bson:"visitor_id"`
	ManagerID string     `bson:"manager_id"`
	Status    string     `bson:"status"`
	OpenKey   string     `bson:"open_key,omitempty"` // set only while open: see the package comment
	CreatedAt time.Time  `bson:"created_at"`
	UpdatedAt time.Time  `bson:"updated_at"`
	ClosedAt  *time.Time `bson:"closed_at,omitempty"`
}

func (d conversationDoc) conversation() store.Conversation {
	return store.Conversation{ID: d.ID, OrgID: d.OrgID, VisitorID: d.VisitorID, ManagerID: d.ManagerID, Status: d.Status,
		CreatedAt: utc(d.CreatedAt), UpdatedAt: utc(d.UpdatedAt), ClosedAt: utcp(d.ClosedAt)}
}

// CreateConversation implements store.Store. The manager's assignment time is written after the
// conversation: it only breaks ties between equally loaded managers, so a crash in between
// costs nothing but fairness.
func (s *Store) CreateConversation(ctx context.Context, c store.Conversation) (store.Conversation, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	op := fmt.Sprintf("create conversation for %s/%s", c.OrgID, c.VisitorID)
	d := conversationDoc{ID: c.ID, OrgID: c.OrgID, VisitorID: c.VisitorID, ManagerID: c.ManagerID, Status: store.StatusOpen,
		OpenKey: pairKey(c.OrgID, c.VisitorID), CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}
	if _, err := s.conversations.InsertOne(ctx, d); err != nil {
		if mongo.IsDuplicateKeyError(err) {
			return store.Conversation{}, fmt.Errorf("%s: %w", op, store.ErrConflict)
		}
		return store.Conversation{}, wrap(op, err)
	}
	if c.ManagerID != "" {
		err := upsert(ctx, s.managers, bson.D{{Key: "_id", Value: pairKey(c.OrgID, c.ManagerID)}}, bson.D{
			{Key: "$max", Value: bson.D{{Key: "last_assigned_at", Value: c.CreatedAt}}},
			{Key: "$setOnInsert", Value: bson.D{{Key: "org_id", Value: c.OrgID}, {Key: "manager_id", Value: c.ManagerID},
				{Key: "name", Value: ""}, {Key: "capacity", Value: 0}, {Key: "registered", Value: false}, {Key: "updated_at", Value: c.CreatedAt}}},
		})
		if err != nil {
			return store.Conversation{}, wrap(op+": record assignment", err)
		}
	}
	return d.conversation(), nil
}

func (s *Store) findConversation(ctx context.Context, op string, filter bson.D) (store.Conversation, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	var d conversationDoc
	if err := s.conversations.FindOne(ctx, filter).Decode(&d); err != nil {
		return store.Conversation{}, wrap(op, err)
	}
	return d.conversation(), nil
}

// Conversation implements store.Store.
func (s *Store) Conversation(ctx context.Context, id string) (store.Conversation, error) {
	return s.findConversation(ctx, "get conversation "+id, bson.D{{Key: "_id", Value: id}})
}

// OpenConversation implements store.Store.
func (s *Store) OpenConversation(ctx context.Context, org, visitor string) (store.Conversation, error) {
	return s.findConversation(ctx, fmt.Sprintf("get open conversation of %s/%s", org, visitor),
		bson.D{{Key: "open_key", Value: pairKey(org, visitor)}})
}

// CloseConversation implements store.Store.
func (s *Store) CloseConversation(ctx context.Context, id string, at time.Time) (store.Conversation, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	_, err := s.conversations.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: id}, {Key: "status", Value: store.StatusOpen}},
		bson.D{
			{Key: "$set", Value: bson.D{{Key: "status", Value: store.StatusClosed}, {Key: "updated_at", Value: at}, {Key: "closed_at", Value: at}}},
			{Key: "$unset", Value: bson.D{{Key: "open_key", Value: ""}}},
		})
	if err != nil {
		return store.Conversation{}, wrap("close conversation "+id, err)
	}
	return s.Conversation(ctx, id)
}

// OpenCounts implements store.Store.
func (s *Store) OpenCounts(ctx context.Context, org string) (map[string]int, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	op := "count open conversations of " + org
	cur, err := s.conversations.Find(ctx, bson.D{{Key: "org_id", Value: org}, {Key: "status", Value: store.StatusOpen}},
		options.Find().SetProjection(bson.D{{Key: "manager_id", Value: 1}}))
	if err != nil {
		return nil, wrap(op, err)
	}
	var docs []struct {
		ManagerID string `bson:"manager_id"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return nil, wrap(op, err)
	}
	out := map[string]int{}
	for _, d := range docs {
		if d.ManagerID != "" {
			out[d.ManagerID]++
		}
	}
	return out, nil
}

type senderDoc struct {
	Type string `bson:"type"`
	ID   string `bson:"id"`
}

type messageDoc struct {
	ID              string     `bson:"_id"`
	ConversationID  string     `bson:"conversation_id"`
	OrgID           string     `bson:"org_id"`
	VisitorID       string     `bson:"visitor_id"`
	Seq             int64      `bson:"seq"`
	Sender          senderDoc  `bson:"sender"`
	Content         string     `bson:"content"`
	ClientMessageID string     `bson:"client_message_id,omitempty"`
	ClientKey       string     `bson:"client_key,omitempty"`
	Read            bool       `bson:"read"`
	ReadAt          *time.Time `bson:"read_at"`
	CreatedAt       time.Time  `bson:"created_at"`
}

func (d messageDoc) message() store.Message {
	return store.Message{ID: d.ID, ConversationID: d.ConversationID, OrgID: d.OrgID, VisitorID: d.VisitorID, Seq: uint64(d.Seq),
		Sender: store.Sender{Type: d.Sender.Type, ID: d.Sender.ID}, Content: d.Content, ClientMessageID: d.ClientMessageID,
		Read: d.Read, ReadAt: utcp(d.ReadAt), CreatedAt: utc(d.CreatedAt)}
}

// clientKey scopes a client_message_id to its sender and visitor; ids never contain ':'.
func clientKey(m store.Message) string {
	if m.ClientMessageID == "" {
		return ""
	}
	return m.OrgID + ":" + m.VisitorID + ":" + m.Sender.Type + ":" + m.Sender.ID + ":" + m.ClientMessageID
}

func (s *Store) findMessage(ctx context.Context, filter bson.D) (store.Message, error) {
	var d messageDoc
	if err := s.messages.FindOne(ctx, filter).Decode(&d); err != nil {
		return store.Message{}, err
	}
	return d.message(), nil
}

// AppendMessage implements store.Store.
//
// The visitor's last Seq is kept as a hint in visitor_seqs, written only after the message it
// names is stored, so the hint never runs ahead of the messages. The writer inserts hint+1,
// hint+2, … until an insert succeeds; each duplicate key on (org, visitor, seq) proves that Seq
// is already stored. So a message is only ever inserted once its predecessor is visible, which
// is what makes a catch-up by Seq unable to skip anything. A stale hint (a crash, or a lost
// concurrent $max on servers that do updates as read-modify-write) only costs extra probes.
func (s *Store) AppendMessage(ctx context.Context, m store.Message) (store.Message, bool, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	op := "append message to " + m.ConversationID
	ck := clientKey(m)
	if ck != "" {
		existing, err := s.findMessage(ctx, bson.D{{Key: "client_key", Value: ck}})
		if err == nil {
			return existing, false, nil
		}
		if !errors.Is(err, mongo.ErrNoDocuments) {
			return store.Message{}, false, wrap(op, err)
		}
	}
	vk := pairKey(m.OrgID, m.VisitorID)
	var hint struct {
		LastSeq int64 `bson:"last_seq"`
	}
	if err := s.seqs.FindOne(ctx, bson.D{{Key: "_id", Value: vk}}).Decode(&hint); err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
		return store.Message{}, false, wrap(op+": read seq hint", err)
	}
	d := messageDoc{ID: m.ID, ConversationID: m.ConversationID, OrgID: m.OrgID, VisitorID: m.VisitorID,
		Sender: senderDoc{Type: m.Sender.Type, ID: m.Sender.ID}, Content: m.Content,
		ClientMessageID: m.ClientMessageID, ClientKey: ck, CreatedAt: m.CreatedAt}
	for seq := hint.LastSeq + 1; seq <= hint.LastSeq+maxSeqProbes; seq++ {
		d.Seq = seq
		_, err := s.messages.InsertOne(ctx, d)
		if err == nil {
			// Best effort: the hint only saves probes, and the message is already stored.
			_ = upsert(ctx, s.seqs, bson.D{{Key: "_id", Value: vk}}, bson.D{{Key: "$max", Value: bson.D{{Key: "last_seq", Value: seq}}}})
			return d.message(), true, nil
		}
		if !mongo.IsDuplicateKeyError(err) {
			return store.Message{}, false, wrap(op, err)
		}
		if ck != "" {
			// The duplicate may be our own client key, written by a concurrent retry.
			existing, ferr := s.findMessage(ctx, bson.D{{Key: "client_key", Value: ck}})
			if ferr == nil {
				return existing, false, nil
			}
			if !errors.Is(ferr, mongo.ErrNoDocuments) {
				return store.Message{}, false, wrap(op, ferr)
			}
		}
	}
	return store.Message{}, false, fmt.Errorf("%s: no free seq after %d probes from %d", op, maxSeqProbes, hint.LastSeq)
}

// Message implements store.Store.
func (s *Store) Message(ctx context.Context, id string) (store.Message, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	m, err := s.findMessage(ctx, bson.D{{Key: "_id", Value: id}})
	if err != nil {
		return store.Message{}, wrap("get message "+id, err)
	}
	return m, nil
}

// MarkRead implements store.Store.
func (s *Store) MarkRead(ctx context.Context, id string, at time.Time) (store.Message, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	_, err := s.messages.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "read", Value: false}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "read", Value: true}, {Key: "read_at", Value: at}}}})
	if err != nil {
		return store.Message{}, wrap("mark message "+id+" read", err)
	}
	return s.Message(ctx, id)
}

// History implements store.Store.
func (s *Store) History(ctx context.Context, org, visitor string, q store.HistoryQuery) ([]store.Message, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	filter := bson.D{{Key: "org_id", Value: org}, {Key: "visitor_id", Value: visitor}}
	sort := -1
	switch {
	case q.Forward:
		filter = append(filter, bson.E{Key: "seq", Value: bson.D{{Key: "$gt", Value: int64(q.After)}}})
		sort = 1
	case q.From > 0:
		filter = append(filter, bson.E{Key: "seq", Value: bson.D{{Key: "$lte", Value: int64(q.From)}}})
	}
	op := fmt.Sprintf("history of %s/%s", org, visitor)
	cur, err := s.messages.Find(ctx, filter, options.Find().SetSort(bson.D{{Key: "seq", Value: sort}}).SetLimit(int64(q.Limit)))
	if err != nil {
		return nil, wrap(op, err)
	}
	var docs []messageDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, wrap(op, err)
	}
	out := make([]store.Message, len(docs))
	for i, d := range docs {
		out[i] = d.message()
	}
	return out, nil
}

type notificationDoc struct {
	ID        string    `bson:"_id"`
	OrgID     string    `bson:"org_id"`
	VisitorID string    `bson:"visitor_id"`
	Data      string    `bson:"data"` // the JSON text, kept exactly as given
	CreatedAt time.Time `bson:"created_at"`
}

// AddNotification implements store.Store.
func (s *Store) AddNotification(ctx context.Context, n store.Notification) (store.Notification, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	d := notificationDoc{ID: n.ID, OrgID: n.OrgID, VisitorID: n.VisitorID, Data: string(n.Data), CreatedAt: n.CreatedAt}
	if _, err := s.notifications.InsertOne(ctx, d); err != nil {
		return store.Notification{}, wrap(fmt.Sprintf("add notification for %s/%s", n.OrgID, n.VisitorID), err)
	}
	return n, nil
}

// Ping implements store.Store.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	if err := s.client.Ping(ctx, readpref.Primary()); err != nil {
		return fmt.Errorf("ping MongoDB: %w: %w", store.ErrUnavailable, err)
	}
	return nil
}

// Close implements store.Store.
func (s *Store) Close(ctx context.Context) error { return s.client.Disconnect(ctx) }
