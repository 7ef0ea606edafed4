// Package api is the REST door: the `/chat/*` endpoints of the original product, the
// `/admin/*` endpoints that make it usable on its own, and health checks. Handlers only decode
// requests, authenticate, call the chat domain and encode replies; the rules live in chat.
package api

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/convead/chat-server/auth"
	"github.com/convead/chat-server/channel"
	"github.com/convead/chat-server/chat"
	"github.com/convead/chat-server/origin"
	"github.com/convead/chat-server/ratelimit"
	"github.com/convead/chat-server/store"
)

// Config configures the REST door.
type Config struct {
	// AnonymousOrg, when set, lets requests without a token act as the visitor named by their
	// `sender` in this organisation (the compatibility switch, README "Authentication").
	AnonymousOrg string
	// Origins governs cross-origin browser requests, server-wide and per organisation.
	Origins *origin.Registry
	// Ready lists the readiness checks of /readyz by name.
	Ready map[string]func(context.Context) error
	// Degraded lists checks whose failure leaves the node serving (reported as "degraded", 200):
	// a cluster node without NATS still serves its own clients, and taking every node out of
	// the load balancer during a NATS outage would serve nobody.
	Degraded map[string]func(context.Context) error
	// OrgKeys is the verifier's cache of organisation keys, invalidated when an organisation's
	// keys change here (nil: nothing to invalidate).
	OrgKeys *auth.KeyCache
	// OpensPerIP bounds conversation openings per client IP address (nil: no limit).
	OpensPerIP *ratelimit.Limiter
}

// Verifier turns a bearer token into an identity.
type Verifier interface {
	Verify(token string) (auth.Identity, error)
	// VerifyAdmin also accepts a server-wide admin token; only /admin/ routes use it.
	VerifyAdmin(token string) (auth.Identity, error)
}

type handlers struct {
	svc      *chat.Service
	verifier Verifier
	cfg      Config
	log      *slog.Logger
}

// Register mounts the REST API and health checks on app.
func Register(app *fiber.App, svc *chat.Service, v Verifier, cfg Config, log *slog.Logger) {
	h := &handlers{svc: svc, verifier: v, cfg: cfg, log: log}
	app.Get("/healthz", func(c *fiber.Ctx) error { return c.JSON(fiber.Map{"status": "ok"}) })
	app.Get("/readyz", h.ready)

	for _, prefix := range []string{"/chat", "/admin"} {
		app.Use(prefix, h.headers, h.cors)
	}
	app.Post("/chat/service/:visitor_id", h.openConversation)
	app.Post("/chat/conversation/:conversation_id", h.postMessage)
	app.Get("/chat/conversations", h.listConversations)
	app.Get("/chat/conversation/:conversation_id", h.conversationItem)
	app.Get("/chat/conversation/:conversation_id/messages", h.history)
	app.Post("/chat/conversation/:conversation_id/messages", h.history)
	app.Post("/chat/conversation/:conversation_id/transfer", h.transfer)
	app.Post("/chat/conversation/:conversation_id/claim", h.claim)
	app.Get("/chat/duty", h.onDuty)
	app.Post("/chat/conversation/:conversation_id/message/:message_id/mark_read", h.markRead)
	app.Post("/chat/conversation/:conversation_id/close", h.closeConversation)
	app.Post("/chat/notifications/:visitor_id", h.notify)
	app.Get("/admin/orgs/:org_id", h.org)
	app.Put("/admin/orgs/:org_id", h.putOrg)
	app.Get("/admin/orgs/:org_id/managers", h.managers)
	app.Put("/admin/orgs/:org_id/managers/:manager_id", h.putManager)
	app.Delete("/admin/orgs/:org_id/managers/:manager_id", h.deleteManager)
	app.Get("/admin/orgs/:org_id/duty", h.duty)
	app.Delete("/admin/orgs/:org_id/visitors/:visitor_id", h.eraseVisitor)
	app.Put("/admin/orgs/:org_id/keys/:kid", h.putOrgKey)
	app.Get("/admin/orgs/:org_id/keys", h.orgKeys)
	app.Put("/admin/orgs/:org_id/keys", h.putOrgJWKS)
	app.Delete("/admin/orgs/:org_id/keys/:kid", h.deleteOrgKey)
}

func (h *handlers) ready(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), 2*time.Second)
	defer cancel()
	checks := fiber.Map{}
	status := fiber.StatusOK
	for name, check := range h.cfg.Ready {
		if err := check(ctx); err != nil {
			checks[name] = err.Error()
			status = fiber.StatusServiceUnavailable
		} else {
			checks[name] = "ok"
		}
	}
	state := "ready"
	for name, check := range h.cfg.Degraded {
		if err := check(ctx); err != nil {
			checks[name] = "degraded: " + err.Error()
			state = "degraded"
		} else {
			checks[name] = "ok"
		}
	}
	if status != fiber.StatusOK {
		state = "unavailable"
	}
	return c.Status(status).JSON(fiber.Map{"status": state, "checks": checks})
}

// headers sets what every API reply carries: no sniffing, no framing, no caching.
func (h *handlers) headers(c *fiber.Ctx) error {
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	c.Set(fiber.HeaderXFrameOptions, "DENY")
	c.Set(fiber.HeaderReferrerPolicy, "no-referrer")
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Next()
}

// cors refuses browser requests from origins outside the allow-list, and answers CORS for the
// allowed cross-origin ones (SECURITY.md).
func (h *handlers) cors(c *fiber.Ctx) error {
	o, host := c.Get(fiber.HeaderOrigin), string(c.Request().Host())
	if !h.cfg.Origins.Allowed(o, host) {
		return &chat.Error{Kind: chat.KindForbidden, Code: "origin_not_allowed", Message: "this origin is not in http.allowed_origins"}
	}
	if !origin.CrossOrigin(o, host) {
		return c.Next()
	}
	c.Set(fiber.HeaderAccessControlAllowOrigin, o)
	c.Vary(fiber.HeaderOrigin)
	if c.Method() == fiber.MethodOptions && c.Get(fiber.HeaderAccessControlRequestMethod) != "" {
		c.Set(fiber.HeaderAccessControlAllowMethods, "GET, POST, PUT, DELETE, OPTIONS")
		c.Set(fiber.HeaderAccessControlAllowHeaders, "Authorization, Content-Type")
		c.Set(fiber.HeaderAccessControlMaxAge, "600")
		return c.SendStatus(fiber.StatusNoContent)
	}
	return c.Next()
}

// request decodes the parameters and tells who is asking. With a token, the sender is the
// token's subject and a contradicting `sender` is refused; without one, only the anonymous
// switch lets a visitor through.
func (h *handlers) request(c *fiber.Ctx) (Params, auth.Identity, error) {
	var id auth.Identity
	authz := c.Get(fiber.HeaderAuthorization)
	if authz != "" {
		scheme, token, _ := strings.Cut(authz, " ")
		if !strings.EqualFold(scheme, "Bearer") {
			return nil, id, chat.Unauthenticated("use Authorization: Bearer <token>")
		}
		verify := h.verifier.Verify
		if strings.HasPrefix(c.Path(), "/admin/") {
			verify = h.verifier.VerifyAdmin
		}
		var err error
		if id, err = verify(strings.TrimSpace(token)); err != nil {
			return nil, id, chat.Unauthenticated("the token is invalid or expired")
		}
	}
	p, err := DecodeParams(string(c.Request().Header.ContentType()), c.Body(), string(c.Request().URI().QueryString()))
	if err != nil {
		return nil, id, err
	}
	sender, hasSender, err := p.Sender()
	if err != nil {
		return nil, id, err
	}
	switch {
	case authz != "":
		if hasSender && (sender.Type != string(id.Role) || sender.ID != id.Subject) {
			return nil, id, &chat.Error{Kind: chat.KindForbidden, Code: "sender_mismatch", Message: "sender does not match the token"}
		}
		return p, id, h.originFor(c, id.Org)
	case h.cfg.AnonymousOrg == "":
		return nil, id, chat.Unauthenticated("a bearer token is required")
	case !hasSender || sender.Type != string(auth.Visitor):
		return nil, id, chat.Unauthenticated("without a token, only a visitor sender is accepted")
	case !channel.ValidID(sender.ID):
		return nil, id, chat.Invalid("invalid_sender", "sender.id must be 1-64 characters of [A-Za-z0-9_-]")
	}
	return p, auth.Identity{Subject: sender.ID, Role: auth.Visitor, Org: h.cfg.AnonymousOrg}, h.originFor(c, h.cfg.AnonymousOrg)
}

// originFor checks a browser request against the origins of the caller's organisation, now
// that it is known (the cors middleware could only check the union of all of them).
func (h *handlers) originFor(c *fiber.Ctx, org string) error {
	o, host := c.Get(fiber.HeaderOrigin), string(c.Request().Host())
	if origin.CrossOrigin(o, host) && !h.cfg.Origins.AllowedFor(org, o, host) {
		return &chat.Error{Kind: chat.KindForbidden, Code: "origin_not_allowed", Message: "this origin is not allowed for this organisation"}
	}
	return nil
}

// reader reads a request's parameters, keeping the first error so handlers check once.
type reader struct {
	p   Params
	id  auth.Identity
	err error
}

func (h *handlers) read(c *fiber.Ctx) *reader {
	p, id, err := h.request(c)
	return &reader{p: p, id: id, err: err}
}

func (r *reader) str(key string) string {
	if r.err != nil {
		return ""
	}
	s, err := r.p.String(key)
	r.err = err
	return s
}

func (r *reader) int(key string) int {
	if r.err != nil {
		return 0
	}
	n, err := r.p.Int(key)
	r.err = err
	return n
}

func (r *reader) seq(key string) *uint64 {
	if r.err != nil {
		return nil
	}
	n, err := r.p.Seq(key)
	r.err = err
	return n
}

func (r *reader) object(key string) json.RawMessage {
	if r.err != nil {
		return nil
	}
	o, err := r.p.Object(key)
	r.err = err
	return o
}

// reply sends {key: v} with status, or the error.
func reply(c *fiber.Ctx, status int, key string, v any, err error) error {
	if err != nil {
		return err
	}
	return c.Status(status).JSON(fiber.Map{key: v})
}

// created is 201 for a new resource, 200 for an existing one (a re-open, a retried post).
func created(isNew bool) int {
	if isNew {
		return fiber.StatusCreated
	}
	return fiber.StatusOK
}

func (h *handlers) openConversation(c *fiber.Ctx) error {
	if !h.cfg.OpensPerIP.Allow(c.IP(), time.Now()) {
		return &chat.Error{Kind: chat.KindRateLimited, Code: "rate_limited", Message: "too many conversation openings from this address, retry in a minute"}
	}
	r := h.read(c)
	if r.err != nil {
		return r.err
	}
	conv, isNew, err := h.svc.OpenConversation(c.UserContext(), r.id, c.Params("visitor_id"))
	if err != nil || conv.Status != store.StatusPending {
		return reply(c, created(isNew), "conversation", conv, err)
	}
	// A queued visitor waits for a manager: the widget shows the offline message meanwhile.
	msg, err := h.svc.OfflineMessage(c.UserContext(), r.id.Org)
	if err != nil {
		return err
	}
	return c.Status(created(isNew)).JSON(fiber.Map{"conversation": conv, "chat_offline_message": msg})
}

func (h *handlers) listConversations(c *fiber.Ctx) error {
	r := h.read(c)
	if r.err != nil {
		return r.err
	}
	q, err := ListQueryOf(r.p)
	if err != nil {
		return err
	}
	page, err := h.svc.ListConversations(c.UserContext(), r.id, q)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusOK).JSON(page)
}

func (h *handlers) conversationItem(c *fiber.Ctx) error {
	r := h.read(c)
	if r.err != nil {
		return r.err
	}
	item, err := h.svc.ConversationItem(c.UserContext(), r.id, c.Params("conversation_id"))
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusOK).JSON(item)
}

func (h *handlers) transfer(c *fiber.Ctx) error {
	r := h.read(c)
	to := r.str("manager_id")
	if r.err != nil {
		return r.err
	}
	conv, err := h.svc.Transfer(c.UserContext(), r.id, c.Params("conversation_id"), to)
	return reply(c, fiber.StatusOK, "conversation", conv, err)
}

func (h *handlers) claim(c *fiber.Ctx) error {
	r := h.read(c)
	if r.err != nil {
		return r.err
	}
	conv, err := h.svc.Claim(c.UserContext(), r.id, c.Params("conversation_id"))
	return reply(c, fiber.StatusOK, "conversation", conv, err)
}

func (h *handlers) onDuty(c *fiber.Ctx) error {
	r := h.read(c)
	if r.err != nil {
		return r.err
	}
	on, err := h.svc.OnDutyManagers(r.id)
	return reply(c, fiber.StatusOK, "on_duty", on, err)
}

func (h *handlers) postMessage(c *fiber.Ctx) error {
	r := h.read(c)
	cmid := r.str("client_message_id")
	if r.err != nil {
		return r.err
	}
	content, err := chat.ContentOf(r.p["content"])
	if err != nil {
		return err
	}
	m, isNew, err := h.svc.PostMessage(c.UserContext(), r.id, c.Params("conversation_id"), content, cmid)
	return reply(c, created(isNew), "message", m, err)
}

func (h *handlers) history(c *fiber.Ctx) error {
	r := h.read(c)
	q := chat.HistoryQuery{Count: r.int("count"), SinceID: r.str("since_id"), AfterID: r.str("after_id"),
		SinceSeq: r.seq("since_seq"), AfterSeq: r.seq("after_seq")}
	if r.err != nil {
		return r.err
	}
	msgs, err := h.svc.History(c.UserContext(), r.id, c.Params("conversation_id"), q)
	return reply(c, fiber.StatusOK, "messages", msgs, err)
}

func (h *handlers) markRead(c *fiber.Ctx) error {
	r := h.read(c)
	if r.err != nil {
		return r.err
	}
	m, err := h.svc.MarkRead(c.UserContext(), r.id, c.Params("conversation_id"), c.Params("message_id"))
	return reply(c, fiber.StatusOK, "message", m, err)
}

func (h *handlers) closeConversation(c *fiber.Ctx) error {
	r := h.read(c)
	if r.err != nil {
		return r.err
	}
	conv, err := h.svc.CloseConversation(c.UserContext(), r.id, c.Params("conversation_id"))
	return reply(c, fiber.StatusOK, "conversation", conv, err)
}

func (h *handlers) notify(c *fiber.Ctx) error {
	r := h.read(c)
	data := r.object("notification")
	if r.err != nil {
		return r.err
	}
	if data == nil {
		return chat.Invalid("invalid_notification", "notification is required")
	}
	n, err := h.svc.Notify(c.UserContext(), r.id, c.Params("visitor_id"), data)
	return reply(c, fiber.StatusCreated, "notification", n, err)
}

func (h *handlers) org(c *fiber.Ctx) error {
	r := h.read(c)
	if r.err != nil {
		return r.err
	}
	o, err := h.svc.Org(c.UserContext(), r.id, c.Params("org_id"))
	return reply(c, fiber.StatusOK, "org", o, err)
}

func (h *handlers) putOrg(c *fiber.Ctx) error {
	r := h.read(c)
	if r.err != nil {
		return r.err
	}
	in, err := OrgSettingsOf(r.p)
	if err != nil {
		return err
	}
	o, err := h.svc.PutOrg(c.UserContext(), r.id, c.Params("org_id"), in)
	if err == nil {
		h.cfg.Origins.SetOrg(o.ID, o.AllowedOrigins)
	}
	return reply(c, fiber.StatusOK, "org", o, err)
}

func (h *handlers) putManager(c *fiber.Ctx) error {
	r := h.read(c)
	name, capacity := r.str("name"), r.int("capacity")
	if r.err != nil {
		return r.err
	}
	m, err := h.svc.PutManager(c.UserContext(), r.id, c.Params("org_id"), c.Params("manager_id"), name, capacity)
	return reply(c, fiber.StatusOK, "manager", m, err)
}

func (h *handlers) managers(c *fiber.Ctx) error {
	r := h.read(c)
	if r.err != nil {
		return r.err
	}
	ms, err := h.svc.Managers(c.UserContext(), r.id, c.Params("org_id"))
	return reply(c, fiber.StatusOK, "managers", ms, err)
}

func (h *handlers) deleteManager(c *fiber.Ctx) error {
	r := h.read(c)
	if r.err != nil {
		return r.err
	}
	if err := h.svc.DeleteManager(c.UserContext(), r.id, c.Params("org_id"), c.Params("manager_id")); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func (h *handlers) duty(c *fiber.Ctx) error {
	r := h.read(c)
	if r.err != nil {
		return r.err
	}
	on, err := h.svc.Duty(r.id, c.Params("org_id"))
	return reply(c, fiber.StatusOK, "on_duty", on, err)
}

func (h *handlers) eraseVisitor(c *fiber.Ctx) error {
	r := h.read(c)
	if r.err != nil {
		return r.err
	}
	if err := h.svc.EraseVisitor(c.UserContext(), r.id, c.Params("org_id"), c.Params("visitor_id")); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func (h *handlers) putOrgKey(c *fiber.Ctx) error {
	r := h.read(c)
	alg, secret, publicKey := r.str("alg"), r.str("secret"), r.str("public_key")
	if r.err != nil {
		return r.err
	}
	org := c.Params("org_id")
	k, err := h.svc.PutOrgKey(c.UserContext(), r.id, org, c.Params("kid"), alg, secret, publicKey)
	if err == nil {
		h.cfg.OrgKeys.Invalidate(org)
	}
	return reply(c, fiber.StatusOK, "key", k, err)
}

// putOrgJWKS takes a JWKS document as the body: {"keys":[…]}.
func (h *handlers) putOrgJWKS(c *fiber.Ctx) error {
	r := h.read(c)
	if r.err != nil {
		return r.err
	}
	org := c.Params("org_id")
	keys, err := h.svc.PutOrgJWKS(c.UserContext(), r.id, org, c.Body())
	if err == nil {
		h.cfg.OrgKeys.Invalidate(org)
	}
	return reply(c, fiber.StatusOK, "keys", keys, err)
}

func (h *handlers) orgKeys(c *fiber.Ctx) error {
	r := h.read(c)
	if r.err != nil {
		return r.err
	}
	keys, err := h.svc.OrgKeys(c.UserContext(), r.id, c.Params("org_id"))
	return reply(c, fiber.StatusOK, "keys", keys, err)
}

func (h *handlers) deleteOrgKey(c *fiber.Ctx) error {
	r := h.read(c)
	if r.err != nil {
		return r.err
	}
	org := c.Params("org_id")
	err := h.svc.DeleteOrgKey(c.UserContext(), r.id, org, c.Params("kid"))
	if err != nil {
		return err
	}
	h.cfg.OrgKeys.Invalidate(org)
	return c.SendStatus(fiber.StatusNoContent)
}
