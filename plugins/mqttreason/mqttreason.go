// Package mqttreason is the MQTT door's form of the chat error kinds: the one place where a
// chat error becomes an MQTT 5 reason code, for every hook that answers one.
package mqttreason

import (
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/convead/chat-server/chat"
)

// byKind is each chat kind's reason code. The refusals of who the caller is or what it may
// see are all "not authorised", as on the other doors, so a client cannot tell a conversation
// it may not see from one that does not exist.
var byKind = map[chat.Kind]packets.Code{
	chat.KindInternal:        packets.ErrUnspecifiedError,
	chat.KindInvalid:         packets.ErrImplementationSpecificError,
	chat.KindUnauthenticated: packets.ErrNotAuthorized,
	chat.KindForbidden:       packets.ErrNotAuthorized,
	chat.KindNotFound:        packets.ErrNotAuthorized,
	chat.KindConflict:        packets.ErrImplementationSpecificError,
	chat.KindOffline:         packets.ErrImplementationSpecificError,
	chat.KindUnavailable:     packets.ErrServerUnavailable,
	chat.KindRateLimited:     packets.ErrQuotaExceeded,
}

// valid lists the error codes MQTT 5 allows in each packet type that answers a client (MQTT 5
// sections 3.2.2.2, 3.4.2.1 and 3.9.3) among those of byKind.
var valid = map[byte]map[byte]bool{
	packets.Connack: {0x80: true, 0x83: true, 0x87: true, 0x88: true, 0x97: true},
	packets.Puback:  {0x80: true, 0x83: true, 0x87: true, 0x97: true},
	packets.Suback:  {0x80: true, 0x83: true, 0x87: true, 0x97: true},
}

// Code returns the reason code that answers err in a packet of type packet (packets.Connack,
// Puback or Suback). An error that is no chat error is Internal. A code the packet type may
// not carry ("server unavailable" exists only in CONNACK) becomes "unspecified error".
func Code(err error, packet byte) packets.Code {
	c := byKind[chat.KindOf(err)]
	if !valid[packet][c.Code] {
		return packets.ErrUnspecifiedError
	}
	return c
}
