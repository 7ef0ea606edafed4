package chat

import (
	"errors"
	"fmt"
)

// Kind classifies a chat error; each door translates it (HTTP status, Bayeux error, MQTT
// reason code).
type Kind int

// Error kinds.
const (
	KindInternal        Kind = iota // a bug or an unexpected failure
	KindInvalid                     // bad input
	KindUnauthenticated             // no or bad credentials
	KindForbidden                   // authenticated, but not allowed
	KindNotFound                    // no such thing (or not visible to the caller)
	KindConflict                    // the state does not allow it
	KindOffline                     // no manager on duty
	KindUnavailable                 // a dependency is down: retry later
	KindRateLimited                 // too many requests: retry later
)

// ServerFault reports whether the kind is the server's failure rather than a judgement of the
// request (Internal, Unavailable): the request was not decided, so the doors answer "retry"
// instead of a refusal, and log it.
func (k Kind) ServerFault() bool { return k == KindInternal || k == KindUnavailable }

// Error is an error meant for the client: a stable snake_case code and a readable message.
type Error struct {
	Kind    Kind
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func newErr(k Kind, code, format string, args ...any) *Error {
	return &Error{Kind: k, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid returns a KindInvalid error; the doors use it for malformed requests too.
func Invalid(code, format string, args ...any) *Error {
	return newErr(KindInvalid, code, format, args...)
}

// invalidID is the error for an id (field visitor_id, manager_id…) outside the id grammar.
func invalidID(field string) *Error {
	return Invalid("invalid_"+field, "%s must be 1-64 characters of [A-Za-z0-9_-]", field)
}

// Forbidden returns a KindForbidden error.
func Forbidden(format string, args ...any) *Error {
	return newErr(KindForbidden, "forbidden", format, args...)
}

// Unauthenticated returns a KindUnauthenticated error.
func Unauthenticated(format string, args ...any) *Error {
	return newErr(KindUnauthenticated, "unauthorized", format, args...)
}

// AsError returns the *Error in err's chain, or nil.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}

// KindOf returns the kind of the *Error in err's chain; any other error is KindInternal, since
// only the domain's own errors say what went wrong.
func KindOf(err error) Kind {
	if e := AsError(err); e != nil {
		return e.Kind
	}
	return KindInternal
}
