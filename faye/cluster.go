package faye

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/convead/chat-server/channel"
	"github.com/convead/chat-server/faye/bayeux"
)

// Cluster mode. Sessions live in the memory of the node that handshook them; websocket and
// EventSource connections stay on their node. Long-polling requests of one client may reach any
// node (no sticky sessions): the client id names its node ("<node>_<random>"), and a node that
// gets a request for another node's client forwards it there (Router) and relays the answer.
// Forwarding was chosen over sharing session state because it keeps deliveries local: only the
// few requests that land on the wrong node cross the network, not every delivery of every
// client. When the owner is gone, the request is answered here like any unknown client's (401:
// the client handshakes again, on this node, and catches up from the history).

// nodeSep separates the node name from the random part of a client id; node names never hold it.
const nodeSep = "_"

// Router reaches the node that owns a client.
type Router interface {
	ForwardFaye(ctx context.Context, node string, req []byte) ([]byte, error)
}

// Interest hears of the channels this node's Faye clients subscribe to, each subscription
// counted once (cluster mode subscribes to them in NATS).
type Interest interface {
	Add(org, name string)
	Remove(org, name string)
}

// NodeOf returns the node that issued a client id; "" for ids of a node outside a cluster.
func NodeOf(clientID string) string {
	node, _, ok := strings.Cut(clientID, nodeSep)
	if !ok || !channel.ValidNodeName(node) { // a node name, nothing a client made up
		return ""
	}
	return node
}

// forwarded is a long-polling request sent to the node that owns its client.
type forwarded struct {
	Transport string          `json:"transport"`
	Peer      Peer            `json:"peer"`
	Batch     json.RawMessage `json:"batch"`
}

// owner returns the other node that owns the batch's client, if any.
func (e *Engine) owner(msgs []bayeux.Message) string {
	if e.cfg.Router == nil {
		return ""
	}
	for _, m := range msgs {
		if m.ClientID == "" {
			continue
		}
		node := NodeOf(m.ClientID)
		if node == "" || node == e.cfg.Node || e.session(m.ClientID) != nil {
			return ""
		}
		return node
	}
	return ""
}

// forward sends a batch of another node's client to that node. ok false: answer it here.
func (e *Engine) forward(ctx context.Context, raw []byte, msgs []bayeux.Message, transport string, peer Peer) ([]byte, bool) {
	node := e.owner(msgs)
	if node == "" {
		return nil, false
	}
	req, err := json.Marshal(forwarded{Transport: transport, Peer: peer, Batch: raw})
	if err != nil {
		return nil, false
	}
	out, err := e.cfg.Router.ForwardFaye(ctx, node, req)
	if err != nil {
		// Debug: the usual cause is a node that stopped (or a made-up client id), and the
		// answer here (401, handshake again) is the remedy.
		e.log.Debug("faye: forwarding to the client's node failed; answering here", "node", node, "err", err.Error())
		return nil, false
	}
	return out, true
}

// ServeForwarded answers a request another node forwarded for one of this node's clients: the
// encoded replies, after holding a connect as usual.
func (e *Engine) ServeForwarded(ctx context.Context, req []byte) []byte {
	var f forwarded
	if err := json.Unmarshal(req, &f); err != nil {
		// Another node's request: a version skew between nodes, not a client's fault.
		e.log.Warn("faye: undecodable request forwarded by another node", "err", err.Error())
		return bayeux.EncodeBatch(nil, nil)
	}
	msgs, err := bayeux.DecodeBatch(f.Batch, e.cfg.MaxBatch)
	if err != nil {
		e.log.Warn("faye: undecodable batch forwarded by another node", "err", err.Error(), "remote", f.Peer.IP)
		return bayeux.EncodeBatch(nil, nil)
	}
	transport := bayeux.LongPolling
	if f.Transport == bayeux.CallbackPolling {
		transport = bayeux.CallbackPolling
	}
	return e.answer(ctx, msgs, transport, f.Peer)
}
