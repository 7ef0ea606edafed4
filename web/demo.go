package web

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"time"

	"github.com/convead/chat-server/auth"
	"github.com/convead/chat-server/chat"
	"github.com/convead/chat-server/store"
)

// The demo organisation: one manager and one visitor, so that a newcomer chats with themself
// between the console and the demo page. Tokens are issued for this organisation only.
const (
	DemoOrg     = "demo"
	DemoManager = "anna"
	DemoVisitor = "visitor1"
	// DemoTokenTTL bounds the printed tokens; every start prints fresh ones.
	DemoTokenTTL = 24 * time.Hour
)

// Admin is what the demo setup needs of the chat domain.
type Admin interface {
	PutOrg(ctx context.Context, id auth.Identity, org string, in chat.OrgSettings) (store.Org, error)
	PutManager(ctx context.Context, id auth.Identity, org, manager, name string, capacity int) (store.Manager, error)
}

// Issuer signs tokens with the server's key.
type Issuer interface {
	Issue(id auth.Identity, ttl time.Duration, now time.Time) (string, error)
}

// Demo holds the tokens of the demo organisation's manager and visitor.
type Demo struct {
	ManagerToken, VisitorToken string
}

// SetupDemo creates (or refreshes) the demo organisation and its manager, and issues their
// tokens. The pages are served by the server itself, so the organisation needs no allowed
// origins: same-origin requests always pass.
func SetupDemo(ctx context.Context, admin Admin, issuer Issuer, now time.Time) (*Demo, error) {
	setup := auth.Identity{Subject: "demo-setup", Role: auth.Service, Org: DemoOrg}
	offline := "Nobody is on duty. Open the console (its link is in the server's log) and go on duty."
	if _, err := admin.PutOrg(ctx, setup, DemoOrg, chat.OrgSettings{Name: "Demo shop", ChatOfflineMessage: offline}); err != nil {
		return nil, fmt.Errorf("set up demo organisation %s: %w", DemoOrg, err)
	}
	if _, err := admin.PutManager(ctx, setup, DemoOrg, DemoManager, "Anna", 0); err != nil {
		return nil, fmt.Errorf("set up demo manager %s: %w", DemoManager, err)
	}
	var d Demo
	for _, t := range []struct {
		id  auth.Identity
		tok *string
	}{
		{auth.Identity{Subject: DemoManager, Role: auth.Manager, Org: DemoOrg}, &d.ManagerToken},
		{auth.Identity{Subject: DemoVisitor, Role: auth.Visitor, Org: DemoOrg}, &d.VisitorToken},
	} {
		tok, err := issuer.Issue(t.id, DemoTokenTTL, now)
		if err != nil {
			return nil, fmt.Errorf("issue demo token for %s: %w", t.id, err)
		}
		*t.tok = tok
	}
	return &d, nil
}

// Announce logs where the pages are; with the demo on, their links carry the demo tokens in
// the fragment, which browsers never send to a server.
func Announce(log *slog.Logger, addr net.Addr, demo *Demo) {
	base := BaseURL(addr)
	if demo == nil {
		log.Info("manager console (sign in with a manager token)", "url", base+"/console")
		return
	}
	log.Info("demo: open the manager console, go on duty", "url", base+"/console#token="+url.QueryEscape(demo.ManagerToken),
		"org", DemoOrg, "manager", DemoManager)
	log.Info("demo: open the shop page in another tab, chat", "url", base+"/demo#token="+url.QueryEscape(demo.VisitorToken),
		"org", DemoOrg, "visitor", DemoVisitor)
}

// BaseURL is the http URL of a bound address; a wildcard address is reached at localhost.
func BaseURL(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "http://" + addr.String()
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}
