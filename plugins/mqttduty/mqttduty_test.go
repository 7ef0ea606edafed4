package mqttduty

import (
	"slices"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/convead/chat-server/auth"
	"github.com/convead/chat-server/duty"
)

type identities map[*mqtt.Client]auth.Identity

func (ids identities) Identity(cl *mqtt.Client) (auth.Identity, bool) {
	id, ok := ids[cl]
	return id, ok
}

func newClient(id string) *mqtt.Client {
	cl := &mqtt.Client{ID: id}
	cl.State.Subscriptions = mqtt.NewSubscriptions()
	return cl
}

func subscribe(filters ...string) packets.Packet {
	var pk packets.Packet
	for _, f := range filters {
		pk.Filters = append(pk.Filters, packets.Subscription{Filter: f})
	}
	return pk
}

func TestDuty(t *testing.T) {
	reg := duty.NewRegistry()
	mgr, vis, other := newClient("m"), newClient("v"), newClient("p")
	h := New(reg, identities{
		mgr:   {Subject: "m1", Role: auth.Manager, Org: "O"},
		vis:   {Subject: "v1", Role: auth.Visitor, Org: "O"},
		other: {Subject: "m2", Role: auth.Manager, Org: "P"},
	})
	onDuty := func(org string, want ...string) {
		t.Helper()
		if got := reg.OnDuty(org); !slices.Equal(got, want) && len(got)+len(want) > 0 {
			t.Errorf("OnDuty(%s) = %v, want %v", org, got, want)
		}
	}
	h.OnSubscribe(vis, subscribe("orgs/O/service/+"))
	h.OnSubscribe(other, subscribe("orgs/O/service/+")) // another org's filter does not count
	h.OnSubscribe(mgr, subscribe("orgs/O/service/v1", "orgs/O/service/#"))
	onDuty("O")
	h.OnSubscribe(mgr, subscribe("orgs/O/conversations/c", "orgs/O/service/+"))
	onDuty("O", "m1")
	h.OnSubscribed(mgr, subscribe("orgs/O/conversations/c", "orgs/O/service/+"), []byte{1, 1})
	onDuty("O", "m1")
	h.OnSubscribed(mgr, subscribe("orgs/O/service/+"), []byte{packets.ErrNotAuthorized.Code})
	onDuty("O") // refused after all
	h.OnSubscribe(mgr, subscribe("orgs/O/service/+"))
	h.OnUnsubscribed(mgr, subscribe("orgs/O/service/+"))
	onDuty("O")
	h.OnSubscribe(mgr, subscribe("orgs/O/service/+"))
	h.OnDisconnect(mgr, nil, false)
	onDuty("O")
	// A resumed session that holds the filter puts the manager back on duty.
	mgr.State.Subscriptions.Add("orgs/O/service/+", packets.Subscription{Filter: "orgs/O/service/+"})
	h.OnSessionEstablished(mgr, packets.Packet{})
	onDuty("O", "m1")
	// A connection taking over the same client id is another holder: the old one's late
	// disconnect does not take the new one off duty.
	next := newClient("m")
	h.ids.(identities)[next] = auth.Identity{Subject: "m1", Role: auth.Manager, Org: "O"}
	h.OnSubscribe(next, subscribe("orgs/O/service/+"))
	h.OnDisconnect(mgr, nil, false)
	onDuty("O", "m1")
}
