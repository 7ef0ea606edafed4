// Package origin decides which browser origins may call the server: REST CORS requests,
// Faye's cross-origin long-polling and websocket upgrades all ask the same Policy.
package origin

import (
	"net/url"
	"strings"
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
