// Package mongo is the production store: MongoDB through the official v2 driver.
//
// Every invariant of the store contract is kept by one single-document write guarded by a unique
// index, so it holds on a standalone server, a replica set and a sharded cluster alike, and
// needs no transaction:
//
//   - one active conversation per visitor: conversations carry `open_key` ("org:visitor") only
//     while active (open or pending), under a unique sparse index, so a second insert fails
//     with a duplicate key;
//   - one winner among concurrent assignments of a conversation: see AssignConversation;
//   - idempotent posts: messages with a client_message_id carry `client_key`, unique and sparse;
//   - gap-free, commit-ordered Seq: (org_id, visitor_id, seq) is unique, and a writer inserts
//     seq n only after it has observed n-1 stored (see AppendMessage), so no reader can see n
//     while n-1 is still missing.
package mongo

import (
	"context"
	"errors"
	"fmt"
	"strconv"
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
	claims        *mongo.Collection
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
		claims:        d.Collection("assignment_claims"),
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
			// The listings' indexes: see ListConversations. org_status_created also serves
			// OpenCounts, as the index org_status of older databases did.
			{"org_created", bson.D{{Key: "org_id", Value: 1}, {Key: "created_at", Value: -1}, {Key: "_id", Value: -1}}, false, false},
			{"org_status_created", bson.D{{Key: "org_id", Value: 1}, {Key: "status", Value: 1}, {Key: "created_at", Value: -1}, {Key: "_id", Value: -1}}, false, false},
			{"org_manager_created", bson.D{{Key: "org_id", Value: 1}, {Key: "manager_id", Value: 1}, {Key: "created_at", Value: -1}, {Key: "_id", Value: -1}}, false, false},
			{"org_manager_status_created", bson.D{{Key: "org_id", Value: 1}, {Key: "manager_id", Value: 1}, {Key: "status", Value: 1},
				{Key: "created_at", Value: -1}, {Key: "_id", Value: -1}}, false, false},
			{"org_visitor_created", bson.D{{Key: "org_id", Value: 1}, {Key: "visitor_id", Value: 1}, {Key: "created_at", Value: -1}, {Key: "_id", Value: -1}}, false, false},
			{"org_status_closed", bson.D{{Key: "org_id", Value: 1}, {Key: "status", Value: 1}, {Key: "closed_at", Value: 1}}, false, false},
		}},
		{s.messages, []index{
			{"visitor_seq", bson.D{{Key: "org_id", Value: 1}, {Key: "visitor_id", Value: 1}, {Key: "seq", Value: 1}}, true, false},
			{"idempotent_post", bson.D{{Key: "client_key", Value: 1}}, true, true},
			{"messages_of_conversation", bson.D{{Key: "conversation_id", Value: 1}}, false, false},
		}},
		{s.notifications, []index{
			{"notifications_of_visitor", bson.D{{Key: "org_id", Value: 1}, {Key: "visitor_id", Value: 1}}, false, false},
		}},
		{s.managers, []index{
			{"managers_of_org", bson.D{{Key: "org_id", Value: 1}, {Key: "manager_id", Value: 1}}, false, false},
		}},
		{s.claims, []index{
			{"claims_of_conversation", bson.D{{Key: "conversation_id", Value: 1}}, false, false},
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
	OfflineMode        string    `bson:"offline_mode"`
	ReassignAfter      int64     `bson:"reassign_after"` // nanoseconds
	Retention          int       `bson:"retention"`      // days
	CreatedAt          time.Time `bson:"created_at"`
	UpdatedAt          time.Time `bson:"updated_at"`
}

func (d orgDoc) org() store.Org {
	return store.Org{ID: d.ID, Name: d.Name, ChatOfflineMessage: d.ChatOfflineMessage, AllowedOrigins: d.AllowedOrigins,
		OfflineMode: d.OfflineMode, ReassignAfter: store.Duration(d.ReassignAfter), Retention: d.Retention,
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
			{Key: "allowed_origins", Value: o.AllowedOrigins}, {Key: "offline_mode", Value: o.OfflineMode},
			{Key: "reassign_after", Value: int64(o.ReassignAfter)}, {Key: "retention", Value: o.Retention},
			{Key: "updated_at", Value: o.UpdatedAt}}},
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
	ID                 string     `bson:"_id"`
	OrgID              string     `bson:"org_id"`
	VisitorID          string     `bson:"visitor_id"`
	ManagerID          string     `bson:"manager_id"`
	Status             string     `bson:"status"`
	OpenKey            string     `bson:"open_key,omitempty"` // set only while active: see the package comment
	PreviousManagerIDs []string   `bson:"previous_manager_ids,omitempty"`
	AssignGen          int64      `bson:"assign_gen"` // assignments so far: see AssignConversation
	CreatedAt          time.Time  `bson:"created_at"`
	UpdatedAt          time.Time  `bson:"updated_at"`
	ClosedAt           *time.Time `bson:"closed_at,omitempty"`
	// The activity: see AppendMessage.
	LastMessage     *messageDoc `bson:"last_message,omitempty"`
	UnreadByVisitor int         `bson:"unread_by_visitor"`
	UnreadByManager int         `bson:"unread_by_manager"`
}

func (d conversationDoc) conversation() store.Conversation {
	return store.Conversation{ID: d.ID, OrgID: d.OrgID, VisitorID: d.VisitorID, ManagerID: d.ManagerID, Status: d.Status,
		PreviousManagerIDs: d.PreviousManagerIDs, CreatedAt: utc(d.CreatedAt), UpdatedAt: utc(d.UpdatedAt), ClosedAt: utcp(d.ClosedAt)}
}

func (d conversationDoc) item() store.ConversationItem {
	it := store.ConversationItem{Conversation: d.conversation(),
		Activity: store.Activity{UnreadByVisitor: d.UnreadByVisitor, UnreadByManager: d.UnreadByManager}}
	if d.LastMessage != nil {
		m := d.LastMessage.message()
		it.Activity.LastMessage = &m
	}
	return it
}

// activeStatuses matches an open or pending conversation.
var activeStatuses = bson.D{{Key: "$in", Value: bson.A{store.StatusOpen, store.StatusPending}}}

// CreateConversation implements store.Store. The manager's assignment time is written after the
// conversation: it only breaks ties between equally loaded managers, so a crash in between
// costs nothing but fairness.
func (s *Store) CreateConversation(ctx context.Context, c store.Conversation) (store.Conversation, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	op := fmt.Sprintf("create conversation for %s/%s", c.OrgID, c.VisitorID)
	switch {
	case !c.Active():
		return store.Conversation{}, fmt.Errorf("%s: status %q: a new conversation is open or pending", op, c.Status)
	case c.Status == store.StatusPending && c.ManagerID != "":
		return store.Conversation{}, fmt.Errorf("%s: a pending conversation has no manager, not %s", op, c.ManagerID)
	}
	d := conversationDoc{ID: c.ID, OrgID: c.OrgID, VisitorID: c.VisitorID, ManagerID: c.ManagerID, Status: c.Status,
		OpenKey: pairKey(c.OrgID, c.VisitorID), CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}
	if _, err := s.conversations.InsertOne(ctx, d); err != nil {
		if mongo.IsDuplicateKeyError(err) {
			return store.Conversation{}, fmt.Errorf("%s: %w", op, store.ErrConflict)
		}
		return store.Conversation{}, wrap(op, err)
	}
	if err := s.recordAssignment(ctx, c.OrgID, c.ManagerID, c.CreatedAt); err != nil {
		return store.Conversation{}, wrap(op+": record assignment", err)
	}
	return d.conversation(), nil
}

// recordAssignment moves a manager's LastAssignedAt up to at (nothing for the manager "").
func (s *Store) recordAssignment(ctx context.Context, org, manager string, at time.Time) error {
	if manager == "" {
		return nil
	}
	return upsert(ctx, s.managers, bson.D{{Key: "_id", Value: pairKey(org, manager)}}, bson.D{
		{Key: "$max", Value: bson.D{{Key: "last_assigned_at", Value: at}}},
		{Key: "$setOnInsert", Value: bson.D{{Key: "org_id", Value: org}, {Key: "manager_id", Value: manager},
			{Key: "name", Value: ""}, {Key: "capacity", Value: 0}, {Key: "registered", Value: false}, {Key: "updated_at", Value: at}}},
	})
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
		bson.D{{Key: "_id", Value: id}, {Key: "status", Value: activeStatuses}},
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
//
// The conversation's activity is updated after the insert (see recordActivity), so a crash in
// between leaves the message stored and the activity one message behind: the next message sets
// the last message again, and an unread count one too low only ever shows one unread too few,
// never stops a read from being recorded (MarkRead does not go below 0).
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
			if err := s.recordActivity(ctx, d); err != nil {
				return store.Message{}, false, wrap(op+": record activity", err)
			}
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

// unreadField is the unread count of the side that receives messages of this sender type.
func unreadField(senderType string) string {
	if senderType == "visitor" {
		return "unread_by_manager"
	}
	return "unread_by_visitor"
}

// recordActivity counts a new message as unread for its recipient and makes it the
// conversation's last message unless a later one (by Seq) is there already: concurrent appends
// may finish out of order. One update in the usual case, a second one for a late message.
func (s *Store) recordActivity(ctx context.Context, d messageDoc) error {
	inc := bson.E{Key: "$inc", Value: bson.D{{Key: unreadField(d.Sender.Type), Value: 1}}}
	res, err := s.conversations.UpdateOne(ctx, bson.D{{Key: "_id", Value: d.ConversationID}, {Key: "$or", Value: bson.A{
		bson.D{{Key: "last_message", Value: nil}},
		bson.D{{Key: "last_message.seq", Value: bson.D{{Key: "$lt", Value: d.Seq}}}},
	}}}, bson.D{{Key: "$set", Value: bson.D{{Key: "last_message", Value: d}}}, inc})
	if err != nil || res.MatchedCount == 1 {
		return err
	}
	_, err = s.conversations.UpdateOne(ctx, bson.D{{Key: "_id", Value: d.ConversationID}}, bson.D{inc})
	return err
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

// MarkRead implements store.Store. Only the call whose update flipped the flag (the filter
// requires read false) touches the activity: one less unread, not below 0, and the last
// message's copy marked read too. Like AppendMessage's, that update follows the message's: a
// crash in between leaves one unread counted too many until the conversation closes. (On a
// server that applies updates as read-modify-write, FerretDB, two concurrent first calls may
// both see read false and both decrement; MongoDB's update of one document is atomic.)
func (s *Store) MarkRead(ctx context.Context, id string, at time.Time) (store.Message, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	op := "mark message " + id + " read"
	var d messageDoc
	err := s.messages.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: id}, {Key: "read", Value: false}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "read", Value: true}, {Key: "read_at", Value: at}}}},
		options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return s.Message(ctx, id) // already read, or no such message
	}
	if err != nil {
		return store.Message{}, wrap(op, err)
	}
	field := unreadField(d.Sender.Type)
	_, err = s.conversations.UpdateOne(ctx, bson.D{{Key: "_id", Value: d.ConversationID}, {Key: field, Value: bson.D{{Key: "$gt", Value: 0}}}},
		bson.D{{Key: "$inc", Value: bson.D{{Key: field, Value: -1}}}})
	if err != nil {
		return store.Message{}, wrap(op+": record activity", err)
	}
	_, err = s.conversations.UpdateOne(ctx, bson.D{{Key: "_id", Value: d.ConversationID}, {Key: "last_message._id", Value: id}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "last_message.read", Value: true}, {Key: "last_message.read_at", Value: at}}}})
	if err != nil {
		return store.Message{}, wrap(op+": record activity", err)
	}
	return d.message(), nil
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

// ConversationItem implements store.Store.
func (s *Store) ConversationItem(ctx context.Context, id string) (store.ConversationItem, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	var d conversationDoc
	if err := s.conversations.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&d); err != nil {
		return store.ConversationItem{}, wrap("get conversation item "+id, err)
	}
	return d.item(), nil
}

// AssignConversation implements store.Store.
//
// The compare and set is one findOneAndUpdate whose filter holds the conversation as it was
// read (manager, active status, assign_gen, which counts assignments and so also pins the list
// of previous managers computed from it). On MongoDB that alone makes concurrent assignments
// from the same manager have one winner. Servers that apply updates as read-modify-write
// (FerretDB) would let several pass the filter, so the writer first claims the next generation
// by inserting assignment_claims {_id: "conversation:gen"}: a unique _id has one winner on any
// server. A claim whose update then fails (the conversation closed meanwhile) only blocks
// assignments from that stale state, which would fail anyway.
func (s *Store) AssignConversation(ctx context.Context, id, from, to string, at time.Time) (store.Conversation, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	op := fmt.Sprintf("assign conversation %s from %q to %q", id, from, to)
	var d conversationDoc
	if err := s.conversations.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&d); err != nil {
		return store.Conversation{}, wrap(op, err)
	}
	conflict := fmt.Errorf("%s: %w", op, store.ErrConflict)
	if !d.conversation().Active() || d.ManagerID != from {
		return store.Conversation{}, conflict
	}
	gen := d.AssignGen + 1
	claim := bson.D{{Key: "_id", Value: pairKey(id, strconv.FormatInt(gen, 10))}, {Key: "conversation_id", Value: id}}
	if _, err := s.claims.InsertOne(ctx, claim); mongo.IsDuplicateKeyError(err) {
		return store.Conversation{}, conflict
	} else if err != nil {
		return store.Conversation{}, wrap(op+": claim", err)
	}
	status := store.StatusOpen
	if to == "" {
		status = store.StatusPending
	}
	// Conversations stored before assign_gen existed lack it: null matches a missing field.
	var sameGen any = d.AssignGen
	if d.AssignGen == 0 {
		sameGen = bson.D{{Key: "$in", Value: bson.A{0, nil}}}
	}
	err := s.conversations.FindOneAndUpdate(ctx,
		bson.D{{Key: "_id", Value: id}, {Key: "manager_id", Value: from}, {Key: "status", Value: activeStatuses}, {Key: "assign_gen", Value: sameGen}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "manager_id", Value: to}, {Key: "status", Value: status},
			{Key: "previous_manager_ids", Value: store.PreviousManagers(d.PreviousManagerIDs, from, to)}, {Key: "assign_gen", Value: gen},
			{Key: "updated_at", Value: at}}}},
		options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return store.Conversation{}, conflict
	}
	if err != nil {
		return store.Conversation{}, wrap(op, err)
	}
	// As in CreateConversation, the assignment time only breaks ties: written after.
	if err := s.recordAssignment(ctx, d.OrgID, to, at); err != nil {
		return store.Conversation{}, wrap(op+": record assignment", err)
	}
	return d.conversation(), nil
}

// ListConversations implements store.Store: an equality filter on the query's fields, a range
// from the cursor on (created_at, _id), sorted on the same, limit+1 to know whether a next page
// follows. Each filter combination has an index whose prefix is its equality fields followed by
// created_at, _id, so the plan is an IXSCAN (forwards or backwards) with no SORT stage:
//
//   - no filter:               org_created                 {org_id, created_at: -1, _id: -1}
//   - status:                  org_status_created          {org_id, status, created_at: -1, _id: -1}
//   - manager:                 org_manager_created         {org_id, manager_id, created_at: -1, _id: -1}
//   - manager and status:      org_manager_status_created  {org_id, manager_id, status, created_at: -1, _id: -1}
//   - visitor (with anything): org_visitor_created         {org_id, visitor_id, created_at: -1, _id: -1},
//     status and manager then filter the FETCH stage over that visitor's few conversations.
//
// (FerretDB uses no index but _id: there it is a scan, which only matters to the tests.)
func (s *Store) ListConversations(ctx context.Context, q store.ConversationQuery) ([]store.ConversationItem, string, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	op := "list conversations of " + q.OrgID
	filter := bson.D{{Key: "org_id", Value: q.OrgID}}
	if q.VisitorID != "" {
		filter = append(filter, bson.E{Key: "visitor_id", Value: q.VisitorID})
	}
	if q.ManagerID != "" {
		filter = append(filter, bson.E{Key: "manager_id", Value: q.ManagerID})
	}
	if q.Status != "" {
		filter = append(filter, bson.E{Key: "status", Value: q.Status})
	}
	dir, past, upTo := -1, "$lt", "$lte"
	if q.Oldest {
		dir, past, upTo = 1, "$gt", "$gte"
	}
	if q.Cursor != "" {
		createdAt, id, err := store.DecodeCursor(q.Cursor)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", op, err)
		}
		// Past (createdAt, id): the bound on created_at gives the index scan its start, the $or
		// only drops the cursor's own instant up to its id.
		filter = append(filter, bson.E{Key: "created_at", Value: bson.D{{Key: upTo, Value: createdAt}}},
			bson.E{Key: "$or", Value: bson.A{
				bson.D{{Key: "created_at", Value: bson.D{{Key: past, Value: createdAt}}}},
				bson.D{{Key: "_id", Value: bson.D{{Key: past, Value: id}}}},
			}})
	}
	cur, err := s.conversations.Find(ctx, filter, options.Find().
		SetSort(bson.D{{Key: "created_at", Value: dir}, {Key: "_id", Value: dir}}).SetLimit(int64(q.Limit)+1))
	if err != nil {
		return nil, "", wrap(op, err)
	}
	var docs []conversationDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, "", wrap(op, err)
	}
	var next string
	if len(docs) > q.Limit {
		docs = docs[:q.Limit]
		next = store.EncodeCursor(docs[len(docs)-1].conversation())
	}
	items := make([]store.ConversationItem, len(docs))
	for i, d := range docs {
		items[i] = d.item()
	}
	return items, next, nil
}

// RegisteredManagers implements store.Store.
func (s *Store) RegisteredManagers(ctx context.Context, org string) ([]store.Manager, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	op := "list registered managers of " + org
	cur, err := s.managers.Find(ctx, bson.D{{Key: "org_id", Value: org}, {Key: "registered", Value: true}},
		options.Find().SetSort(bson.D{{Key: "manager_id", Value: 1}}))
	if err != nil {
		return nil, wrap(op, err)
	}
	var docs []managerDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, wrap(op, err)
	}
	out := make([]store.Manager, len(docs))
	for i, d := range docs {
		out[i] = d.manager()
	}
	return out, nil
}

// DeleteManager implements store.Store.
func (s *Store) DeleteManager(ctx context.Context, org, id string) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	op := fmt.Sprintf("delete manager %s/%s", org, id)
	res, err := s.managers.DeleteOne(ctx, bson.D{{Key: "_id", Value: pairKey(org, id)}, {Key: "registered", Value: true}})
	if err != nil {
		return wrap(op, err)
	}
	if res.DeletedCount == 0 {
		return fmt.Errorf("%s: %w", op, store.ErrNotFound)
	}
	return nil
}

// conversationIDs returns the ids of the conversations that filter and opts select, and the set
// of their visitors.
func (s *Store) conversationIDs(ctx context.Context, filter bson.D, opts *options.FindOptionsBuilder) ([]string, map[string]bool, error) {
	cur, err := s.conversations.Find(ctx, filter, opts.SetProjection(bson.D{{Key: "_id", Value: 1}, {Key: "visitor_id", Value: 1}}))
	if err != nil {
		return nil, nil, err
	}
	var docs []struct {
		ID        string `bson:"_id"`
		VisitorID string `bson:"visitor_id"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return nil, nil, err
	}
	ids := make([]string, len(docs))
	visitors := map[string]bool{}
	for i, d := range docs {
		ids[i] = d.ID
		visitors[d.VisitorID] = true
	}
	return ids, visitors, nil
}

// DeleteVisitor implements store.Store. Each step is a deleteMany on an index; conversations go
// last, so that a call cut short is finished by the next one, which finds them again.
func (s *Store) DeleteVisitor(ctx context.Context, org, visitor string) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	op := fmt.Sprintf("delete visitor %s/%s", org, visitor)
	ofVisitor := bson.D{{Key: "org_id", Value: org}, {Key: "visitor_id", Value: visitor}}
	ids, _, err := s.conversationIDs(ctx, ofVisitor, options.Find())
	if err != nil {
		return wrap(op, err)
	}
	if _, err := s.messages.DeleteMany(ctx, ofVisitor); err != nil {
		return wrap(op+": messages", err)
	}
	// After the messages: the numbering restarts only once no message holds a Seq.
	if _, err := s.seqs.DeleteOne(ctx, bson.D{{Key: "_id", Value: pairKey(org, visitor)}}); err != nil {
		return wrap(op+": message numbering", err)
	}
	if _, err := s.notifications.DeleteMany(ctx, ofVisitor); err != nil {
		return wrap(op+": notifications", err)
	}
	if len(ids) == 0 {
		return nil
	}
	if _, err := s.claims.DeleteMany(ctx, bson.D{{Key: "conversation_id", Value: bson.D{{Key: "$in", Value: ids}}}}); err != nil {
		return wrap(op+": assignment claims", err)
	}
	if _, err := s.conversations.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}}); err != nil {
		return wrap(op+": conversations", err)
	}
	return nil
}

// DeleteClosedBefore implements store.Store. It reads the oldest ids on org_status_closed, then
// deletes their messages (messages_of_conversation), claims and the conversations themselves,
// in that order, so that a sweep cut short leaves conversations that the next one finds again.
// Nodes sweeping at once may pick the same conversations; each counts only what it deleted.
//
// Before that, each visitor's Seq hint is raised to its newest stored message (visitor_seq):
// the sweep may delete the newest messages, and AppendMessage must then go on after them, not
// hand out their Seqs again, or a client catching up after them would skip the new message.
func (s *Store) DeleteClosedBefore(ctx context.Context, org string, before time.Time, limit int) (int, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	op := fmt.Sprintf("delete conversations of %s closed before %s", org, before.Format(time.RFC3339))
	ids, visitors, err := s.conversationIDs(ctx, bson.D{{Key: "org_id", Value: org}, {Key: "status", Value: store.StatusClosed},
		{Key: "closed_at", Value: bson.D{{Key: "$lt", Value: before}}}},
		options.Find().SetSort(bson.D{{Key: "closed_at", Value: 1}}).SetLimit(int64(limit)))
	if err != nil {
		return 0, wrap(op, err)
	}
	if len(ids) == 0 {
		return 0, nil
	}
	for visitor := range visitors {
		var newest messageDoc
		err := s.messages.FindOne(ctx, bson.D{{Key: "org_id", Value: org}, {Key: "visitor_id", Value: visitor}},
			options.FindOne().SetSort(bson.D{{Key: "seq", Value: -1}}).SetProjection(bson.D{{Key: "seq", Value: 1}})).Decode(&newest)
		if errors.Is(err, mongo.ErrNoDocuments) {
			continue
		}
		if err == nil {
			err = upsert(ctx, s.seqs, bson.D{{Key: "_id", Value: pairKey(org, visitor)}},
				bson.D{{Key: "$max", Value: bson.D{{Key: "last_seq", Value: newest.Seq}}}})
		}
		if err != nil {
			return 0, wrap(op+": keep the numbering of "+visitor, err)
		}
	}
	in := bson.D{{Key: "$in", Value: ids}}
	if _, err := s.messages.DeleteMany(ctx, bson.D{{Key: "conversation_id", Value: in}}); err != nil {
		return 0, wrap(op+": messages", err)
	}
	if _, err := s.claims.DeleteMany(ctx, bson.D{{Key: "conversation_id", Value: in}}); err != nil {
		return 0, wrap(op+": assignment claims", err)
	}
	res, err := s.conversations.DeleteMany(ctx, bson.D{{Key: "_id", Value: in}, {Key: "status", Value: store.StatusClosed}})
	if err != nil {
		return 0, wrap(op+": conversations", err)
	}
	return int(res.DeletedCount), nil
}
