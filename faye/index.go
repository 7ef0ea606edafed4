package faye

import (
	"strings"
	"sync"

	"github.com/convead/chat-server/channel"
)

// index finds the sessions subscribed to a concrete channel. It replaces one broker
// subscription per Faye client: the bridge holds a single broker subscription, and a publish
// costs one lookup per level of its channel here, whatever the number of clients.
type index struct {
	mu    sync.RWMutex
	exact map[string]map[*session]struct{} // org \0 /a/b      ← subscribed to /a/b
	one   map[string]map[*session]struct{} // org \0 /a        ← subscribed to /a/*
	many  map[string]map[*session]struct{} // org \0 /a or org \0 ("" for /**) ← /a/**, /**
}

func newIndex() *index {
	return &index{exact: map[string]map[*session]struct{}{}, one: map[string]map[*session]struct{}{}, many: map[string]map[*session]struct{}{}}
}

// slot returns the map and key a channel name or pattern of org lives under.
func (ix *index) slot(org, name string) (map[string]map[*session]struct{}, string) {
	switch {
	case strings.HasSuffix(name, "/**"):
		return ix.many, org + "\x00" + strings.TrimSuffix(name, "/**")
	case strings.HasSuffix(name, "/*"):
		return ix.one, org + "\x00" + strings.TrimSuffix(name, "/*")
	}
	return ix.exact, org + "\x00" + name
}

func (ix *index) add(org, name string, s *session) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	m, k := ix.slot(org, name)
	set := m[k]
	if set == nil {
		set = map[*session]struct{}{}
		m[k] = set
	}
	set[s] = struct{}{}
}

func (ix *index) remove(org, name string, s *session) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	m, k := ix.slot(org, name)
	if set := m[k]; set != nil {
		delete(set, s)
		if len(set) == 0 {
			delete(m, k)
		}
	}
}

// match calls fn once for every session subscribed to the concrete channel name of org,
// however many of its subscriptions match.
func (ix *index) match(org, name string, fn func(*session)) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	var seen map[*session]struct{}
	visit := func(set map[*session]struct{}) {
		for s := range set {
			if seen != nil {
				if _, dup := seen[s]; dup {
					continue
				}
			}
			fn(s)
		}
	}
	sets := make([]map[*session]struct{}, 0, 4)
	// Every key looked up is a prefix of org \0 name: built once, on the stack for usual
	// lengths, and looked up as string(key[:n]), which does not copy.
	var buf [160]byte
	key := append(append(append(buf[:0], org...), 0), name...)
	at := len(org) + 1 // where the name starts in key
	if set := ix.exact[string(key)]; set != nil {
		sets = append(sets, set)
	}
	parent := name[:strings.LastIndexByte(name, '/')]
	if set := ix.one[string(key[:at+len(parent)])]; set != nil {
		sets = append(sets, set)
	}
	for p := parent; ; p = p[:strings.LastIndexByte(p, '/')] {
		if set := ix.many[string(key[:at+len(p)])]; set != nil {
			sets = append(sets, set)
		}
		if p == "" {
			break
		}
	}
	if len(sets) > 1 {
		seen = map[*session]struct{}{}
		for _, set := range sets {
			visit(set)
			for s := range set {
				seen[s] = struct{}{}
			}
		}
		return
	}
	for _, set := range sets {
		visit(set)
	}
}

// concrete reports whether name can be published to (no wildcard, a valid channel).
func concrete(name string) bool { return channel.Valid(name) && !channel.IsPattern(name) }
