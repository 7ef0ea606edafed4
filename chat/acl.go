package chat

import (
	"context"
	"sync"
	"time"

	"github.com/convead/chat-server/auth"
	"github.com/convead/chat-server/channel"
	"github.com/convead/chat-server/store"
)

// The ACL of README "Channels and topics", deny by default. Channel names are always those of the caller's own
// organisation (the doors map them into `orgs/<org>/`), so "its organisation" is implied for
// every kind but conversations, whose ids are global and are checked against the store.

// CanSubscribe decides whether id may subscribe to the channel name (or pattern) of its org.
func (s *Service) CanSubscribe(ctx context.Context, id auth.Identity, name string) error {
	if id.Role == auth.Service {
		return nil
	}
	ch := channel.Classify(name)
	switch ch.Kind {
	case channel.ServiceAll, channel.ConversationsAll:
		if id.Role == auth.Manager {
			return nil
		}
	case channel.Service:
		if id.Role == auth.Manager || id.Subject == ch.ID {
			return nil
		}
	case channel.Notifications:
		if id.Role == auth.Visitor && id.Subject == ch.ID {
			return nil
		}
	case channel.Replies:
		if string(id.Role) == ch.Sub && id.Subject == ch.ID {
			return nil
		}
	case channel.Conversation, channel.ConversationSub:
		c, err := s.conversationMeta(ctx, id, ch.ID)
		if err != nil {
			return err
		}
		if id.Role == auth.Manager {
			return canRead(id, c)
		}
		if id.Subject == c.VisitorID {
			return nil
		}
	}
	return Forbidden("%s may not subscribe to %s", id.Role, name)
}

// CanPublish decides whether id may publish to the channel name of its org. Chat messages are
// created only through PostMessage, never by a raw publish; a service may publish anywhere.
func (s *Service) CanPublish(ctx context.Context, id auth.Identity, name string) error {
	if id.Role == auth.Service {
		return nil
	}
	ch := channel.Classify(name)
	if ch.Kind == channel.ConversationSub && (ch.Sub == channel.SubTyping || ch.Sub == channel.SubPost) {
		c, err := s.conversationMeta(ctx, id, ch.ID)
		if err != nil {
			return err
		}
		if _, err := senderOf(id, c); err == nil {
			return nil
		}
	}
	return Forbidden("%s may not publish to %s", id.Role, name)
}

// conversationMeta returns who a conversation belongs to (org, visitor, manager, previous
// managers), from a cache when it can: the MQTT ACL asks for every delivery, not only at
// subscribe time. This node updates its entry when it moves the conversation; another node's
// move is seen here within convCacheTTL.
func (s *Service) conversationMeta(ctx context.Context, id auth.Identity, convID string) (store.Conversation, error) {
	if c, ok := s.convs.get(convID, time.Now()); ok {
		if c.OrgID != id.Org {
			return store.Conversation{}, errConversationNotFound
		}
		return c, nil
	}
	return s.conversation(ctx, id, convID)
}

// convCacheTTL bounds how long a node may act on a conversation's manager after another node
// transferred it.
const convCacheTTL = 5 * time.Second

// convCache keeps who conversations belong to, for ttl. It is bounded; when full, an
// arbitrary half is dropped.
type convCache struct {
	mu    sync.RWMutex
	max   int
	ttl   time.Duration
	items map[string]cachedConv
}

type cachedConv struct {
	meta    store.Conversation
	expires time.Time
}

func newConvCache(max int, ttl time.Duration) *convCache {
	return &convCache{max: max, ttl: ttl, items: make(map[string]cachedConv)}
}

func (c *convCache) get(id string, now time.Time) (store.Conversation, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	v, ok := c.items[id]
	if !ok || now.After(v.expires) {
		return store.Conversation{}, false
	}
	return v.meta, true
}

func (c *convCache) put(v store.Conversation) {
	meta := store.Conversation{ID: v.ID, OrgID: v.OrgID, VisitorID: v.VisitorID, ManagerID: v.ManagerID,
		Status: v.Status, PreviousManagerIDs: v.PreviousManagerIDs}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.items) >= c.max {
		n := 0
		for k := range c.items { // map order is random: this drops an arbitrary half
			delete(c.items, k)
			if n++; n >= c.max/2 {
				break
			}
		}
	}
	c.items[v.ID] = cachedConv{meta: meta, expires: time.Now().Add(c.ttl)}
}

// MayReceive reports, without blocking, whether id may still receive the deliveries of a
// conversation: a manager it was taken from may not. It reads only the cache; on a miss it
// answers yes and refreshes the entry in the background, so a transfer made on another node
// stops this node's deliveries within convCacheTTL and one message.
func (s *Service) MayReceive(id auth.Identity, convID string) bool {
	c, ok := s.convs.get(convID, time.Now())
	if !ok {
		s.refresh(id.Org, convID)
		return true
	}
	return c.OrgID == id.Org && canRead(id, c) == nil
}

// refresh loads a conversation into the cache in the background, once at a time per id.
func (s *Service) refresh(org, convID string) {
	s.refreshMu.Lock()
	if s.refreshing[convID] || len(s.refreshing) >= maxRefreshes {
		s.refreshMu.Unlock()
		return
	}
	s.refreshing[convID] = true
	s.refreshMu.Unlock()
	s.background(func(ctx context.Context) {
		defer func() {
			s.refreshMu.Lock()
			delete(s.refreshing, convID)
			s.refreshMu.Unlock()
		}()
		_, _ = s.conversation(ctx, auth.Identity{Org: org}, convID) // fills the cache
	})
}

// maxRefreshes bounds the cache refreshes under way.
const maxRefreshes = 1000
