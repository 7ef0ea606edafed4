package broker

import (
	"sort"
	"strconv"
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/mochi-mqtt/server/v2/system"
)

// sessionStore is mochi's bbolt storage hook with one fix: in v2.7.9 it stores in-flight
// messages without their packet id (the id survives only in the record's key,
// "IFM_<client>:<packet id>"), so after a restart the broker cannot resend them ("missing
// packet id") and a persistent session loses every QoS 1/2 message it was owed.
type sessionStore struct {
	*bolt.Hook
}

// StoredInflightMessages restores each message's packet id from its key.
func (s sessionStore) StoredInflightMessages() ([]storage.Message, error) {
	msgs, err := s.Hook.StoredInflightMessages()
	for i := range msgs {
		if msgs[i].PacketID == 0 {
			msgs[i].PacketID = packetIDFromKey(msgs[i].ID)
		}
	}
	return msgs, err
}

// OnSysInfoTick stores nothing. The $SYS statistics are closed to every client, and mochi's
// hook writes them from the event loop without a lock while Stop clears its database on
// another goroutine (a data race at every shutdown that meets a tick).
func (s sessionStore) OnSysInfoTick(*system.Info) {}

// StoredSysInfo has nothing to restore, since nothing is stored (mochi's hook would log an
// error at every start for the missing record).
func (s sessionStore) StoredSysInfo() (storage.SystemInfo, error) { return storage.SystemInfo{}, nil }

// packetIDFromKey reads the packet id after the last ':' of an in-flight key; 0 if none.
func packetIDFromKey(key string) uint16 {
	i := strings.LastIndexByte(key, ':')
	if i < 0 {
		return 0
	}
	n, err := strconv.ParseUint(key[i+1:], 10, 16)
	if err != nil {
		return 0
	}
	return uint16(n)
}

// resendOrder keeps a resumed session's messages in order. mochi (v2.7.9) resends in-flight
// messages sorted by uint16(Created), with Created in whole seconds: messages queued within the
// same second come back in random order. Just before a client inherits its session, this hook
// renumbers Created of the waiting messages 0, 1, 2, … in their true order — creation second,
// then packet id, which a client's session hands out in sequence.
type resendOrder struct {
	mqtt.HookBase
	clients *mqtt.Clients
}

func (h *resendOrder) ID() string           { return "chat-resend-order" }
func (h *resendOrder) Provides(b byte) bool { return b == mqtt.OnSessionEstablish }

func (h *resendOrder) OnSessionEstablish(cl *mqtt.Client, pk packets.Packet) {
	existing, ok := h.clients.Get(cl.ID)
	if !ok || pk.Connect.Clean || existing.State.Inflight.Len() < 2 {
		return
	}
	waiting := existing.State.Inflight.GetAll(false)
	sort.SliceStable(waiting, func(i, j int) bool {
		if waiting[i].Created != waiting[j].Created {
			return waiting[i].Created < waiting[j].Created
		}
		return waiting[i].PacketID < waiting[j].PacketID
	})
	for i, m := range waiting {
		m.Created = int64(i)
		existing.State.Inflight.Set(m)
	}
}
