// Package presence tracks which managers are on duty. A manager is on duty while at least one of
// its connections (an MQTT client, a Faye client) holds a subscription to its organisation's
// `/service/*`; the doors report joins and leaves, the chat domain asks who is on duty.
package presence

import (
	"slices"
	"sync"
)

type member struct{ org, manager string }

// Registry is an in-memory, concurrency-safe set of (organisation, manager, holder) entries.
// A holder names one connection, such as "mqtt:<client id>", so that a manager connected twice
// stays on duty until both connections leave.
type Registry struct {
	mu      sync.RWMutex
	byOrg   map[string]map[string]map[string]struct{} // org → manager → holders
	byHoldr map[string]map[member]struct{}            // holder → what it holds
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{byOrg: map[string]map[string]map[string]struct{}{}, byHoldr: map[string]map[member]struct{}{}}
}

// Join puts manager of org on duty through holder. Joining twice is harmless.
func (r *Registry) Join(org, manager, holder string) {
	r.mu.Lock()
	defer r.mu.Unlock()
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
	held := r.byHoldr[holder]
	if held == nil {
		held = map[member]struct{}{}
		r.byHoldr[holder] = held
	}
	held[member{org, manager}] = struct{}{}
}

// Leave takes holder's duty for manager of org away; the manager stays on duty through others.
func (r *Registry) Leave(org, manager, holder string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.leave(member{org, manager}, holder)
}

// LeaveAll removes everything holder held, as when its connection closes.
func (r *Registry) LeaveAll(holder string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for m := range r.byHoldr[holder] {
		r.leave(m, holder)
	}
}

func (r *Registry) leave(m member, holder string) {
	if held := r.byHoldr[holder]; held != nil {
		delete(held, m)
		if len(held) == 0 {
			delete(r.byHoldr, holder)
		}
	}
	managers := r.byOrg[m.org]
	holders := managers[m.manager]
	if holders == nil {
		return
	}
	delete(holders, holder)
	if len(holders) == 0 {
		delete(managers, m.manager)
	}
	if len(managers) == 0 {
		delete(r.byOrg, m.org)
	}
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
