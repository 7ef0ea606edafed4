// Package origin decides which browser origins may call the server: REST CORS requests,
// Faye's cross-origin long-polling and websocket upgrades all ask the same Policy.
package origin

import (
	"net/url"
	"strings"
	"sync"
)

// Policy is an allow-list of origins ("https://shop.example"); "*" allows any.
type Policy struct {
	any     bool
	allowed map[string]bool
}

// NewPolicy builds a policy from configured origins. Entries are compared case-insensitively
// and without a trailing slash.
func NewPolicy(origins []string) Policy {
	p := Policy{allowed: map[string]bool{}}
	for _, o := range origins {
		o = strings.TrimRight(strings.ToLower(strings.TrimSpace(o)), "/")
		switch o {
		case "":
		case "*":
			p.any = true
		default:
			p.allowed[o] = true
		}
	}
	return p
}

// Allowed reports whether a request carrying the Origin header origin may be served, host being
// the request's Host header. No Origin (native apps, curl, server-side clients) and a
// same-origin request are always allowed; "null" and malformed origins only with "*".
func (p Policy) Allowed(origin, host string) bool {
	if origin == "" || p.any {
		return true
	}
	o := strings.ToLower(origin)
	if p.allowed[o] {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && strings.EqualFold(u.Host, host)
}

// CrossOrigin reports whether origin differs from host (so CORS headers are needed).
func CrossOrigin(origin, host string) bool {
	if origin == "" {
		return false
	}
	u, err := url.Parse(origin)
	return err != nil || !strings.EqualFold(u.Host, host)
}

// Registry is the server-wide policy plus each organisation's own origins (its shops' sites).
// Before a request's organisation is known (a CORS preflight, a websocket upgrade) an origin
// passes if the server or any organisation allows it; once it is known (an authenticated
// request, a Faye handshake) only the server's and that organisation's origins count.
type Registry struct {
	global Policy

	mu   sync.RWMutex
	orgs map[string]map[string]bool // org → its origins
	all  map[string]int             // origin → how many organisations list it
}

// NewRegistry returns a registry over the server-wide policy.
func NewRegistry(global Policy) *Registry {
	return &Registry{global: global, orgs: map[string]map[string]bool{}, all: map[string]int{}}
}

func normalise(o string) string { return strings.TrimRight(strings.ToLower(strings.TrimSpace(o)), "/") }

// SetOrg replaces the origins of an organisation.
func (r *Registry) SetOrg(org string, origins []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for o := range r.orgs[org] {
		if r.all[o]--; r.all[o] <= 0 {
			delete(r.all, o)
		}
	}
	set := map[string]bool{}
	for _, o := range origins {
		if o = normalise(o); o != "" && !set[o] {
			set[o] = true
			r.all[o]++
		}
	}
	r.orgs[org] = set
}

// Allowed is the check before the organisation is known.
func (r *Registry) Allowed(origin, host string) bool {
	if r.global.Allowed(origin, host) {
		return true
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.all[normalise(origin)] > 0
}

// AllowedFor is the check once the request's organisation is known.
func (r *Registry) AllowedFor(org, origin, host string) bool {
	if r.global.Allowed(origin, host) {
		return true
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.orgs[org][normalise(origin)]
}

// Valid reports whether o is an origin an administrator may list: scheme and host, nothing else.
func Valid(o string) bool {
	u, err := url.Parse(o)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" &&
		(u.Path == "" || u.Path == "/") && u.RawQuery == "" && u.Fragment == "" && u.User == nil
}
