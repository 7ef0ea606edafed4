package faye

import (
	"context"
	"log/slog"

	"github.com/convead/chat-server/chat"
	"github.com/convead/chat-server/faye/bayeux"
)

// refuse answers a subscribe or publish on channel name that the ACL did not allow: the Faye
// door's form of every chat error kind.
//
// A refusal (Forbidden, NotFound and every other judgement of the request) is Faye's own
// "403:<channel>:Forbidden channel", whatever the reason: a client may not learn whether a
// conversation exists.
//
// A server fault (the store down, a bug) is no refusal: the client may succeed later, and an
// operator must hear of it. It is answered with the catalogue's server error,
// "500:<channel>:Internal server error" (Bayeux has no "unavailable"; 500 is the only code of
// its catalogue that blames the server), with the session's usual retry advice, so the client
// keeps its connection and its application may retry, and it is logged with the cause.
func (e *Engine) refuse(ctx context.Context, r bayeux.Reply, op, name string, err error) bayeux.Reply {
	kind := chat.KindOf(err)
	if !kind.ServerFault() {
		return r.Fail(bayeux.ChannelForbidden(name))
	}
	level := slog.LevelWarn
	if kind == chat.KindInternal {
		level = slog.LevelError
	}
	e.log.Log(ctx, level, "faye: "+op+" failed", "channel", name, "err", err.Error())
	r = r.Fail(bayeux.ServerError(name))
	r.Advice = e.advice()
	return r
}
