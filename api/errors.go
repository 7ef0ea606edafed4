package api

import (
	"errors"
	"log/slog"

	"github.com/gofiber/fiber/v2"

	"github.com/convead/chat-server/chat"
)

// ErrorBody is the JSON shape of every error reply.
type ErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// kindStatus is the REST door's form of each chat error kind (KindInternal is a 500 with a
// generic message: ErrorHandler logs the cause instead of showing it).
var kindStatus = map[chat.Kind]int{
	chat.KindInvalid:         fiber.StatusBadRequest,
	chat.KindUnauthenticated: fiber.StatusUnauthorized,
	chat.KindForbidden:       fiber.StatusForbidden,
	chat.KindNotFound:        fiber.StatusNotFound,
	chat.KindConflict:        fiber.StatusConflict,
	chat.KindOffline:         fiber.StatusUnprocessableEntity,
	chat.KindUnavailable:     fiber.StatusServiceUnavailable,
	chat.KindRateLimited:     fiber.StatusTooManyRequests,
}

var statusCode = map[int]string{
	fiber.StatusBadRequest:            "bad_request",
	fiber.StatusNotFound:              "not_found",
	fiber.StatusMethodNotAllowed:      "method_not_allowed",
	fiber.StatusRequestEntityTooLarge: "payload_too_large",
	fiber.StatusRequestTimeout:        "request_timeout",
	fiber.StatusTooManyRequests:       "rate_limited",
	fiber.StatusServiceUnavailable:    "unavailable",
}

// ErrorHandler renders every error, the server's own (413, 404, …) included, in the JSON shape
// of README "REST API". Unexpected errors are logged and answered with a generic 500.
func ErrorHandler(log *slog.Logger) fiber.ErrorHandler {
	return func(c *fiber.Ctx, err error) error {
		// Errors reach here without the routes' headers (a 404 matched no route at all).
		c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
		var body ErrorBody
		status := fiber.StatusInternalServerError
		var fe *fiber.Error
		switch e := chat.AsError(err); {
		case e != nil && e.Kind != chat.KindInternal:
			status, body.Error.Code, body.Error.Message = kindStatus[e.Kind], e.Code, e.Message
			if e.Kind == chat.KindUnavailable {
				log.Warn("request failed: dependency unavailable", "method", c.Method(), "path", c.Path(), "err", err.Error())
			}
		case errors.As(err, &fe):
			status, body.Error.Message = fe.Code, fe.Message
			if body.Error.Code = statusCode[fe.Code]; body.Error.Code == "" {
				body.Error.Code = "http_error"
			}
		default:
			log.Error("request failed", "method", c.Method(), "path", c.Path(), "err", err.Error())
			body.Error.Code, body.Error.Message = "internal_error", "internal error"
		}
		return c.Status(status).JSON(body)
	}
}
