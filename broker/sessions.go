package broker

import (
	"sort"
	"strconv"
	"strings"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/mochi-mqtt/server/v2/system"
)

// sessionStore is mochi's bbolt storage hook with two fixes.
//
// In v2.7.9 it stores in-flight messages without their packet id (the id survives only in the
// record's key, "IFM_<client>:<packet id>"), so after a restart the broker cannot resend them
// ("missing packet id") and a persistent session loses every QoS 1/2 message it was owed.
//
// It also writes every client, subscription and QoS 1/2 delivery, clean sessions included —
// one fsync'd transaction each, and again to delete them when the client leaves — although
// only sessions the broker keeps after a disconnect are ever read back. Here, clients whose
// session ends with their connection are not stored, unless their id has a stored session (a
// persistent client that came back with a clean one: mochi's own writes then clear it).
type sessionStore struct {
	*bolt.Hook

	mu     sync.Mutex
	stored map[string]bool // ids that have (or had) a kept session in the store

	// life keeps Stop (closing the database) from running under a write: mochi's event loop
	// may still drop expired in-flight messages while the broker closes.
	life    sync.RWMutex
	stopped bool
}

// pass runs write, a call of the wrapped hook, if the store must see cl's events and is open.
func (s *sessionStore) pass(cl *mqtt.Client, write func()) {
	s.life.RLock()
	defer s.life.RUnlock()
	if !s.stopped && s.writes(cl) {
		write()
	}
}

// Stop closes the store once no write is running; later events are not stored.
func (s *sessionStore) Stop() error {
	s.life.Lock()
	defer s.life.Unlock()
	s.stopped = true
	return s.Hook.Stop()
}

func newSessionStore() *sessionStore {
	return &sessionStore{Hook: new(bolt.Hook), stored: map[string]bool{}}
}

// kept reports whether the broker keeps cl's session after it disconnects (mochi's rule).
func kept(cl *mqtt.Client) bool {
	if cl.Properties.ProtocolVersion == 5 {
		return cl.Properties.Props.SessionExpiryInterval > 0
	}
	return !cl.Properties.Clean
}

// writes reports whether the store must see cl's events; a kept session is remembered.
func (s *sessionStore) writes(cl *mqtt.Client) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if kept(cl) {
		s.stored[cl.ID] = true
	}
	return s.stored[cl.ID]
}

// Init opens the store and learns which clients have a stored session.
func (s *sessionStore) Init(config any) error {
	if err := s.Hook.Init(config); err != nil {
		return err
	}
	clients, err := s.Hook.StoredClients()
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range clients {
		s.stored[c.ID] = true
	}
	return nil
}

func (s *sessionStore) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	s.pass(cl, func() { s.Hook.OnSessionEstablished(cl, pk) })
}

func (s *sessionStore) OnWillSent(cl *mqtt.Client, pk packets.Packet) {
	s.pass(cl, func() { s.Hook.OnWillSent(cl, pk) })
}

func (s *sessionStore) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	s.pass(cl, func() { s.Hook.OnDisconnect(cl, err, expire) })
}

func (s *sessionStore) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	s.pass(cl, func() { s.Hook.OnSubscribed(cl, pk, codes) })
}

func (s *sessionStore) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	s.pass(cl, func() { s.Hook.OnUnsubscribed(cl, pk) })
}

func (s *sessionStore) OnQosPublish(cl *mqtt.Client, pk packets.Packet, sent int64, resends int) {
	s.pass(cl, func() { s.Hook.OnQosPublish(cl, pk, sent, resends) })
}

func (s *sessionStore) OnQosComplete(cl *mqtt.Client, pk packets.Packet) {
	s.pass(cl, func() { s.Hook.OnQosComplete(cl, pk) })
}

func (s *sessionStore) OnQosDropped(cl *mqtt.Client, pk packets.Packet) {
	s.pass(cl, func() { s.Hook.OnQosDropped(cl, pk) })
}

// open runs write, a call of the wrapped hook, while the store is open.
func (s *sessionStore) open(write func()) {
	s.life.RLock()
	defer s.life.RUnlock()
	if !s.stopped {
		write()
	}
}

func (s *sessionStore) OnClientExpired(cl *mqtt.Client) {
	s.open(func() { s.Hook.OnClientExpired(cl) })
}

func (s *sessionStore) OnRetainedExpired(filter string) {
	s.open(func() { s.Hook.OnRetainedExpired(filter) })
}

func (s *sessionStore) OnRetainMessage(cl *mqtt.Client, pk packets.Packet, r int64) {
	s.open(func() { s.Hook.OnRetainMessage(cl, pk, r) })
}

// StoredInflightMessages restores each message's packet id from its key.
func (s *sessionStore) StoredInflightMessages() ([]storage.Message, error) {
	msgs, err := s.Hook.StoredInflightMessages()
	for i := range msgs {
		if msgs[i].PacketID == 0 {
			msgs[i].PacketID = packetIDFromKey(msgs[i].ID)
		}
	}
	return msgs, err
}

// OnSysInfoTick stores nothing. The $SYS statistics are closed to every client; mochi's hook
// would commit them to disk on every tick, from the event loop without a lock while Stop
// clears its database on another goroutine (a data race at every shutdown that meets a tick).
func (s *sessionStore) OnSysInfoTick(*system.Info) {}

// StoredSysInfo has nothing to restore, since nothing is stored (mochi's hook would log an
// error at every start for the missing record).
func (s *sessionStore) StoredSysInfo() (storage.SystemInfo, error) { return storage.SystemInfo{}, nil }

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
