package bolt

import (
	"slices"
	"sync"

	"github.com/convead/chat-server/store"
	bbolt "go.etcd.io/bbolt"
)

// convCacheMax bounds the decoded conversations kept (a few hundred bytes each).
const convCacheMax = 20_000

// convCache keeps conversations as decoded from the file: every post reads its conversation
// (is it open, who may write), and that read, a transaction plus a JSON decoding, was a tenth
// of a post's CPU (docs/profiles/README.md, round five). It stays coherent because this
// process is the file's only writer (bbolt locks it): a transaction that writes a conversation
// forgets it when it commits, and a read that overlapped a commit does not fill the cache, so
// a value read before the commit is never kept after it.
type convCache struct {
	mu    sync.Mutex
	gen   uint64 // advanced by every commit that wrote a conversation
	items map[string]store.Conversation
}

func newConvCache() *convCache { return &convCache{items: make(map[string]store.Conversation)} }

// get returns the cached conversation, or the generation to hand to fill after reading it.
func (c *convCache) get(id string) (store.Conversation, uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.items[id]
	return copyConversation(v), c.gen, ok
}

// fill caches v, read from the file, unless a conversation was committed since get gave gen.
func (c *convCache) fill(gen uint64, v store.Conversation) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	if len(c.items) >= convCacheMax {
		clear(c.items)
	}
	c.items[v.ID] = copyConversation(v)
}

// forgetOnCommit drops conversation id from the cache once tx commits. A transaction rolled
// back changed nothing, and bbolt runs no handler of it.
func (c *convCache) forgetOnCommit(tx *bbolt.Tx, id string) {
	tx.OnCommit(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.gen++
		delete(c.items, id)
	})
}

// copyConversation copies what a caller could change in place, so that the cached value and
// the ones handed out share nothing.
func copyConversation(v store.Conversation) store.Conversation {
	v.PreviousManagerIDs = slices.Clone(v.PreviousManagerIDs)
	if v.ClosedAt != nil {
		at := *v.ClosedAt
		v.ClosedAt = &at
	}
	return v
}
