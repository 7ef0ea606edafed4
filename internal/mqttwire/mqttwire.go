// Package mqttwire frames MQTT 3.1.1 packets by hand, for clients that must decide every byte
// they send: the load tool's client, light enough that a thousand of them do not measure
// themselves, and the end-to-end tests' raw sockets, which send what libraries would refuse.
package mqttwire

import (
	"encoding/binary"
	"time"
)

// CONNECT flags.
const (
	CleanSession = 0x02
	PasswordFlag = 0x40
	UsernameFlag = 0x80
)

// AppendString appends s as an MQTT string: its length in two bytes, then its bytes.
func AppendString(b []byte, s string) []byte {
	return append(binary.BigEndian.AppendUint16(b, uint16(len(s))), s...)
}

// Packet frames body with its fixed header: the type-and-flags byte, then the remaining
// length in MQTT's variable-length encoding.
func Packet(header byte, body []byte) []byte {
	b := []byte{header}
	n := len(body)
	for {
		digit := byte(n % 128)
		n /= 128
		if n > 0 {
			digit |= 0x80
		}
		b = append(b, digit)
		if n == 0 {
			break
		}
	}
	return append(b, body...)
}

// Connect is a CONNECT of protocol level 4 (3.1.1) with flags and keepAlive; payload is the
// client id, then whichever of user name and password the flags announce.
func Connect(flags byte, keepAlive time.Duration, payload ...string) []byte {
	body := append(AppendString(nil, "MQTT"), 4, flags)
	body = binary.BigEndian.AppendUint16(body, uint16(keepAlive/time.Second))
	for _, s := range payload {
		body = AppendString(body, s)
	}
	return Packet(0x10, body)
}
