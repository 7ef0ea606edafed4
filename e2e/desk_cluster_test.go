package e2e

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/convead/chat-server/auth"
)

// TestClusterDesk: two processes sharing NATS and one MongoDB database (FerretDB). anna is on
// duty through Faye on node 1, bob through MQTT on node 2. Both nodes list both on duty; a
// service on node 2 transfers anna's conversation to bob, whose service topic on node 2 sees
// it, and anna's subscriptions on node 1 (Faye) and node 2 (MQTT) stop receiving it. Then bob
// goes off duty: after reassign_after the conversation comes back to anna, moved once even
// though both nodes sweep, and nothing posted meanwhile is lost.
func TestClusterDesk(t *testing.T) {
	bin, nats, uri := clusterSetup(t)
	nodes := startCluster(t, bin, nats, uri, 2)
	n1, n2 := nodes[0], nodes[1]
	sTok := token(t, auth.Service, "shop", "backoffice")
	aTok, bTok, vTok := token(t, auth.Manager, "shop", "anna"), token(t, auth.Manager, "shop", "bob"), token(t, auth.Visitor, "shop", "v1")
	want(t, n1.call(http.MethodPut, "/admin/orgs/shop", sTok, map[string]any{"name": "Shop", "reassign_after": "1s"}), http.StatusOK)

	anna := newLPClient(t, aTok, false, n1.base)
	anna.start("/service/*")
	conv := openWith(t, n1.env, vTok, "v1")
	cid := fmt.Sprint(conv["id"])
	if conv["manager_id"] != "anna" {
		t.Fatalf("conversation assigned to %v, want anna (the only one on duty)", conv["manager_id"])
	}
	anna.nextOn("/service/v1") // the opening
	bob := n2.onDuty(bTok, "bob-app")
	annaConv := newLPClient(t, aTok, false, n1.base)
	annaConv.start("/conversations/" + cid)
	annaApp := n2.mustConnect(aTok, "anna-app")
	annaApp.mustSubscribe("orgs/shop/conversations/" + cid)

	for _, n := range nodes {
		waitFor(t, n.name+" lists anna and bob on duty", func() bool {
			r := n.call(http.MethodGet, "/admin/orgs/shop/duty", sTok, nil)
			got, _ := r.body["on_duty"].([]any)
			return r.status == http.StatusOK && slices.Equal(got, []any{"anna", "bob"})
		})
	}

	// Transfer through node 2.
	r := want(t, n2.post("/chat/conversation/"+cid+"/transfer", sTok, map[string]any{"manager_id": "bob"}), http.StatusOK)
	if got := r.obj("conversation"); got["manager_id"] != "bob" {
		t.Fatalf("transfer reply: %v", got)
	}
	for {
		d := bob.next()
		if d.topic == "orgs/shop/service/v1" && fmt.Sprint(d.payload["conversation"].(map[string]any)["manager_id"]) == "bob" {
			break
		}
	}
	// anna's subscriptions stop within the cache's lifetime on the node that did not transfer.
	waitFor(t, "anna's deliveries stopped on both nodes", func() bool {
		want(t, n2.post("/chat/conversation/"+cid, bTok, map[string]any{"content": "bob here"}), http.StatusCreated)
		deadline := time.After(300 * time.Millisecond)
		got := false
		for {
			select {
			case m := <-annaConv.got:
				got = got || m.channel == "/conversations/"+cid
				continue
			case <-annaApp.got:
				got = true
				continue
			case <-deadline:
			}
			break
		}
		return !got
	})
	want(t, n2.post("/chat/conversation/"+cid, bTok, map[string]any{"content": "still bob"}), http.StatusCreated)
	annaApp.none(500 * time.Millisecond)
	if code := n2.post("/chat/conversation/"+cid, aTok, map[string]any{"content": "anna again"}).errCode(); code != "forbidden" {
		t.Errorf("the previous manager posts: %q, want forbidden", code)
	}
	if code := annaApp.subscribe("orgs/shop/conversations/" + cid); code < 0x80 {
		t.Errorf("the previous manager subscribes again over MQTT: granted 0x%x", code)
	}

	// bob leaves; after reassign_after the conversation goes back to anna, once.
	bob.close()
	want(t, n1.post("/chat/conversation/"+cid, vTok, map[string]any{"content": "hello? anyone"}), http.StatusCreated)
	waitFor(t, "the conversation back with anna", func() bool {
		item := n1.call(http.MethodGet, "/chat/conversation/"+cid, sTok, nil).obj("conversation")
		return item["manager_id"] == "anna"
	})
	item := n2.call(http.MethodGet, "/chat/conversation/"+cid, sTok, nil).obj("conversation")
	if prev, _ := item["previous_manager_ids"].([]any); !slices.Equal(prev, []any{"bob"}) {
		t.Errorf("previous managers after the move back: %v, want [bob]", item["previous_manager_ids"])
	}
	moves := 0
	deadline := time.After(2 * time.Second)
	for done := false; !done; {
		select {
		case m := <-anna.got:
			if c, _ := m.data["conversation"].(map[string]any); m.channel == "/service/v1" && c["manager_id"] == "anna" {
				moves++
			}
		case <-deadline:
			done = true
		}
	}
	if moves != 1 {
		t.Errorf("anna's /service/* saw the conversation come back %d times, want once", moves)
	}
	r = want(t, n1.call(http.MethodGet, "/chat/conversation/"+cid+"/messages?count=10", aTok, nil), http.StatusOK)
	if msgs, _ := r.body["messages"].([]any); len(msgs) < 3 || msgOf(map[string]any{"message": msgs[0]})["content"] != "hello? anyone" {
		t.Errorf("history after the moves: %v", r.body["messages"])
	}
}
