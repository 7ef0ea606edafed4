package e2e

import (
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/convead/chat-server/auth"
)

// clusterSetup builds the binary and starts NATS and FerretDB for a multi-process test.
func clusterSetup(t *testing.T) (bin string, nats *natsServer, mongoURI string) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs several server processes: skipped in -short mode")
	}
	mongoURI = os.Getenv("CHAT_TEST_MONGO_URI")
	if mongoURI == "" {
		mongoURI = startFerretDB(t)
	}
	return buildServer(t), startNATS(t), mongoURI
}

// openWith opens visitor's conversation through e until it succeeds (duty from other nodes
// arrives within a heartbeat) and returns it.
func openWith(t *testing.T, e *env, tok, visitor string) map[string]any {
	t.Helper()
	var conv map[string]any
	waitFor(t, "conversation of "+visitor+" opened", func() bool {
		r := e.post("/chat/service/"+visitor, tok, nil)
		conv = r.obj("conversation")
		return r.status == http.StatusCreated || r.status == http.StatusOK
	})
	return conv
}

func msgOf(data map[string]any) map[string]any {
	m, _ := data["message"].(map[string]any)
	return m
}

// TestClusterChatFlow: a widget on node 1 (Faye), a manager whose long-polling requests
// alternate between the nodes (Faye), and the visitor's app on node 3 (MQTT) chat through three
// processes sharing NATS and one MongoDB database (FerretDB). The manager's duty on one node is
// seen by openings on the others; visitor and manager post at the same time through different
// nodes, and every message is stored once, in each sender's order, and delivered once to
// everyone.
func TestClusterChatFlow(t *testing.T) {
	bin, nats, uri := clusterSetup(t)
	nodes := startCluster(t, bin, nats, uri, 3)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	vTok, mTok := token(t, auth.Visitor, "shop", "v1"), token(t, auth.Manager, "shop", "anna")

	for _, n := range nodes {
		r := want(t, n.call(http.MethodGet, "/readyz", "", nil), http.StatusOK)
		if r.raw != `{"checks":{"broker":"ok","cluster":"ok","http":"ok","store":"ok"},"status":"ready"}` {
			t.Fatalf("%s readyz: %s", n.name, r.raw)
		}
	}

	// The manager's client handshakes on node 2; its later requests go round the three nodes.
	anna := newLPClient(t, mTok, true, n2.base, n3.base, n1.base)
	anna.start("/service/*")
	if !strings.HasPrefix(anna.clientID(), "node-2_") {
		t.Fatalf("client id %q does not name its node", anna.clientID())
	}
	// Duty held on node 2 is seen by an opening on node 1.
	conv := openWith(t, n1.env, vTok, "v1")
	cid := fmt.Sprint(conv["id"])
	if conv["manager_id"] != "anna" {
		t.Fatalf("conversation assigned to %v, want anna", conv["manager_id"])
	}
	if m := anna.nextOn("/service/v1"); m.data["entity"] != "conversation" {
		t.Fatalf("anna got %v", m)
	}

	widget := newLPClient(t, vTok, false, n1.base)
	widget.start("/conversations/" + cid)
	app := n3.mustConnect(vTok, "app-v1")
	app.mustSubscribe("orgs/shop/conversations/" + cid)
	app.mustSubscribe("orgs/shop/replies/visitor/v1")
	annaConv := newLPClient(t, mTok, true, n2.base, n1.base, n3.base)
	annaConv.start("/conversations/" + cid)

	// The manager posts through node 2: the widget (node 1) and the app (node 3) get it.
	want(t, n2.post("/chat/conversation/"+cid, mTok, map[string]any{"content": "Hello from anna"}), http.StatusCreated)
	if m := msgOf(widget.nextOn("/conversations/" + cid).data); m["content"] != "Hello from anna" {
		t.Fatalf("widget got %v", m)
	}
	if d := app.next(); msgOf(d.payload)["content"] != "Hello from anna" {
		t.Fatalf("app got %v", d)
	}
	if m := msgOf(annaConv.nextOn("/conversations/" + cid).data); m["content"] != "Hello from anna" {
		t.Fatalf("anna got %v", m)
	}

	// The app posts with an MQTT command on node 3: the answer comes back to it; the manager
	// and the widget get the message.
	tk := app.c.Publish("orgs/shop/conversations/"+cid+"/post", 1, false, `{"content":"From the app","client_message_id":"app-1"}`)
	if !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
		t.Fatalf("post command: %v", tk.Error())
	}
	var gotReply, gotMsg bool
	for !gotReply || !gotMsg {
		d := app.next()
		switch {
		case strings.HasSuffix(d.topic, "/replies/visitor/v1"):
			gotReply = d.payload["ok"] == true
		case msgOf(d.payload)["content"] == "From the app":
			gotMsg = true
		default:
			t.Fatalf("app got %v", d)
		}
	}
	if m := msgOf(widget.nextOn("/conversations/" + cid).data); m["content"] != "From the app" {
		t.Fatalf("widget got %v", m)
	}
	if m := msgOf(annaConv.nextOn("/conversations/" + cid).data); m["content"] != "From the app" {
		t.Fatalf("anna got %v", m)
	}

	// A Faye publish on node 1 (typing) reaches the MQTT app on node 3.
	app.mustSubscribe("orgs/shop/conversations/" + cid + "/typing")
	widget.publish("/conversations/"+cid+"/typing", map[string]any{"typing": true})
	if d := app.next(); !strings.HasSuffix(d.topic, "/typing") || d.payload["typing"] != true {
		t.Fatalf("app got %v", d)
	}

	// Visitor (node 1) and manager (node 2) post at the same time; each post is retried once on
	// node 3, which must return the stored message and not store or publish it again.
	const each = 15
	var wg sync.WaitGroup
	var mu sync.Mutex
	ids := map[string]string{} // client_message_id → message id
	post := func(n *clusterNode, tok, cmid string) reply {
		return n.post("/chat/conversation/"+cid, tok, map[string]any{"content": cmid, "client_message_id": cmid})
	}
	for _, s := range []struct {
		node *clusterNode
		tok  string
		who  string
	}{{n1, vTok, "v"}, {n2, mTok, "m"}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				cmid := fmt.Sprintf("%s-%02d", s.who, i)
				r := post(s.node, s.tok, cmid)
				again := post(n3, s.tok, cmid)
				if r.status != http.StatusCreated || again.status != http.StatusOK || r.obj("message")["id"] != again.obj("message")["id"] {
					t.Errorf("post %s: %d %s; retry %d %s", cmid, r.status, r.raw, again.status, again.raw)
					return
				}
				mu.Lock()
				ids[cmid] = fmt.Sprint(r.obj("message")["id"])
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	// History, read on node 3: every message once, each sender's in order.
	hist := want(t, n3.post("/chat/conversation/"+cid+"/messages?count=100", vTok, nil), http.StatusOK)
	var stored []string // client_message_ids, oldest first
	msgs := hist.body["messages"].([]any)
	for i := len(msgs) - 1; i >= 0; i-- {
		m := msgs[i].(map[string]any)
		if cm, ok := m["client_message_id"].(string); ok && len(cm) == 4 {
			stored = append(stored, cm)
		}
	}
	if len(msgs) != 2+2*each || len(stored) != 2*each {
		t.Fatalf("history has %d messages (%d concurrent), want %d", len(msgs), len(stored), 2+2*each)
	}
	checkSenderOrder := func(who string, seq []string) {
		t.Helper()
		var v, m []string
		for _, s := range seq {
			if s[0] == 'v' {
				v = append(v, s)
			} else {
				m = append(m, s)
			}
		}
		if len(v) != each || len(m) != each || !slices.IsSorted(v) || !slices.IsSorted(m) {
			t.Fatalf("%s: messages %v, want each sender's %d in order", who, seq, each)
		}
	}
	checkSenderOrder("history", stored)

	// Every subscriber, on every node, got each message exactly once.
	collect := func(next func() (string, bool)) []string {
		var got []string
		for len(got) < 2*each {
			if cm, ok := next(); ok {
				got = append(got, cm)
			}
		}
		return got
	}
	cmidOf := func(m map[string]any) (string, bool) {
		cm, ok := m["client_message_id"].(string)
		return cm, ok && len(cm) == 4
	}
	checkSenderOrder("widget (node 1)", collect(func() (string, bool) {
		return cmidOf(msgOf(widget.nextOn("/conversations/" + cid).data))
	}))
	checkSenderOrder("manager (Faye, alternating)", collect(func() (string, bool) {
		return cmidOf(msgOf(annaConv.nextOn("/conversations/" + cid).data))
	}))
	checkSenderOrder("app (node 3)", collect(func() (string, bool) { return cmidOf(msgOf(app.next().payload)) }))

	// The long-polling clients really did alternate, and were served wherever they landed.
	for _, c := range []*lpClient{anna, annaConv} {
		c.mu.Lock()
		for _, n := range nodes {
			if c.byNode[n.base] == 0 {
				t.Errorf("manager's requests per node: %v; want each node used", c.byNode)
			}
		}
		if c.rehandshakes != 0 {
			t.Errorf("the alternating client handshook again %d times", c.rehandshakes)
		}
		c.mu.Unlock()
	}
}

// TestClusterNodeDeath kills a node (SIGKILL): its Faye client moves to another node, gets
// "unknown client", handshakes again and catches up from the history with nothing lost; its
// MQTT manager reconnects elsewhere; until then that manager is off duty everywhere (after
// cluster.node_timeout); the other nodes keep serving.
func TestClusterNodeDeath(t *testing.T) {
	bin, nats, uri := clusterSetup(t)
	nodes := startCluster(t, bin, nats, uri, 3)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	vTok, mTok := token(t, auth.Visitor, "shop", "v1"), token(t, auth.Manager, "shop", "anna")
	bobTok := token(t, auth.Manager, "shop2", "bob")

	// bob (MQTT, node 2) is shop2's only manager on duty; openings on node 3 reach him.
	bob := n2.mustConnect(bobTok, "bob-app")
	bob.mustSubscribe("orgs/shop2/service/+")
	if c := openWith(t, n3.env, token(t, auth.Visitor, "shop2", "w1"), "w1"); c["manager_id"] != "bob" {
		t.Fatalf("shop2 conversation assigned to %v", c["manager_id"])
	}

	// anna (Faye long-polling) lives on node 2; behind the load balancer, her requests go to
	// node 2 until it fails, then to node 1.
	anna := newLPClient(t, mTok, false, n2.base, n1.base, n3.base)
	var cid string
	var mu sync.Mutex
	seen := map[string]bool{} // message ids anna has
	lastSeen := ""
	anna.onResume = func(base string) {
		// The README's reconnect recipe: history after the last message seen.
		mu.Lock()
		after := lastSeen
		mu.Unlock()
		e := &env{t: t, base: base}
		r := e.post("/chat/conversation/"+cid+"/messages?count=100&after_id="+after, mTok, nil)
		if r.status != http.StatusOK {
			t.Errorf("catch-up on %s: %d %s", base, r.status, r.raw)
			return
		}
		for _, m := range r.body["messages"].([]any) {
			anna.got <- fayeMsg{"/conversations/" + cid, map[string]any{"entity": "message", "message": m}}
		}
	}
	anna.start("/service/*")
	conv := openWith(t, n1.env, vTok, "v1")
	cid = fmt.Sprint(conv["id"])
	if conv["manager_id"] != "anna" {
		t.Fatalf("conversation assigned to %v", conv["manager_id"])
	}
	r, _, err := anna.send(t.Context(), map[string]any{"channel": "/meta/subscribe", "subscription": "/conversations/" + cid})
	if err != nil || len(r) != 1 || r[0]["successful"] != true {
		t.Fatalf("subscribe: %v %v", r, err)
	}
	anna.mu.Lock()
	anna.subs = append(anna.subs, "/conversations/"+cid)
	anna.mu.Unlock()
	widget := newLPClient(t, vTok, false, n1.base)
	widget.start("/conversations/" + cid)

	receive := func(want int) {
		t.Helper()
		for {
			mu.Lock()
			n := len(seen)
			mu.Unlock()
			if n >= want {
				return
			}
			m := anna.next()
			if m.channel != "/conversations/"+cid {
				continue
			}
			msg := msgOf(m.data)
			mu.Lock()
			id := fmt.Sprint(msg["id"])
			if !seen[id] {
				seen[id] = true
				if m.data["entity"] == "message" {
					lastSeen = id
				}
			}
			mu.Unlock()
		}
	}
	want(t, n1.post("/chat/conversation/"+cid, vTok, map[string]any{"content": "before"}), http.StatusCreated)
	receive(1)

	n2.proc.kill()
	// Posts while anna's node is dead and she is moving: none may be lost to her.
	for i := 0; i < 5; i++ {
		want(t, n3.post("/chat/conversation/"+cid, vTok, map[string]any{"content": fmt.Sprint("during ", i)}), http.StatusCreated)
	}
	receive(6)
	if !strings.HasPrefix(anna.clientID(), "node-1_") {
		t.Fatalf("anna's client id after the move: %q, want one of node 1", anna.clientID())
	}
	// Her new session is live: a new post reaches her on node 1.
	want(t, n3.post("/chat/conversation/"+cid, vTok, map[string]any{"content": "after"}), http.StatusCreated)
	receive(7)
	// The widget on node 1 was served throughout (one publish per post: 7, then nothing more).
	for i := 0; i < 7; i++ {
		widget.nextOn("/conversations/" + cid)
	}

	// bob's node is gone: shop2 goes offline within the node timeout. (Until then openings are
	// still given to him: a new visitor each time.)
	attempt := 0
	waitFor(t, "bob off duty", func() bool {
		attempt++
		v := fmt.Sprint("w2-", attempt)
		return n1.post("/chat/service/"+v, token(t, auth.Visitor, "shop2", v), nil).errCode() == "chat_offline"
	})
	// bob's app reconnects to node 3 and is on duty again.
	bob2 := n3.mustConnect(bobTok, "bob-app")
	bob2.mustSubscribe("orgs/shop2/service/+")
	if c := openWith(t, n1.env, token(t, auth.Visitor, "shop2", "w3"), "w3"); c["manager_id"] != "bob" {
		t.Fatalf("shop2 conversation assigned to %v", c["manager_id"])
	}
	if d := bob2.next(); !strings.HasSuffix(d.topic, "/service/w3") {
		t.Fatalf("bob got %v", d)
	}
}

// TestClusterNATSOutage: without NATS, nodes serve their local clients and report the cluster
// check degraded (still 200: a load balancer must not drop every node); when NATS returns,
// cross-node delivery resumes by itself.
func TestClusterNATSOutage(t *testing.T) {
	bin, nats, uri := clusterSetup(t)
	nodes := startCluster(t, bin, nats, uri, 2)
	n1, n2 := nodes[0], nodes[1]
	vTok, mTok := token(t, auth.Visitor, "shop", "v1"), token(t, auth.Manager, "shop", "anna")

	n2.onDuty(mTok, "anna-app")
	conv := openWith(t, n1.env, vTok, "v1")
	cid := fmt.Sprint(conv["id"])
	widget := newLPClient(t, vTok, false, n1.base)
	widget.start("/conversations/" + cid)
	want(t, n2.post("/chat/conversation/"+cid, mTok, map[string]any{"content": "before"}), http.StatusCreated)
	if m := msgOf(widget.nextOn("/conversations/" + cid).data); m["content"] != "before" {
		t.Fatalf("widget got %v", m)
	}

	nats.stop()
	for _, n := range nodes {
		waitFor(t, n.name+" reports the cluster degraded", func() bool {
			r := n.call(http.MethodGet, "/readyz", "", nil)
			return r.status == http.StatusOK && r.body["status"] == "degraded" &&
				strings.HasPrefix(fmt.Sprint(r.obj("checks")["cluster"]), "degraded: NATS unreachable")
		})
	}
	// Local traffic flows: a post on node 1 reaches the widget on node 1.
	want(t, n1.post("/chat/conversation/"+cid, vTok, map[string]any{"content": "local"}), http.StatusCreated)
	if m := msgOf(widget.nextOn("/conversations/" + cid).data); m["content"] != "local" {
		t.Fatalf("widget got %v", m)
	}

	nats.start()
	for _, n := range nodes {
		waitFor(t, n.name+" ready again", func() bool {
			r := n.call(http.MethodGet, "/readyz", "", nil)
			return r.status == http.StatusOK && r.body["status"] == "ready"
		})
	}
	want(t, n2.post("/chat/conversation/"+cid, mTok, map[string]any{"content": "after"}), http.StatusCreated)
	for {
		// "local" may also arrive, late, from the buffer NATS clients keep while reconnecting.
		m := msgOf(widget.nextOn("/conversations/" + cid).data)
		if m["content"] == "after" {
			break
		}
		if m["content"] != "local" {
			t.Fatalf("widget got %v", m)
		}
	}
	// Duty crosses again: anna, on node 2, is seen by an opening on node 1.
	if c := openWith(t, n1.env, token(t, auth.Visitor, "shop", "v2"), "v2"); c["manager_id"] != "anna" {
		t.Fatalf("conversation assigned to %v", c["manager_id"])
	}
}
