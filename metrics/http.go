package metrics

import (
	"time"

	"github.com/gofiber/fiber/v2"
)

// Unmatched labels requests that matched no route after this middleware's own.
const Unmatched = "unmatched"

// Middleware times every request by method, matched route template and status class. Install
// it first, so that it also sees what later middleware answers. The route is the template
// ("/chat/conversation/:conversation_id"), never the raw URL: label values stay few.
func (m *Metrics) Middleware(c *fiber.Ctx) error {
	start, own := time.Now(), c.Route()
	if err := c.Next(); err != nil {
		// Answer the error here, as Fiber would after us, so the status is the one sent.
		if herr := c.App().ErrorHandler(c, err); herr != nil {
			_ = c.SendStatus(fiber.StatusInternalServerError)
		}
	}
	m.http.WithLabelValues(methodLabel(c.Method()), routeLabel(own, c.Route()), statusClass(c.Response().StatusCode())).
		Observe(time.Since(start).Seconds())
	return nil
}

// routeLabel is the template of the last route that ran; still our own route means none
// matched (Fiber leaves the last matched route in place).
func routeLabel(own, r *fiber.Route) string {
	if r == nil || r == own {
		return Unmatched
	}
	return r.Path
}

// methodLabel keeps the standard methods; anything else is "other". It returns constants:
// the request's own string may alias a buffer fasthttp reuses.
func methodLabel(m string) string {
	for _, std := range []string{fiber.MethodGet, fiber.MethodHead, fiber.MethodPost, fiber.MethodPut, fiber.MethodPatch,
		fiber.MethodDelete, fiber.MethodOptions, fiber.MethodConnect, fiber.MethodTrace} {
		if m == std {
			return std
		}
	}
	return "other"
}

var statusClasses = [...]string{"other", "1xx", "2xx", "3xx", "4xx", "5xx"}

// statusClass is "2xx" and so on, without allocating.
func statusClass(code int) string {
	if code < 100 || code > 599 {
		return statusClasses[0]
	}
	return statusClasses[code/100]
}
