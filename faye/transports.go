package faye

import (
	"context"
	"log/slog"

	"github.com/convead/chat-server/faye/bayeux"
)

// The engine's side of its transports (package faye/transport): what a transport may ask of
// the engine, and what it must guarantee in return. A transport decodes batches (within
// Config().MaxBatch), passes them with the transport's name and the Peer, and writes what comes
// back; it never sees a session, only the Connect and Consumer handles below.

// Config returns the configuration the engine was built with: its transports follow its
// timings (Timeout, Ping) and limits (MaxBatch).
func (e *Engine) Config() Config { return e.cfg }

// Logger returns the engine's logger, for its transports' messages.
func (e *Engine) Logger() *slog.Logger { return e.log }

// Answer answers a polling batch (long-polling, cross-origin long-polling, callback-polling):
// raw is the batch as received and msgs its decoding. In a cluster, a batch of another node's
// client is forwarded there; otherwise it is processed here, and a connect held until it may be
// answered (or ctx ends). It returns the encoded replies and deliveries. The transport must
// hand it the whole request and write the answer as is.
func (e *Engine) Answer(ctx context.Context, raw []byte, msgs []bayeux.Message, transport string, peer Peer) []byte {
	if out, ok := e.forward(ctx, raw, msgs, transport, peer); ok {
		return out
	}
	return e.answer(ctx, msgs, transport, peer)
}

// answer processes a batch here, holding its connect.
func (e *Engine) answer(ctx context.Context, msgs []bayeux.Message, transport string, peer Peer) []byte {
	replies, connect := e.Process(ctx, nil, msgs, transport, peer)
	if connect == nil {
		return bayeux.EncodeBatch(replies, nil)
	}
	deliveries := e.hold(ctx, connect)
	return bayeux.EncodeBatch(append(replies, connect.Reply), deliveries)
}

// Stream attaches a websocket to the session of c, a connect it just carried: from now on the
// session's deliveries are signalled to sk (see Sink) and taken with the Consumer's Take. It
// returns nil when the session has ended. The transport must call Release once, when the
// socket stops serving the session (closed, or bound to another session); it must answer
// c.Reply itself, within c.Wait.
func (e *Engine) Stream(c *Connect, sk Sink) *Consumer {
	return e.stream(c.session, sk)
}

// StreamClient attaches an EventSource to the session clientID names, when token shows the
// identity that opened it (a session opened without a token: an empty token). It returns nil
// for an unknown, foreign or ended session. The transport waits on the Consumer's Wake and
// Done, writes TakeAll after each wake, and calls Release once when the stream ends.
func (e *Engine) StreamClient(clientID, token string) *Consumer {
	s := e.owned(clientID, token)
	if s == nil {
		return nil
	}
	return e.stream(s, nil)
}

// Release ends a stream's hold on its session (c nil: nothing to end): a manager goes off duty
// at once, and the session's idle time starts. A method rather than a closure per stream: a
// socket keeps its consumer anyway, and thousands of idle sockets would each keep a closure
// too.
func (e *Engine) Release(c *Consumer) {
	if c == nil {
		return
	}
	if c.s.detach(c) {
		e.duty.Gone(holder(c.s))
	}
	c.s.touch(e.now())
}

// Take appends the deliveries queued for c's session to dst and empties the queue, if c is
// still its consumer.
func (c *Consumer) Take(dst [][]byte) [][]byte { return c.s.takeFor(c, dst) }

// TakeAll removes and returns everything queued for c's session.
func (c *Consumer) TakeAll() [][]byte { return c.s.take() }

// Wake receives when deliveries were queued; only for a consumer without a Sink.
func (c *Consumer) Wake() <-chan struct{} { return c.wake }

// Done is closed when c was replaced or its session ended; only for a consumer without a Sink.
func (c *Consumer) Done() <-chan struct{} { return c.done }

// Serves reports whether c still consumes the session of connect: a socket that sends
// another connect for the session it streams keeps its stream.
func (c *Consumer) Serves(connect *Connect) bool {
	return c.s == connect.session && c.s.current(c)
}
