package channel

import "strings"

// Kind tells what a channel is for in the chat product; the ACL decides by kind.
type Kind int

// The channel kinds of docs/design.md "Channels and topics" (the client view: README "Channels and topics").
const (
	Other            Kind = iota // anything else, wildcard patterns included
	ServiceAll                   // /service/*: every visitor service message of an organisation
	Service                      // /service/V: conversation announcements for visitor V
	Conversation                 // /conversations/C: the messages of conversation C
	ConversationSub              // /conversations/C/<sub>: receipts, typing, closing of C
	Notifications                // /notifications/V: notifications for visitor V
	Replies                      // /replies/<role>/<id>: answers to one identity's MQTT commands
	ConversationsAll             // /conversations/* or /conversations/**: every conversation
)

// ServiceAllPattern is the channel on-duty managers subscribe to.
const ServiceAllPattern = "/service/*"

// Channel is a classified channel name.
type Channel struct {
	Name string
	Kind Kind
	ID   string // the visitor id (Service, Notifications) or conversation id (Conversation*)
	Sub  string // the sub-channel path after /conversations/C/, without the leading slash
}

// Classify parses a valid channel name into its kind. Names that are not one of the product's
// channels, or carry an id outside the id alphabet, are Other.
func Classify(name string) Channel {
	c := Channel{Name: name, Kind: Other}
	switch name {
	case ServiceAllPattern:
		c.Kind = ServiceAll
		return c
	case "/conversations/*", "/conversations/**":
		c.Kind = ConversationsAll
		return c
	}
	if !Valid(name) || IsPattern(name) {
		return c
	}
	first, rest, _ := strings.Cut(name[1:], "/")
	if first == "replies" {
		role, id, ok := strings.Cut(rest, "/")
		if ok && ValidID(id) && (role == "visitor" || role == "manager" || role == "service") {
			c.Kind, c.ID, c.Sub = Replies, id, role
		}
		return c
	}
	id, sub, hasSub := strings.Cut(rest, "/")
	if !ValidID(id) {
		return c
	}
	switch {
	case first == "service" && !hasSub:
		c.Kind, c.ID = Service, id
	case first == "notifications" && !hasSub:
		c.Kind, c.ID = Notifications, id
	case first == "conversations" && !hasSub:
		c.Kind, c.ID = Conversation, id
	case first == "conversations" && hasSub:
		c.Kind, c.ID, c.Sub = ConversationSub, id, sub
	}
	return c
}

// ServiceOf is the service channel of visitor v.
func ServiceOf(v string) string { return "/service/" + v }

// ConversationOf is the message channel of conversation c.
func ConversationOf(c string) string { return "/conversations/" + c }

// The sub-channels of a conversation (/conversations/C/<sub>). Participants may publish to
// SubTyping and SubPost only; the server alone publishes receipts and status changes.
const (
	SubTyping   = "typing"   // typing events, passed to the other side as they are
	SubPost     = "post"     // a message to store: a command the doors hand to chat's PostMessage
	SubReceipts = "receipts" // read receipts
	SubStatus   = "status"   // the conversation changed: assigned, moved, closed, erased
)

// ConversationSubOf is a sub-channel of conversation c, such as SubReceipts.
func ConversationSubOf(c, sub string) string { return "/conversations/" + c + "/" + sub }

// RepliesOf is the channel where an identity gets the answers to its MQTT commands.
func RepliesOf(role, id string) string { return "/replies/" + role + "/" + id }

// NotificationsOf is the notification channel of visitor v.
func NotificationsOf(v string) string { return "/notifications/" + v }
