package duty

import (
	"slices"
	"sync"
)

type member struct{ org, manager string }

// Registry is an in-memory, concurrency-safe set of (organisation, manager, holder) entries.
// A holder names one connection, such as "mqtt:<client id>", so that a manager connected twice
// stays on duty until both connections leave.
type Registry struct {
	mu       sync.RWMutex
	byOrg    map[string]map[string]map[string]struct{} // org → manager → holders
	byHolder map[string]map[member]struct{}            // holder → what it holds
	// changed, when set, hears of every organisation whose managers on duty changed (cluster
	// mode announces them to the other nodes); called outside the lock.
	changed func(org string)
}

// Notify sets fn to hear of every organisation whose managers on duty change. Call it before
// the registry is used.
func (r *Registry) Notify(fn func(org string)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.changed = fn
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{byOrg: map[string]map[string]map[string]struct{}{}, byHolder: map[string]map[member]struct{}{}}
}

// Join puts manager of org on duty through holder. Joining twice is harmless.
func (r *Registry) Join(org, manager, holder string) {
	r.mu.Lock()
	_, was := r.byOrg[org][manager]
	r.join(org, manager, holder)
	changed := r.changed
	r.mu.Unlock()
	if !was && changed != nil {
		changed(org)
	}
}

func (r *Registry) join(org, manager, holder string) {
	managers := r.byOrg[org]
	if managers == nil {
		managers = map[string]map[string]struct{}{}
		r.byOrg[org] = managers
	}
	holders := managers[manager]
	if holders == nil {
		holders = map[string]struct{}{}
		managers[manager] = holders
	}
	holders[holder] = struct{}{}
	held := r.byHolder[holder]
	if held == nil {
		held = map[member]struct{}{}
		r.byHolder[holder] = held
	}
	held[member{org, manager}] = struct{}{}
}

// Leave takes holder's duty for manager of org away; the manager stays on duty through others.
func (r *Registry) Leave(org, manager, holder string) {
	r.mu.Lock()
	gone := r.leave(member{org, manager}, holder)
	changed := r.changed
	r.mu.Unlock()
	if gone && changed != nil {
		changed(org)
	}
}

// Gone takes holder off duty for everything it held: its connection closed, or (Faye) its
// stream ended.
func (r *Registry) Gone(holder string) {
	r.mu.Lock()
	var orgs []string
	for m := range r.byHolder[holder] {
		if r.leave(m, holder) {
			orgs = append(orgs, m.org)
		}
	}
	changed := r.changed
	r.mu.Unlock()
	if changed != nil {
		for _, org := range orgs {
			changed(org)
		}
	}
}

// leave reports whether the manager went off duty (held by nobody else).
func (r *Registry) leave(m member, holder string) bool {
	if held := r.byHolder[holder]; held != nil {
		delete(held, m)
		if len(held) == 0 {
			delete(r.byHolder, holder)
		}
	}
	managers := r.byOrg[m.org]
	holders := managers[m.manager]
	if holders == nil {
		return false
	}
	delete(holders, holder)
	if len(holders) > 0 {
		return false
	}
	delete(managers, m.manager)
	if len(managers) == 0 {
		delete(r.byOrg, m.org)
	}
	return true
}

// Count returns the number of managers on duty across all organisations.
func (r *Registry) Count() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	n := 0
	for _, managers := range r.byOrg {
		n += len(managers)
	}
	return n
}

// Snapshot returns every organisation's managers on duty.
func (r *Registry) Snapshot() map[string][]string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make(map[string][]string, len(r.byOrg))
	for org, managers := range r.byOrg {
		list := make([]string, 0, len(managers))
		for m := range managers {
			list = append(list, m)
		}
		slices.Sort(list)
		out[org] = list
	}
	return out
}

// OnDuty returns the managers of org on duty now, sorted.
func (r *Registry) OnDuty(org string) []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.byOrg[org]))
	for m := range r.byOrg[org] {
		out = append(out, m)
	}
	slices.Sort(out)
	return out
}
