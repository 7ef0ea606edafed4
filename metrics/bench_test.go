package metrics

import (
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
)

// BenchmarkMiddleware measures what timing a request adds, against the same app without it.
func BenchmarkMiddleware(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			app := fiber.New()
			if on {
				app.Use(New(nil, quiet).Middleware)
			}
			app.Post("/chat/conversation/:conversation_id", func(c *fiber.Ctx) error { return c.SendStatus(fiber.StatusCreated) })
			h := app.Handler()
			var ctx fasthttp.RequestCtx
			for b.Loop() {
				ctx.Request.Reset()
				ctx.Response.Reset()
				ctx.Request.Header.SetMethod(fiber.MethodPost)
				ctx.Request.SetRequestURI("/chat/conversation/abc")
				h(&ctx)
			}
			if ctx.Response.StatusCode() != fiber.StatusCreated {
				b.Fatalf("status %d", ctx.Response.StatusCode())
			}
		})
	}
}
