package duty

import (
	"slices"
	"testing"

	"github.com/convead/chat-server/auth"
)

// TestRule: only a manager holding `/service/*` is on duty; anything else the doors report
// changes nothing.
func TestRule(t *testing.T) {
	r := NewRegistry()
	mgr := auth.Identity{Subject: "m1", Role: auth.Manager, Org: "O"}
	vis := auth.Identity{Subject: "v1", Role: auth.Visitor, Org: "O"}
	svc := auth.Identity{Subject: "s1", Role: auth.Service, Org: "O"}
	r.Subscribed(vis, "/service/*", "v")
	r.Subscribed(svc, "/service/*", "s")
	r.Subscribed(mgr, "/service/v1", "m")
	r.Subscribed(mgr, "/service/**", "m")
	r.Subscribed(mgr, "/conversations/c", "m")
	if got := r.OnDuty("O"); len(got) != 0 {
		t.Fatalf("on duty without /service/*: %v", got)
	}
	r.Subscribed(mgr, "/service/*", "m")
	r.Subscribed(mgr, "/service/*", "m2")
	r.Unsubscribed(mgr, "/conversations/c", "m")
	r.Unsubscribed(mgr, "/service/*", "m")
	if got := r.OnDuty("O"); !slices.Equal(got, []string{"m1"}) {
		t.Fatalf("on duty through m2: %v", got)
	}
	r.Gone("m2")
	if got := r.OnDuty("O"); len(got) != 0 {
		t.Fatalf("on duty after every holder left: %v", got)
	}
}
