package broker

import (
	"bytes"
	"strings"
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// PublishPasser is implemented by a hook that handles OnPublish yet lets some server-side
// publishes through untouched. Broker.Publish routes a publish past mochi only when every
// OnPublish hook says it would pass it: mochi's path would then only have reached the inline
// subscriptions, which the direct path calls itself.
type PublishPasser interface {
	PassesServerPublish(topic string) bool
}

// interest is the set of MQTT client filters (kept sessions included), counted per filter and
// kept in a tree of topic levels, so that a publish can ask whether any client might match it
// without mochi's per-publish gathering of subscribers into fresh maps. It errs on the side of
// a match: filters are added when a SUBSCRIBE arrives (before mochi indexes them, whether or
// not they are then granted) and removed only after mochi dropped them.
type interest struct {
	mu      sync.RWMutex
	root    *level
	clients map[string]map[string]bool // client id → the filters counted for it
}

// level is one topic level of the filters: how many filters end here, and the next levels.
type level struct {
	ends int
	next map[string]*level
}

func newInterest() *interest {
	return &interest{root: &level{}, clients: map[string]map[string]bool{}}
}

// matchKey is the filter a subscription matches topics with: a shared subscription
// ($share/<group>/<filter>) matches as its filter.
func matchKey(filter string) string {
	if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			return rest[i+1:]
		}
	}
	return filter
}

// count adds d to the filters ending at filter; the caller holds mu.
func (in *interest) count(filter string, d int) {
	segs := strings.Split(matchKey(filter), "/")
	path := make([]*level, 1, len(segs)+1)
	path[0] = in.root
	for _, seg := range segs {
		n := path[len(path)-1]
		c := n.next[seg]
		if c == nil {
			if d < 0 {
				return
			}
			c = &level{}
			if n.next == nil {
				n.next = map[string]*level{}
			}
			n.next[seg] = c
		}
		path = append(path, c)
	}
	path[len(path)-1].ends += d
	for i := len(path) - 1; i > 0; i-- { // prune the levels nothing ends at or below
		if path[i].ends > 0 || len(path[i].next) > 0 {
			break
		}
		delete(path[i-1].next, segs[i-1])
	}
}

// add counts filters for client id on top of those it has (a SUBSCRIBE on its way).
func (in *interest) add(id string, filters []string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	held := in.clients[id]
	if held == nil {
		held = map[string]bool{}
		in.clients[id] = held
	}
	for _, f := range filters {
		if !held[f] {
			held[f] = true
			in.count(f, 1)
		}
	}
}

// set makes the filters counted for client id exactly now (nil: none).
func (in *interest) set(id string, now map[string]bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.setLocked(id, now)
}

func (in *interest) setLocked(id string, now map[string]bool) {
	for f := range in.clients[id] {
		if !now[f] {
			in.count(f, -1)
		}
	}
	for f := range now {
		if !in.clients[id][f] {
			in.count(f, 1)
		}
	}
	if len(now) == 0 {
		delete(in.clients, id)
		return
	}
	in.clients[id] = now
}

// matches reports whether some counted filter matches topic. Topics starting with "$" always
// match: their wildcard rules differ, and the server does not publish to them.
func (in *interest) matches(topic string) bool {
	if strings.HasPrefix(topic, "$") {
		return true
	}
	in.mu.RLock()
	defer in.mu.RUnlock()
	return in.root.matches(topic)
}

// matches reports whether a filter below n matches rest, the topic's remaining levels.
func (n *level) matches(rest string) bool {
	if n.next["#"] != nil {
		return true
	}
	seg, more, deeper := strings.Cut(rest, "/")
	for _, key := range [2]string{seg, "+"} {
		c := n.next[key]
		switch {
		case c == nil:
		case !deeper && (c.ends > 0 || c.next["#"] != nil): // "a/#" matches "a" too
			return true
		case deeper && c.matches(more):
			return true
		}
	}
	return false
}

// interestHook keeps the broker's interest in step with the clients' subscriptions.
type interestHook struct {
	mqtt.HookBase
	in *interest
}

func (h *interestHook) ID() string { return "chat-interest" }

func (h *interestHook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnSubscribe, mqtt.OnSubscribed, mqtt.OnUnsubscribed, mqtt.OnSessionEstablished,
		mqtt.OnDisconnect, mqtt.OnClientExpired}, []byte{b})
}

// OnSubscribe counts the filters before mochi indexes them, so that no publish can find a
// client in mochi's index that the interest lacks; OnSubscribed then corrects to what was
// granted.
func (h *interestHook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if !cl.Net.Inline {
		filters := make([]string, 0, len(pk.Filters))
		for _, f := range pk.Filters {
			filters = append(filters, f.Filter)
		}
		h.in.add(cl.ID, filters)
	}
	return pk
}

func (h *interestHook) OnSubscribed(cl *mqtt.Client, _ packets.Packet, _ []byte) { h.sync(cl) }
func (h *interestHook) OnUnsubscribed(cl *mqtt.Client, _ packets.Packet)         { h.sync(cl) }
func (h *interestHook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet)   { h.sync(cl) }

// OnDisconnect forgets a client whose session ends with its connection; a kept session's
// subscriptions still receive (mochi queues for them).
func (h *interestHook) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	if expire && !cl.IsTakenOver() {
		h.in.set(cl.ID, nil)
	}
}

func (h *interestHook) OnClientExpired(cl *mqtt.Client) { h.in.set(cl.ID, nil) }

// sync counts what the client holds now. It reads the client's subscriptions under the
// interest's lock, so that of two syncs of one client the later read is the one kept.
func (h *interestHook) sync(cl *mqtt.Client) {
	if cl.Net.Inline {
		return
	}
	h.in.mu.Lock()
	defer h.in.mu.Unlock()
	now := map[string]bool{}
	for f := range cl.State.Subscriptions.GetAll() {
		now[f] = true
	}
	h.in.setLocked(cl.ID, now)
}

// syncAll counts the subscriptions of every client mochi knows, those of kept sessions read
// back from the session store at start (which no hook hears) included.
func (h *interestHook) syncAll(srv *mqtt.Server) {
	for _, cl := range srv.Clients.GetAll() {
		h.sync(cl)
	}
}

// inlineHandlers are the functions given to OnPublish, for the direct path.
type inlineHandlers struct {
	mu  sync.Mutex
	fns atomic.Pointer[[]func(topic string, payload []byte)]
}

func (h *inlineHandlers) add(fn func(topic string, payload []byte)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var fns []func(string, []byte)
	if old := h.fns.Load(); old != nil {
		fns = append(fns, *old...)
	}
	fns = append(fns, fn)
	h.fns.Store(&fns)
}

func (h *inlineHandlers) all() []func(topic string, payload []byte) {
	if p := h.fns.Load(); p != nil {
		return *p
	}
	return nil
}
